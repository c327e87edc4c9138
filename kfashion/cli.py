"""`kfashion`: the one command line for every job of the project."""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

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
from shared.settings import Settings, load_settings
from shared.taxonomy import ITEM_ATTRIBUTES, STYLE, TAXONOMY_VERSION, taxonomy_json

if TYPE_CHECKING:
    from gateway.tagging import TaggingPipeline
    from shared.manifest import Manifest

app = typer.Typer(
    help="K-Fashion Serve: tagging, search and outfit matching for the K-Fashion taxonomy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
labels_app = typer.Typer(help="Read, check and draw K-Fashion label files.", no_args_is_help=True)
app.add_typer(labels_app, name="labels")
models_app = typer.Typer(
    help="Installed models: list them, or bootstrap them from generated data.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
catalog_app = typer.Typer(help="The search catalog: add images to it.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
stack_app = typer.Typer(
    help="The microservice deployment on one machine: every service its own process.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
StackDir = Annotated[Path, typer.Option("--dir", help="the stack's folder: state, logs, local data")]
err = Console(stderr=True)

PREVIEW_SAMPLES = 16
LabelPaths = Annotated[list[Path], typer.Argument(help="label JSON files or dataset folders")]
TrainDevice = Annotated[
    Literal["auto", "cpu", "cuda"],
    typer.Option(help="where the backbone runs and the heads train: auto is a CUDA GPU when torch sees one"),
]


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


def _settings(data_dir: Path | None = None, models_dir: Path | None = None) -> Settings:
    """The environment's settings, with the folders given on the command line."""
    overrides = {"data_dir": data_dir, "models_dir": models_dir}
    return load_settings(**{key: value for key, value in overrides.items() if value})


def _check_paths(paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        err.print(f"[red]no such file or folder: {', '.join(missing)}")
        raise typer.Exit(2)


@contextlib.contextmanager
def _models_required() -> Iterator[None]:
    """Missing models (no manifest, or a file it names) end the command with their message and exit 1, not
    a traceback."""
    try:
        yield
    except FileNotFoundError as error:
        err.print(f"[red]{error}")
        raise typer.Exit(1) from error


def _installed_models(directory: Path) -> Manifest:
    """The manifest of the models in `directory`."""
    from shared.manifest import load_manifest

    with _models_required():
        return load_manifest(directory)


def _local_pipeline(settings: Settings) -> TaggingPipeline:
    """The /tagging pipeline over the models in this process, loaded."""
    from prometheus_client import CollectorRegistry

    from gateway.ports import LocalServices
    from gateway.tagging import TaggingPipeline

    with _models_required():
        services = LocalServices(settings, CollectorRegistry())
        services.start()
    return TaggingPipeline(services, settings)


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
        data = taxonomy_json()
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    out = Console()
    out.print(f"taxonomy {TAXONOMY_VERSION}")
    for a in attributes:
        names = ", ".join(f"{lb.ko} {lb.en}" for lb in a.labels)
        out.print(f"[bold]{a.key}[/] ({a.ko_key}, {len(a.labels)}{', multi' if a.multi else ''}): {names}")


class _StageBars:
    """Training progress: one bar per stage (features, then each model's epochs)."""

    def __init__(self, bar: Progress, verbose: bool):
        self.bar, self.verbose, self.task = bar, verbose, None

    def progress(self):
        from training.run import Progress as RunProgress

        return RunProgress(stage=self.stage, advance=lambda n: self.bar.advance(self.task, n), log=self.log)

    def stage(self, name: str, total: int) -> None:
        self.task = self.bar.add_task(name, total=total)

    def log(self, message: str) -> None:
        if self.verbose:
            self.bar.console.log(message)


def _print_headline(headline: dict) -> None:
    from rich.table import Table

    # The splits that have figures, in the usual order (`eval --split all` has one column: all).
    present = {split for values in headline.values() for split in values}
    columns = [s for s in ("train", "val", "test") if s in present] + sorted(
        present - {"train", "val", "test"}
    )
    table = Table(title="headline figures")
    for column in ("metric", *columns):
        table.add_column(column)
    for label, values in headline.items():
        table.add_row(label, *(f"{values[s]:.3f}" if s in values else "-" for s in columns))
    Console().print(table)


def _print_layering(layering: dict) -> None:
    """Where the misses concentrate: tops and onepieces with an outer over them against the others."""
    from rich.table import Table

    from training.data import LAYERED_REGIONS
    from training.onnx_eval import LAYERING_GROUPS, LAYERING_HEADS

    rows = [
        (f"detection AP50 {region}", "detector", region, "AP50", "objects") for region in LAYERED_REGIONS
    ] + [(f"{key} top-1 (tops, onepieces)", "attributes", key, "top1", "count") for key in LAYERING_HEADS]
    table = Table(title="tops and onepieces: worn under an outer or not")
    for column in ("metric", "under an outer", "not under one"):
        table.add_column(column)
    for label, model, section, key, count in rows:
        if model not in layering:
            continue
        cells = []
        for group in LAYERING_GROUPS:
            values = layering[model][group][section]
            value = values.get(key)
            has_value = values.get(count) and value is not None and not math.isnan(value)
            cells.append(f"{value:.3f} ({values[count]})" if has_value else "-")
        table.add_row(label, *cells)
    Console().print(table)


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="K-Fashion-format dataset folder (with split.json or without)")],
    out: Annotated[Path, typer.Option(help="run folder to write")],
    models: Annotated[
        str, typer.Option(help="comma-separated: detector,attributes,style")
    ] = "detector,attributes,style",
    detector_epochs: Annotated[int, typer.Option(min=1)] = 12,
    attribute_epochs: Annotated[int, typer.Option(min=1)] = 40,
    style_epochs: Annotated[int, typer.Option(min=1)] = 60,
    mirror: Annotated[
        str,
        typer.Option(
            help="comma-separated models whose training images are also used mirrored (the bootstrap: "
            "all three; the detector's copies double its feature cache)"
        ),
    ] = "attributes,style",
    limit: Annotated[int | None, typer.Option(help="use at most this many images")] = None,
    seed: int = 0,
    shuffle_labels: Annotated[bool, typer.Option(help="control run on permuted labels")] = False,
    device: TrainDevice = "auto",
    workers: Annotated[int, typer.Option(min=1, help="threads decoding images ahead of the backbone")] = 4,
    feature_store: Annotated[
        Literal["auto", "memory", "disk"],
        typer.Option(
            help="where the cached backbone features live: auto (memory while they fit in half of the "
            "free memory), memory, or disk (memory-mapped files in the run folder, removed at the end)"
        ),
    ] = "auto",
    verbose: Annotated[bool, typer.Option(help="log every epoch")] = False,
) -> None:
    """Train models on a K-Fashion-format dataset; writes config, history, heads, metrics and a report.
    On a GPU the backbone runs in ONNX Runtime's CUDA provider and the heads train with mixed precision.
    The backbone's features are computed once and cached: about 354 kB per image, on disk when they
    would not fit in memory (the full K-Fashion: about 425 GB)."""
    from training.run import MODELS, TrainConfig, train_run

    chosen, mirrored = _model_names(models, MODELS), _model_names(mirror, MODELS)
    _check_paths([data])
    config = TrainConfig(
        data=str(data),
        out=str(out),
        models=chosen,
        detector_epochs=detector_epochs,
        attribute_epochs=attribute_epochs,
        style_epochs=style_epochs,
        mirror=mirrored,
        seed=seed,
        limit=limit,
        shuffle_labels=shuffle_labels,
        device=device,
        workers=workers,
        feature_store=feature_store,
    )
    with progress_bar() as bar:
        result = train_run(config, _StageBars(bar, verbose).progress())
    _print_headline(result["headline"])
    err.print(f"run folder: {out} (report.md, metrics.json); took {result['timings']['total_s']} s")


def _model_names(listed: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated model names, each one of `known`; else exit 2 with the unknown ones named."""
    chosen = tuple(m.strip() for m in listed.split(",") if m.strip())
    unknown = [m for m in chosen if m not in known]
    if unknown:
        err.print(f"[red]unknown model(s) {unknown}; choose from {list(known)}")
        raise typer.Exit(2)
    return chosen


@app.command("train-real")
def train_real(
    out: Annotated[Path, typer.Option(help="run folder to write (checkpoints, then what export reads)")],
    realdata: Annotated[
        Path | None,
        typer.Option(help="the real photo sets (default: KFASHION_REALDATA or ../shared/realdata)"),
    ] = None,
    generated: Annotated[
        Path | None, typer.Option(help="a K-Fashion-format folder (`kfashion synth`) for what real sets lack")
    ] = None,
    stages: Annotated[str, typer.Option(help="comma-separated: detector,boxes,attributes")] = (
        "detector,boxes,attributes"
    ),
    detector_steps: Annotated[int, typer.Option(min=1)] = 900,
    attribute_steps: Annotated[int, typer.Option(min=1)] = 700,
    frozen_blocks: Annotated[
        int, typer.Option(min=0, max=16, help="backbone blocks kept frozen (16: heads only)")
    ] = 5,
    limit: Annotated[int | None, typer.Option(help="at most this many training photos of each set")] = None,
    seed: int = 0,
    shuffle_labels: Annotated[
        bool, typer.Option(help="control run: every photo gets another's labels")
    ] = False,
) -> None:
    """Fine-tune the detector and the attribute model on the real photo sets (CCP, CAD, clothing-dataset)
    and generated pictures, backbone included; then `kfashion export RUN --out models --compact`
    (the models folder's style model is kept). docs/models.md has the command of the committed models."""
    from training.real_run import STAGES, RealRunConfig
    from training.real_run import train_real as run
    from training.realdata import RealDataMissing

    config = RealRunConfig(
        out=str(out),
        realdata=str(realdata) if realdata else None,
        generated=str(generated) if generated else None,
        stages=_model_names(stages, STAGES),
        detector_steps=detector_steps,
        attribute_steps=attribute_steps,
        frozen_blocks=frozen_blocks,
        limit=limit,
        seed=seed,
        shuffle_labels=shuffle_labels,
    )
    try:
        result = run(config, log=err.print)
    except RealDataMissing as error:
        err.print(f"[red]{error}")
        raise typer.Exit(1) from error
    sys.stdout.write(json.dumps({"timings": result.timings, "metrics": result.metrics}, default=float) + "\n")


@app.command("import")
def import_real(
    set_name: Annotated[
        Literal["ccp", "cad", "clothing"], typer.Argument(metavar="SET", help="ccp, cad or clothing")
    ],
    source: Annotated[
        Path, typer.Argument(help="the set's folder (this project's layout or the public one)")
    ],
    out: Annotated[
        Path | None, typer.Option(help="write the JSON lines here instead of standard output")
    ] = None,
) -> None:
    """Read a real photo set as K-Fashion targets, one JSON object per photo: its split, items (region, box
    from the masks, the K-Fashion labels each real label allows). Reads CCP's and CAD's public layouts
    (MATLAB .mat labels) as well as the re-encoded one in ../shared/realdata."""
    from training.realdata import RealDataMissing, dump, read_public

    _check_paths([source])
    try:
        photos = read_public(set_name, source)
    except RealDataMissing as error:
        err.print(f"[red]{error}")
        raise typer.Exit(1) from error
    text = dump(photos)
    if out:
        out.write_text(text, encoding="utf-8")
        err.print(f"{len(photos)} photos -> {out}")
    else:
        sys.stdout.write(text)


@app.command("eval")
def evaluate(
    data: Annotated[Path | None, typer.Option(help="K-Fashion-format dataset folder")] = None,
    models_dir: Annotated[
        Path | None, typer.Option("--models", help="models folder (default: settings)")
    ] = None,
    split: Annotated[str, typer.Option(help="train, val, test or all")] = "test",
    limit: Annotated[int | None, typer.Option(help="use at most this many images")] = None,
    out: Annotated[Path | None, typer.Option(help="also write the metrics JSON here")] = None,
    real: Annotated[
        bool,
        typer.Option(
            help="the real photo sets' validation splits through POST /tagging of an embedded server "
            "(CCP, clothing-dataset, CAD, real-photo search; docs/models.md)"
        ),
    ] = False,
    realdata: Annotated[
        Path | None,
        typer.Option(help="the real photo sets (default: KFASHION_REALDATA or ../shared/realdata)"),
    ] = None,
    record: Annotated[bool, typer.Option(help="with --real: write the figures into the manifest")] = False,
) -> None:
    """Evaluate installed ONNX models on a dataset (generated or the real K-Fashion), seeds' metrics; with
    --real, on the real photo sets through the API."""
    directory = models_dir or load_settings().models_dir
    if real:
        _evaluate_real(Path(directory), realdata, limit, out, record)
        if data is None:
            return
    if data is None:
        err.print("[red]give --data (a K-Fashion-format dataset) or --real")
        raise typer.Exit(2)
    from shared.detection import detector_geometry
    from training.data import load_samples
    from training.evaluate import headline
    from training.onnx_eval import aspect_powers, evaluate_onnx, retrieval_gallery

    _check_paths([data])
    manifest = _installed_models(directory)
    samples, _ = load_samples(data, limit)
    chosen = samples if split == "all" else [s for s in samples if s.split == split]
    if not chosen:
        err.print(f"[red]no images of split '{split}' under {data}")
        raise typer.Exit(1)
    files = {name: Path(directory) / entry.file for name, entry in manifest.models.items()}
    geometry = detector_geometry(manifest.models["detector"]) if "detector" in files else None
    gallery = retrieval_gallery(samples, split) if "attributes" in files else []
    with progress_bar() as bar:
        task = bar.add_task(f"evaluating {split}", total=len(chosen) + len(gallery))
        metrics = evaluate_onnx(
            files,
            chosen,
            geometry,
            aspect_powers(manifest),
            gallery=gallery,
            on_progress=lambda n: bar.advance(task, n),
        )
    _print_headline(headline({model: {split: values} for model, values in metrics.items()}))
    _print_layering(metrics.get("layering", {}))
    if out:
        out.write_text(
            json.dumps(metrics, ensure_ascii=False, indent=1, default=float) + "\n", encoding="utf-8"
        )


def _evaluate_real(
    directory: Path, realdata: Path | None, limit: int | None, out: Path | None, record: bool
) -> None:
    from training.real_eval import measure
    from training.real_eval import record as record_figures
    from training.realdata import RealDataMissing

    _installed_models(directory)
    try:
        figures = measure(directory, realdata, limit, log=err.print)
    except RealDataMissing as error:
        err.print(f"[red]{error}")
        raise typer.Exit(1) from error
    sys.stdout.write(json.dumps(figures, ensure_ascii=False) + "\n")
    if record:
        record_figures(directory, figures)
    if out:
        out.write_text(json.dumps(figures, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="run folder of `kfashion train`")],
    out: Annotated[Path, typer.Option(help="models folder to write")] = Path("models"),
    data: Annotated[
        Path | None, typer.Option(help="dataset for verification inputs and the --compact check")
    ] = None,
    compact: Annotated[
        bool, typer.Option(help="int8 or fp16 weights where the test accuracy loss is under 1 point")
    ] = False,
) -> None:
    """Export a run's models to ONNX with a manifest, verified against torch."""
    from training.data import load_samples
    from training.export import ExportError, export_run

    _check_paths([run, *([data] if data else [])])
    samples = load_samples(data)[0] if data else []
    try:
        manifest = export_run(run, out, samples, compact=compact, log=err.print)
    except ExportError as error:
        err.print(f"[red]{error}")
        raise typer.Exit(1) from error
    err.print(f"{len(manifest.models)} model(s) and {out / 'manifest.json'} written")


@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="image files")],
    out: Annotated[Path | None, typer.Option(help="draw the results on a contact sheet (PNG/JPEG)")] = None,
    models_dir: Annotated[
        Path | None, typer.Option("--models", help="models folder (default: settings)")
    ] = None,
) -> None:
    """Tag images with the installed models, through the same pipeline as /tagging; prints one
    `labels show`-style JSON object per image."""
    import asyncio

    from gateway.exports import result_record
    from gateway.ports import ImageInput

    _check_paths(images)
    settings = _settings(models_dir=models_dir)
    pipeline = _local_pipeline(settings)
    drawn = []
    for path in images:
        try:
            data = path.read_bytes()
            pixels = decode_image(data, settings.image, str(path)).pixels
        except ApiError as error:
            err.print(f"[red]{error.message}")
            continue
        result = asyncio.run(pipeline.tag(ImageInput(path.name, data, pixels)))
        record = result_record(result)
        sys.stdout.write(json.dumps(record_view(record, str(path)), ensure_ascii=False) + "\n")
        drawn.append((pixels, record))
    if out and drawn:
        _write_sheet(drawn, out)


SERVICES = ("gateway", "detector", "attributes", "style", "search")


@app.command()
def serve(
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    service: Annotated[
        str | None,
        typer.Option(
            help="run one service: gateway, detector, attributes, style or search (default: all in one)"
        ),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="where jobs and results are stored")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models", help="models folder")] = None,
    detector_url: Annotated[str | None, typer.Option(help="gateway: the detector service's URL")] = None,
    attributes_url: Annotated[str | None, typer.Option(help="gateway: the attribute service's URL")] = None,
    style_url: Annotated[str | None, typer.Option(help="gateway: the style service's URL")] = None,
    search_url: Annotated[str | None, typer.Option(help="gateway: the search service's URL")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the API. Embedded by default: the gateway and every model service in this process. With
    --service, one service of a microservice deployment (the gateway then calls the others by URL)."""
    import uvicorn

    if service is not None and service not in SERVICES:
        err.print(f"[red]unknown service {service!r}; choose from {', '.join(SERVICES)}")
        raise typer.Exit(2)
    settings = _settings(data_dir, models_dir)
    urls = {"detector": detector_url, "attributes": attributes_url, "style": style_url, "search": search_url}
    if any(urls.values()):
        settings.services = settings.services.model_copy(update={k: v for k, v in urls.items() if v})
    if service in (None, "gateway"):
        if service is None and (settings.services.remote or settings.services.search):
            err.print("[red]service URLs are set: run the gateway with --service gateway, or unset them")
            raise typer.Exit(2)
        if service == "gateway" and not settings.services.remote:
            err.print("[yellow]no service URLs: the gateway runs the models in-process (embedded)")
        if host not in ("127.0.0.1", "localhost", "::1") and not settings.gateway.api_keys:
            err.print(
                f"[yellow]listening on {host} with no API keys: anyone who reaches it can change the catalog"
                " (set KFASHION_GATEWAY__API_KEYS, docs/api.md)"
            )
        from gateway.app import create_app
    else:
        create_app = importlib.import_module(f"services.{service}.app").create_app
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)


@catalog_app.command("add")
def catalog_add(
    folder: Annotated[
        str, typer.Argument(help="a folder of images, a K-Fashion dataset tree, or a folder link (http)")
    ],
    data_dir: Annotated[Path | None, typer.Option(help="the server's data dir (default: settings)")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models", help="models folder")] = None,
    batch: Annotated[int, typer.Option(min=1, max=64, help="images tagged and stored per step")] = 8,
    limit: Annotated[int | None, typer.Option(min=1, help="stop after this many images")] = None,
    products: Annotated[
        Path | None,
        typer.Option(
            help="CSV of the shop's products: a `file` column (the image's path under FOLDER, or its name), "
            "`product_id`, and any other columns as the product's fields"
        ),
    ] = None,
) -> None:
    """Tag every image under FOLDER and add it to the catalog (each stored once, by content), through the
    same path as POST /catalog/images, with its product from --products. FOLDER may be a folder link, read
    as /tagging reads one (a web server's index page or an S3 listing); its host need not be in
    KFASHION_GATEWAY__URL_HOSTS, since whoever runs the command chose it. Run it while the server is
    stopped (it opens the same database and indexes), or post to a running server's /catalog/images
    instead."""
    import asyncio

    from gateway.catalog import SearchClient, add_to_catalog
    from gateway.inputs import Source, is_image_name, listed_sources
    from services.search.products import ProductFields, read_products

    settings = _settings(data_dir, models_dir)
    root = Path(folder)
    items: list[Path] | list[Source]
    if folder.startswith(("http://", "https://")):
        items = asyncio.run(listed_sources(folder, settings, limit))
        if len(items) == 1 and items[0].error:  # the listing could not be read, or lists no images
            err.print(f"[red]{items[0].error.message}")
            raise typer.Exit(1)
    elif root.is_dir():
        items = sorted(p for p in root.rglob("*") if p.is_file() and is_image_name(p.name))
        items = items[:limit] if limit else items
    else:
        err.print(f"[red]{folder} is not a folder or a folder link")
        raise typer.Exit(2)
    if not items:
        err.print(f"[yellow]no images under {folder}")
        raise typer.Exit(1)

    def name(item: Path | Source) -> str:
        return item.name if isinstance(item, Source) else str(item.relative_to(root))

    def source(item: Path | Source) -> Source:
        """A listed image is fetched by the pipeline; a file is read here, a batch at a time."""
        return item if isinstance(item, Source) else Source(name(item), item.read_bytes())

    try:
        product_of = read_products(products) if products else {}
    except ValueError as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    # Images of one product go in together: the catalog takes one product per request.
    groups: dict[str, tuple[ProductFields | None, list]] = {}
    for item in items:
        found = product_of.get(name(item)) or product_of.get(name(item).rsplit("/", 1)[-1])
        key = json.dumps(found.changes(), sort_keys=True) if found else ""
        groups.setdefault(key, (found, []))[1].append(item)

    pipeline = _local_pipeline(settings)
    search = SearchClient(settings)
    search.start()
    counts: Counter[str] = Counter()
    failures: list[str] = []

    async def run(bar: Progress, task: int) -> None:
        try:
            for product, members in groups.values():
                await add_group(bar, task, members, product)
        finally:
            await pipeline.close()
            await search.close()

    async def add_group(bar: Progress, task: int, members: list, product: ProductFields | None) -> None:
        for start in range(0, len(members), batch):
            chunk = [source(item) for item in members[start : start + batch]]
            for result in await add_to_catalog(pipeline, search, chunk, product):
                counts[result["status"]] += 1
                if result["status"] == "failed":
                    failures.append(f"{result['file']}: {result['error']['message']}")
            bar.advance(task, len(chunk))

    with progress_bar() as bar:
        task = bar.add_task("catalog add", total=len(items))
        asyncio.run(run(bar, task))
    for failure in failures:
        err.print(f"[red]failed[/red] {failure}")
    summary = {"images": len(items), **{k: counts[k] for k in ("added", "exists", "failed")}}
    sys.stdout.write(json.dumps(summary) + "\n")
    if counts["failed"]:
        raise typer.Exit(1)


@catalog_app.command("retag")
def catalog_retag(
    data_dir: Annotated[Path | None, typer.Option(help="the server's data dir (default: settings)")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models", help="models folder")] = None,
    every: Annotated[bool, typer.Option("--all", help="every image, not only those of other models")] = False,
) -> None:
    """Tag the catalog's images again with the installed models (after a model upgrade): by default the
    images tagged by other model or taxonomy versions. Their items, styles and search vectors are replaced.
    Run it while the server is stopped, or call POST /catalog/images/{id}/retag on a running one."""
    import asyncio

    from gateway.catalog import SearchClient, retag_image

    settings = _settings(data_dir, models_dir)
    pipeline = _local_pipeline(settings)
    search = SearchClient(settings)
    search.start()
    failures: list[str] = []

    async def image_ids() -> list[int]:
        if not every:
            return (search.body(await search.send("GET", "/catalog/stale")))["image_ids"]
        ids, offset = [], 0
        while True:
            page = search.body(
                await search.send("GET", "/catalog/images", params={"offset": offset, "limit": 500})
            )
            ids += [image["id"] for image in page["images"]]
            offset += 500
            if offset >= page["total"]:
                return sorted(ids)

    async def run() -> int:
        try:
            ids = await image_ids()
            with progress_bar() as bar:
                task = bar.add_task("catalog retag", total=len(ids))
                for image_id in ids:
                    try:
                        await retag_image(pipeline, search, image_id)
                    except ApiError as error:
                        failures.append(f"image {image_id}: {error.message}")
                    bar.advance(task)
            return len(ids)
        finally:
            await pipeline.close()
            await search.close()

    total = asyncio.run(run())
    for failure in failures:
        err.print(f"[red]failed[/red] {failure}")
    sys.stdout.write(
        json.dumps({"images": total, "retagged": total - len(failures), "failed": len(failures)}) + "\n"
    )
    if failures:
        raise typer.Exit(1)


@catalog_app.command("copy")
def catalog_copy(
    to: Annotated[
        Path,
        typer.Option(
            "--to",
            help="an env file (KEY=VALUE lines) of the target's settings: KFASHION_DATABASE,"
            " KFASHION_STORAGE__* (and KFASHION_DATA_DIR for a local one), as deploy/k8s/credentials.env",
        ),
    ],
    data_dir: Annotated[Path | None, typer.Option(help="the source's data dir (default: settings)")] = None,
) -> None:
    """Copy the catalog (images, items with their vectors, products, collections, the saved indexes) and
    the tagging jobs (results, inputs still waiting, callbacks) to another database and file store, such as
    from the embedded default's SQLite and local disk to PostgreSQL and S3, keeping every id and tagging
    nothing again. The target's settings come from the --to file alone, the source's from the environment
    as `kfashion serve` reads it. Run it while the servers are stopped; a copy stopped part-way is taken
    up where it stopped by running it again, and the target's worker tags the jobs' waiting images."""
    from gateway.jobs import copy_jobs
    from services.search.copy import CopyRefused, copy_catalog
    from shared.blobs import create_blob_store
    from shared.db import database_engine, row_count
    from shared.schema import catalog_images, tagging_jobs
    from shared.settings import settings_from_env_file

    _check_paths([to])
    source = _settings(data_dir)
    target = settings_from_env_file(to)
    if (target.database_url, target.storage, target.data_dir.resolve()) == (
        source.database_url,
        source.storage,
        source.data_dir.resolve(),
    ):
        err.print(f"[red]{to} names the source itself")
        raise typer.Exit(2)
    source_engine, target_engine = database_engine(source.database_url), database_engine(target.database_url)
    stores = (
        source_engine,
        create_blob_store(source.storage, source.data_dir),
        target_engine,
        create_blob_store(target.storage, target.data_dir),
    )
    with progress_bar() as bar:
        images = bar.add_task("catalog images", total=row_count(source_engine, catalog_images))
        jobs = bar.add_task("tagging jobs", total=row_count(source_engine, tagging_jobs))
        try:
            counts = copy_catalog(*stores, on_progress=lambda n: bar.advance(images, n))
        except CopyRefused as exc:
            err.print(f"[red]{exc}")
            raise typer.Exit(1) from exc
        counts["jobs"] = copy_jobs(*stores, on_progress=lambda n: bar.advance(jobs, n))
    sys.stdout.write(json.dumps(counts) + "\n")


@stack_app.command("up")
def stack_up(
    folder: StackDir = Path("data/stack"),
    port: Annotated[int, typer.Option(min=1, max=65535, help="the gateway's port")] = 8000,
    triton: Annotated[bool, typer.Option(help="models on a Triton server (needs .venv-triton)")] = False,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL; default SQLite in the folder")] = None,
    s3_endpoint: Annotated[
        str | None, typer.Option(help="host:port of an S3 server; default local disk")
    ] = None,
    s3_bucket: Annotated[str, typer.Option()] = "kfashion",
    s3_prefix: Annotated[str, typer.Option()] = "",
    s3_access_key: Annotated[str | None, typer.Option(envvar="KFASHION_STORAGE__ACCESS_KEY")] = None,
    s3_secret_key: Annotated[str | None, typer.Option(envvar="KFASHION_STORAGE__SECRET_KEY")] = None,
    s3_server: Annotated[
        bool, typer.Option(help="start a local S3-protocol server (moto's) as well")
    ] = False,
    schema: Annotated[str | None, typer.Option(help="PostgreSQL schema for the tables (created)")] = None,
) -> None:
    """Start detector, attributes, style, search and the gateway as separate processes (and Triton with
    --triton, an S3 server with --s3-server), wait until each is ready, and return; `kfashion stack down`
    stops them."""
    from kfashion import stack

    try:
        started = stack.up(
            folder, port, triton, database, s3_endpoint, s3_bucket, s3_prefix, s3_access_key, s3_secret_key,
            s3_server=s3_server, schema=schema,
        )  # fmt: skip
    except (RuntimeError, TimeoutError) as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    for process in started.processes:
        err.print(f"{process.name:10} pid {process.pid:7}  {process.url}  log {process.log}")
    sys.stdout.write(json.dumps({"gateway": started.gateway_url, "folder": started.folder}) + "\n")


@stack_app.command("down")
def stack_down(folder: StackDir = Path("data/stack")) -> None:
    """Stop every process of the stack."""
    from kfashion import stack

    stopped = stack.down(folder)
    sys.stdout.write(json.dumps({"stopped": stopped}) + "\n")


@stack_app.command("status")
def stack_status(folder: StackDir = Path("data/stack")) -> None:
    """Each process of the stack: pid, URL, alive."""
    from kfashion import stack

    sys.stdout.write(json.dumps(stack.status(folder)) + "\n")


@models_app.command("list")
def models_list(
    models_dir: Annotated[
        Path | None, typer.Option("--models", help="models folder (default: settings)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the whole manifest, with file checks")] = False,
) -> None:
    """The installed models with their manifests (metrics included).

    Exit 1 if a file is missing or altered."""
    from shared.manifest import check_files

    directory = models_dir or load_settings().models_dir
    manifest = _installed_models(directory)
    status = check_files(directory, manifest)
    if as_json:
        data = json.loads(manifest.model_dump_json())
        for name, entry in data["models"].items():
            entry["status"] = status[name]
        sys.stdout.write(
            json.dumps({"models_dir": str(directory), **data}, ensure_ascii=False, indent=1) + "\n"
        )
    else:
        out = Console()
        for name, entry in manifest.models.items():
            size = entry.bytes / 1e6
            out.print(f"{name:<11} {entry.file:<18} {size:6.1f} MB  {entry.storage}  {status[name]}")
    if any(v != "ok" for v in status.values()):
        raise typer.Exit(1)


@models_app.command("upgrade")
def models_upgrade(
    models_dir: Annotated[
        Path | None, typer.Option("--models", help="models folder (default: settings)")
    ] = None,
) -> None:
    """Rewrite models exported by an earlier version to run faster with the same outputs (checked on each
    model before it is written; the manifest's sha256 follows). No retraining."""
    from training.graph_upgrade import MAX_DIFFERENCE, upgrade_models

    with _models_required():
        upgrades = upgrade_models(models_dir or load_settings().models_dir)
    for upgrade in upgrades:
        if upgrade.status == "rewritten":
            sys.stdout.write(
                f"{upgrade.model}: colour histogram rewritten, outputs within {upgrade.difference:.1e} "
                f"(allowed {MAX_DIFFERENCE:.0e})\n"
            )
        elif upgrade.status == "refused":
            err.print(
                f"[red]{upgrade.model}: the rewrite moved an output by {upgrade.difference:.1e} (allowed "
                f"{MAX_DIFFERENCE:.0e}); left as it was"
            )
        else:
            sys.stdout.write(f"{upgrade.model}: already current\n")
    if any(upgrade.status == "refused" for upgrade in upgrades):
        raise typer.Exit(1)


@models_app.command("triton-repo")
def models_triton_repo(
    out: Annotated[Path, typer.Argument(help="the repository folder to write (models in it are replaced)")],
    models_dir: Annotated[
        Path | None, typer.Option("--models", help="models folder (default: settings)")
    ] = None,
    variant: Annotated[str, typer.Option(help="gpu (instances per GPU) or cpu")] = "gpu",
    max_batch: Annotated[int, typer.Option(min=1, max=1024, help="Triton max_batch_size")] = 32,
    instances: Annotated[int, typer.Option(min=1, max=64, help="model instances (per GPU for gpu)")] = 1,
    queue_delay_us: Annotated[int, typer.Option(min=0, help="dynamic batching queue delay")] = 2_000,
) -> None:
    """Write a Triton model repository from the installed ONNX models: config.pbtxt (ONNX Runtime backend,
    names and shapes from the manifest, dynamic batching, instance groups) and 1/model.onnx per model."""
    from shared.triton_repo import Batching, write_repository

    if variant not in ("gpu", "cpu"):
        err.print(f"[red]unknown variant {variant!r}; choose gpu or cpu")
        raise typer.Exit(2)
    directory = models_dir or load_settings().models_dir
    batching = Batching(max_batch_size=max_batch, instances=instances, queue_delay_us=queue_delay_us)
    for config in write_repository(directory, out, variant, batching):  # type: ignore[arg-type]
        sys.stdout.write(f"{config}\n")


@models_app.command("bootstrap")
def models_bootstrap(
    out: Annotated[Path, typer.Option(help="models folder to write")] = Path("models"),
    work: Annotated[Path, typer.Option(help="where the generated data and the run go")] = Path(
        "data/bootstrap"
    ),
    count: Annotated[int, typer.Option(min=10, help="images to generate")] = 6000,
    seed: int = 0,
    compact: Annotated[
        bool, typer.Option(help="int8 or fp16 weights where the test loss is under 1 point")
    ] = True,
    device: TrainDevice = "auto",
) -> None:
    """Generate a K-Fashion-format dataset, train every model, evaluate, and export them (15 to 34 minutes on
    2 CPU cores for the default 6,000 images, by CPU)."""
    from training.data import load_samples
    from training.export import export_run
    from training.run import BOOTSTRAP_SETTINGS, TrainConfig, train_run
    from training.synth.dataset import generate_dataset

    started = time.perf_counter()
    data = work / "data"
    with progress_bar() as bar:
        task = bar.add_task("generating", total=count)
        generate_dataset(data, count, seed, on_progress=lambda n: bar.advance(task, n))
        config = TrainConfig(
            data=str(data), out=str(work / "run"), seed=seed, device=device, **BOOTSTRAP_SETTINGS
        )
        result = train_run(config, _StageBars(bar, False).progress())
    _print_headline(result["headline"])
    manifest = export_run(work / "run", out, load_samples(data)[0], compact=compact, log=err.print)
    err.print(
        f"bootstrap done in {time.perf_counter() - started:.0f} s: {len(manifest.models)} models in {out}"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
