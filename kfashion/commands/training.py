"""Data and models: `kfashion synth`, `train`, `train-real`, `import`, `eval`, `export`."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from kfashion.commands.common import (
    PREVIEW_SAMPLES,
    StageBars,
    TrainDevice,
    check_paths,
    err,
    installed_models,
    load_for_preview,
    model_names,
    progress_bar,
    write_sheet,
)
from shared.settings import load_settings


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
            pairs = load_for_preview(label_paths[:PREVIEW_SAMPLES], PREVIEW_SAMPLES)
        else:
            samples = [render_sample(i, seed) for i in range(min(count, PREVIEW_SAMPLES))]
            pairs = [(s.pixels, s.record) for s in samples]
        write_sheet(pairs, preview)


def print_headline(headline: dict) -> None:
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


def print_layering(layering: dict) -> None:
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

    chosen, mirrored = model_names(models, MODELS), model_names(mirror, MODELS)
    check_paths([data])
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
        result = train_run(config, StageBars(bar, verbose).progress())
    print_headline(result["headline"])
    err.print(f"run folder: {out} (report.md, metrics.json); took {result['timings']['total_s']} s")


def train_real(
    out: Annotated[Path, typer.Option(help="run folder to write (checkpoints, then what export reads)")],
    realdata: Annotated[
        Path | None,
        typer.Option(help="the real photo sets (default: KFASHION_REALDATA or ../shared/realdata)"),
    ] = None,
    generated: Annotated[
        Path | None, typer.Option(help="a K-Fashion-format folder (`kfashion synth`) for what real sets lack")
    ] = None,
    stages: Annotated[str, typer.Option(help="comma-separated: detector,boxes,attributes,style")] = (
        "detector,boxes,attributes"
    ),
    detector_steps: Annotated[int, typer.Option(min=1)] = 900,
    attribute_steps: Annotated[int, typer.Option(min=1)] = 700,
    frozen_blocks: Annotated[
        int, typer.Option(min=0, max=16, help="backbone blocks kept frozen (16: heads only)")
    ] = 5,
    generated_share: Annotated[
        float | None,
        typer.Option(min=0, max=1, help="share of generated pictures in each batch (default: the module's)"),
    ] = None,
    start_from: Annotated[
        Path | None,
        typer.Option(
            help="a run folder (heads.pt) or a models folder (its models read back from their ONNX files)"
            " to start from"
        ),
    ] = None,
    balanced: Annotated[
        bool, typer.Option(help="draw real garments favouring rare labels (attribute model)")
    ] = False,
    tagged_photos: Annotated[
        bool,
        typer.Option(help="also CCP's tag-only photos, boxed by a detector where their tags name a garment"),
    ] = False,
    lr: Annotated[float, typer.Option(min=0)] = 2e-3,
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
        stages=model_names(stages, STAGES),
        detector_steps=detector_steps,
        attribute_steps=attribute_steps,
        frozen_blocks=frozen_blocks,
        generated_share=generated_share,
        start_from=str(start_from) if start_from else None,
        balanced=balanced,
        tagged_photos=tagged_photos,
        lr=lr,
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

    check_paths([source])
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
        evaluate_real(Path(directory), realdata, limit, out, record)
        if data is None:
            return
    if data is None:
        err.print("[red]give --data (a K-Fashion-format dataset) or --real")
        raise typer.Exit(2)
    from shared.detection import detector_geometry
    from training.data import load_samples
    from training.evaluate import headline
    from training.onnx_eval import aspect_powers, evaluate_onnx, retrieval_gallery

    check_paths([data])
    manifest = installed_models(directory)
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
    print_headline(headline({model: {split: values} for model, values in metrics.items()}))
    print_layering(metrics.get("layering", {}))
    if out:
        out.write_text(
            json.dumps(metrics, ensure_ascii=False, indent=1, default=float) + "\n", encoding="utf-8"
        )


def evaluate_real(
    directory: Path, realdata: Path | None, limit: int | None, out: Path | None, record: bool
) -> None:
    from training.real_eval import measure
    from training.real_eval import record as record_figures
    from training.realdata import RealDataMissing

    installed_models(directory)
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

    check_paths([run, *([data] if data else [])])
    samples = load_samples(data)[0] if data else []
    try:
        manifest = export_run(run, out, samples, compact=compact, log=err.print)
    except ExportError as error:
        err.print(f"[red]{error}")
        raise typer.Exit(1) from error
    err.print(f"{len(manifest.models)} model(s) and {out / 'manifest.json'} written")
