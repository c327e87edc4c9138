"""`kfashion models list|upgrade|triton-repo|bootstrap`: the installed models."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kfashion.commands.common import (
    StageBars,
    TrainDevice,
    err,
    installed_models,
    models_required,
    progress_bar,
)
from kfashion.commands.training import print_headline
from shared.settings import load_settings

models_app = typer.Typer(
    help="Installed models: list them, or bootstrap them from generated data.", no_args_is_help=True
)


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
    manifest = installed_models(directory)
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

    with models_required():
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
        result = train_run(config, StageBars(bar, False).progress())
    print_headline(result["headline"])
    manifest = export_run(work / "run", out, load_samples(data)[0], compact=compact, log=err.print)
    err.print(
        f"bootstrap done in {time.perf_counter() - started:.0f} s: {len(manifest.models)} models in {out}"
    )
