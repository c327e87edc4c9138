"""`kfashion`: the one command line for every job of the project."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from shared.drawing import contact_sheet, draw_record
from shared.errors import ApiError
from shared.imaging import decode_image
from shared.labels import LabelError, LabelRecord, iter_records, record_view
from shared.settings import load_settings
from shared.taxonomy import ITEM_ATTRIBUTES, REGIONS, STYLE, TAXONOMY_VERSION

app = typer.Typer(
    help="K-Fashion Serve: tagging, search and outfit matching for the K-Fashion taxonomy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
labels_app = typer.Typer(help="Read, check and draw K-Fashion label files.", no_args_is_help=True)
app.add_typer(labels_app, name="labels")
err = Console(stderr=True)

PREVIEW_SAMPLES = 16
LabelPaths = Annotated[list[Path], typer.Argument(help="label JSON files or dataset folders")]


def progress_bar(console: Console | None = None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or err,
        transient=False,
    )


def _check_paths(paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        err.print(f"[red]no such file or folder: {', '.join(missing)}")
        raise typer.Exit(2)


@labels_app.command("show")
def labels_show(
    paths: LabelPaths,
    pretty: Annotated[bool, typer.Option(help="indent the JSON (default: one object per line)")] = False,
) -> None:
    """Print every label file as parsed records, one JSON object per file.

    Exit 1 if any file is unreadable (its error goes to stderr; the others are still printed)."""
    _check_paths(paths)
    failures = 0
    for found, result in iter_records(paths):
        if isinstance(result, LabelError):
            failures += 1
            err.print_json(json.dumps({"error": result.to_dict()}, ensure_ascii=False))
            continue
        view = record_view(result, str(found.label_path))
        sys.stdout.write(json.dumps(view, ensure_ascii=False, indent=2 if pretty else None) + "\n")
    if failures:
        err.print(f"[red]{failures} label file(s) could not be read")
        raise typer.Exit(1)


@labels_app.command("stats")
def labels_stats(
    paths: LabelPaths,
) -> None:
    """Count files, items per region, attribute values, styles and unknown values (JSON on stdout)."""
    _check_paths(paths)
    files = errors = 0
    regions: Counter[str] = Counter()
    values: dict[str, Counter[str]] = {a.key: Counter() for a in ITEM_ATTRIBUTES}
    styles: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    for _, result in iter_records(paths):
        if isinstance(result, LabelError):
            errors += 1
            continue
        files += 1
        for item in result.items:
            regions[item.region] += 1
            for key, value in item.attributes.items():
                values[key].update(value if isinstance(value, list) else [value])
        styles.update(s.style for s in result.styles if s.style)
        unknown.update(f"{u.field}={u.value}" for u in result.unknown)
    report = {
        "files": files,
        "unreadable": errors,
        "items_per_region": dict(regions),
        "styles": dict(styles),
        "attributes": {k: dict(v.most_common()) for k, v in values.items() if v},
        "unknown": dict(unknown.most_common()),
    }
    sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")


def _load_for_preview(paths: list[Path], limit: int) -> list[tuple[object, LabelRecord]]:
    settings = load_settings()
    pairs = []
    for found, result in iter_records(paths):
        if isinstance(result, LabelError) or found.image_path is None:
            continue
        try:
            image = decode_image(found.image_path.read_bytes(), settings.image, str(found.image_path))
        except ApiError as error:
            err.print(f"[yellow]skipped {found.image_path}: {error.message}")
            continue
        pairs.append((image.pixels, result))
        if len(pairs) >= limit:
            break
    return pairs


def _write_sheet(pairs: list, out: Path) -> None:
    import cv2  # the CLI's other commands do not need OpenCV loaded

    sheet = contact_sheet([draw_record(pixels, record) for pixels, record in pairs])
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        err.print(f"[red]cannot write {out} (use a .png or .jpg name)")
        raise typer.Exit(2)
    err.print(f"contact sheet of {len(pairs)} image(s): {out}")


@labels_app.command("preview")
def labels_preview(
    paths: Annotated[
        list[Path], typer.Argument(help="label JSON files or dataset folders (images beside them)")
    ],
    out: Annotated[Path, typer.Option(help="PNG or JPEG file to write")],
    limit: Annotated[int, typer.Option(min=1, help="how many images")] = PREVIEW_SAMPLES,
) -> None:
    """Draw labelled images (boxes, polygons, attributes, style) on a contact sheet."""
    _check_paths(paths)
    pairs = _load_for_preview(paths, limit)
    if not pairs:
        err.print("[red]no label file with a readable image beside it")
        raise typer.Exit(1)
    _write_sheet(pairs, out)


@app.command()
def synth(
    count: Annotated[int, typer.Option(min=1, help="number of images")] = 1000,
    out: Annotated[Path | None, typer.Option(help="dataset folder to write (K-Fashion layout)")] = None,
    seed: Annotated[int, typer.Option(help="same seed, same dataset")] = 0,
    workers: Annotated[int, typer.Option(min=0, help="processes; 0 = one per CPU core")] = 0,
    preview: Annotated[
        Path | None, typer.Option(help="also draw a contact sheet of samples to this PNG/JPEG")
    ] = None,
) -> None:
    """Generate a K-Fashion-format dataset of dressed figures with exact labels and an 8:1:1 split."""
    from training.synth.dataset import generate_dataset
    from training.synth.render import render_sample

    if out is None and preview is None:
        err.print("[red]give --out DIR (write a dataset), --preview FILE (draw samples), or both")
        raise typer.Exit(2)
    if out is not None:
        started = time.perf_counter()
        with progress_bar() as bar:
            task = bar.add_task("rendering", total=count)
            summary, label_paths = generate_dataset(
                out, count, seed, workers or None, on_progress=lambda n: bar.advance(task, n)
            )
        elapsed = time.perf_counter() - started
        err.print(f"{count} images in {elapsed:.1f} s -> {out}  splits {summary['splits']}")
    if preview is not None:
        if out is not None:
            pairs = _load_for_preview(label_paths[:PREVIEW_SAMPLES], PREVIEW_SAMPLES)
        else:
            samples = [render_sample(i, seed) for i in range(min(count, PREVIEW_SAMPLES))]
            pairs = [(s.pixels, s.record) for s in samples]
        _write_sheet(pairs, preview)


@app.command()
def taxonomy(as_json: Annotated[bool, typer.Option("--json", help="every label with ids")] = False) -> None:
    """Print the taxonomy: version, attributes, their labels (Korean / English) and regions."""
    attributes = [*ITEM_ATTRIBUTES, STYLE]
    if as_json:
        data = {
            "version": TAXONOMY_VERSION,
            "regions": list(REGIONS),
            "attributes": [
                {
                    "key": a.key,
                    "ko_key": a.ko_key,
                    "multi": a.multi,
                    "regions": sorted(a.regions),
                    "labels": [
                        {
                            "id": lb.id,
                            "ko": lb.ko,
                            "en": lb.en,
                            **({"regions": sorted(lb.regions)} if lb.regions else {}),
                        }
                        for lb in a.labels
                    ],
                }
                for a in attributes
            ],
        }
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    out = Console()
    out.print(f"taxonomy {TAXONOMY_VERSION}")
    for a in attributes:
        names = ", ".join(f"{lb.ko} {lb.en}" for lb in a.labels)
        out.print(f"[bold]{a.key}[/] ({a.ko_key}, {len(a.labels)}{', multi' if a.multi else ''}): {names}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
