"""`kfashion labels show|stats|preview` and `kfashion taxonomy`: the label format and the taxonomy."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kfashion.commands.common import (
    PREVIEW_SAMPLES,
    LabelPaths,
    check_paths,
    err,
    load_for_preview,
    write_sheet,
)
from shared.labels import LabelError, iter_records, record_view
from shared.taxonomy import ITEM_ATTRIBUTES, STYLE, TAXONOMY_VERSION, taxonomy_json

labels_app = typer.Typer(help="Read, check and draw K-Fashion label files.", no_args_is_help=True)


@labels_app.command("show")
def labels_show(
    paths: LabelPaths,
    pretty: Annotated[bool, typer.Option(help="indent the JSON (default: one object per line)")] = False,
) -> None:
    """Print every label file as parsed records, one JSON object per file.

    Exit 1 if any file is unreadable (its error goes to stderr; the others are still printed)."""
    check_paths(paths)
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
    check_paths(paths)
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


@labels_app.command("preview")
def labels_preview(
    paths: Annotated[
        list[Path], typer.Argument(help="label JSON files or dataset folders (images beside them)")
    ],
    out: Annotated[Path, typer.Option(help="PNG or JPEG file to write")],
    limit: Annotated[int, typer.Option(min=1, help="how many images")] = PREVIEW_SAMPLES,
) -> None:
    """Draw labelled images (boxes, polygons, attributes, style) on a contact sheet."""
    check_paths(paths)
    pairs = load_for_preview(paths, limit)
    if not pairs:
        err.print("[red]no label file with a readable image beside it")
        raise typer.Exit(1)
    write_sheet(pairs, out)


def taxonomy(as_json: Annotated[bool, typer.Option("--json", help="every label with ids")] = False) -> None:
    """Print the taxonomy: version, attributes, their labels (Korean / English) and regions."""
    attributes = [*ITEM_ATTRIBUTES, STYLE]
    if as_json:
        data = taxonomy_json()
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    out = Console()
    out.print(f"taxonomy {TAXONOMY_VERSION}")
    for a in attributes:
        names = ", ".join(f"{lb.ko} {lb.en}" for lb in a.labels)
        out.print(f"[bold]{a.key}[/] ({a.ko_key}, {len(a.labels)}{', multi' if a.multi else ''}): {names}")
