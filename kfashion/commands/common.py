"""Helpers every command module uses: the console, progress bars, settings, model checks."""

from __future__ import annotations

import contextlib
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
from shared.labels import LabelError, LabelRecord, iter_records
from shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from gateway.tagging import TaggingPipeline
    from shared.manifest import Manifest


err = Console(stderr=True)


PREVIEW_SAMPLES = 16


LabelPaths = Annotated[list[Path], typer.Argument(help="label JSON files or dataset folders")]


TrainDevice = Annotated[
    Literal["auto", "cpu", "cuda"],
    typer.Option(help="where the backbone runs and the heads train: auto is a CUDA GPU when torch sees one"),
]


StackDir = Annotated[Path, typer.Option("--dir", help="the stack's folder: state, logs, local data")]


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


def settings_with(data_dir: Path | None = None, models_dir: Path | None = None) -> Settings:
    """The environment's settings, with the folders given on the command line."""
    overrides = {"data_dir": data_dir, "models_dir": models_dir}
    return load_settings(**{key: value for key, value in overrides.items() if value})


def check_paths(paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        err.print(f"[red]no such file or folder: {', '.join(missing)}")
        raise typer.Exit(2)


@contextlib.contextmanager
def models_required() -> Iterator[None]:
    """Missing models (no manifest, or a file it names) end the command with their message and exit 1, not
    a traceback."""
    try:
        yield
    except FileNotFoundError as error:
        err.print(f"[red]{error}")
        raise typer.Exit(1) from error


def installed_models(directory: Path) -> Manifest:
    """The manifest of the models in `directory`."""
    from shared.manifest import load_manifest

    with models_required():
        return load_manifest(directory)


def local_pipeline(settings: Settings) -> TaggingPipeline:
    """The /tagging pipeline over the models in this process, loaded."""
    from prometheus_client import CollectorRegistry

    from gateway.clients import LocalServices
    from gateway.tagging import TaggingPipeline

    with models_required():
        services = LocalServices(settings, CollectorRegistry())
        services.start()
    return TaggingPipeline(services, settings)


def load_for_preview(paths: list[Path], limit: int) -> list[tuple[object, LabelRecord]]:
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


def write_sheet(pairs: list, out: Path) -> None:
    import cv2  # the CLI's other commands do not need OpenCV loaded

    sheet = contact_sheet([draw_record(pixels, record) for pixels, record in pairs])
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        err.print(f"[red]cannot write {out} (use a .png or .jpg name)")
        raise typer.Exit(2)
    err.print(f"contact sheet of {len(pairs)} image(s): {out}")


class StageBars:
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


def model_names(listed: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated model names, each one of `known`; else exit 2 with the unknown ones named."""
    chosen = tuple(m.strip() for m in listed.split(",") if m.strip())
    unknown = [m for m in chosen if m not in known]
    if unknown:
        err.print(f"[red]unknown model(s) {unknown}; choose from {list(known)}")
        raise typer.Exit(2)
    return chosen
