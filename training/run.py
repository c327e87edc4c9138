"""A training run: features once, the heads trained with per-epoch validation (the best epoch is kept),
every split evaluated, all written to a run folder:

    RUN/config.json       what was trained, on what data, with which settings and imbalance weights
    RUN/history.jsonl     one line per model and epoch: train loss, the validation figure, seconds so far
    RUN/heads.pt          the best heads (the backbone is the packaged pretrained one, frozen)
    RUN/metrics.json      train / val / test metrics of every model
    RUN/report.md         the same as a readable report
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shared.taxonomy import TAXONOMY_VERSION
from training.attributes import build_targets as build_attribute_targets
from training.attributes import train_attributes
from training.backbone import Backbone
from training.data import load_samples, style_target
from training.detector import train_detector
from training.evaluate import (
    evaluate_attributes,
    evaluate_detector,
    evaluate_style,
    headline,
    markdown_report,
)
from training.features import FeaturePlan, compute_features, plan_features
from training.loop import training_device
from training.style import train_style

MODELS = ("detector", "attributes", "style")
FEATURE_FOLDER_PREFIX = "features-"  # RUN/features-*: a disk feature store while its run lasts
# Settings of `kfashion models bootstrap` (docs/models.md, "Mirrored detector images"): the detector also
# trains on its 4,800 training images mirrored, 8 epochs over the 9,600 (validation AP50 0.880 -> 0.902).
# On the real K-Fashion's million images the copies would double a cache of hundreds of GB, so `kfashion
# train` mirrors only the attribute and style crops unless asked.
BOOTSTRAP_SETTINGS = {
    "detector_epochs": 8,
    "attribute_epochs": 40,
    "style_epochs": 60,
    "mirror": ("detector", "attributes", "style"),
}


@dataclass
class TrainConfig:
    data: str
    out: str
    models: tuple[str, ...] = MODELS
    detector_epochs: int = 12
    attribute_epochs: int = 40
    style_epochs: int = 60
    seed: int = 0
    limit: int | None = None  # at most this many images (quick runs)
    shuffle_labels: bool = False  # a control: train on permuted labels, which must fail the thresholds
    threads: int = 0  # torch threads; 0 = torch's default
    device: str = "auto"  # where the heads train and the backbone runs: auto (CUDA when present), cpu, cuda
    workers: int = 4  # threads decoding images ahead of the backbone
    mirror: tuple[str, ...] = ("attributes", "style")  # models whose training images also get a mirrored copy
    feature_store: str = "auto"  # backbone features: auto, memory, or disk (memory-mapped files in the run)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Progress:
    """Callbacks a caller can hook a progress bar to."""

    stage: Callable[[str, int], None] = lambda name, total: None
    advance: Callable[[int], None] = lambda n: None
    log: Callable[[str], None] = lambda message: None
    _history: list[dict] = field(default_factory=list)


class _BestKeeper:
    """Keeps the head state of the epoch with the best validation figure."""

    def __init__(
        self,
        model: str,
        validate: Callable[[nn.Module], float],
        history: list,
        progress: Progress,
        every: int = 1,
    ):
        self.model, self.validate, self.history, self.progress, self.every = (
            model,
            validate,
            history,
            progress,
            every,
        )
        self.best, self.state = -np.inf, None
        self.started = time.perf_counter()

    def __call__(self, epoch: int, loss: float, head: nn.Module) -> None:
        entry = {"model": self.model, "epoch": epoch + 1, "train_loss": round(loss, 5)}
        if (epoch + 1) % self.every == 0:
            head.eval()
            score = self.validate(head)
            head.train()
            entry["val"] = round(score, 5)
            if score > self.best:
                self.best, self.state = score, copy.deepcopy(head.state_dict())
        entry["seconds"] = round(time.perf_counter() - self.started, 1)  # since training began
        self.history.append(entry)
        self.progress.advance(1)
        self.progress.log(
            f"{self.model} epoch {epoch + 1}: loss {loss:.4f}"
            + (f", val {entry['val']:.4f}" if "val" in entry else "")
        )

    def restore(self, head: nn.Module) -> nn.Module:
        if self.state is not None:
            head.load_state_dict(self.state)
        return head.eval()


def _shuffle(samples: list, seed: int) -> None:
    """The control run: every image gets another image's items (boxes, regions, attributes) and another
    image's styles, so no label matches its pixels. A model that still scores well is not learning
    from the pictures."""
    rng = np.random.default_rng(seed + 99)
    items = [s.record.items for s in samples]
    styles = [s.record.styles for s in samples]
    for sample, k, j in zip(
        samples, rng.permutation(len(samples)), rng.permutation(len(samples)), strict=True
    ):
        sample.record.items = items[k]
        sample.record.styles = styles[j]


def train_run(config: TrainConfig, progress: Progress | None = None) -> dict:
    progress = progress or Progress()
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    # A run killed outright (out of memory, SIGKILL) cannot remove its feature files; they can be
    # hundreds of GB, so the next run in the folder does.
    for stale in out.glob(f"{FEATURE_FOLDER_PREFIX}*"):
        if stale.is_dir():
            progress.log(f"removing {stale}, the feature store of an interrupted run")
            shutil.rmtree(stale)
    started = time.perf_counter()
    samples, data_summary = load_samples(config.data, config.limit)
    if not samples:
        raise ValueError(f"no labelled images with their pictures under {config.data}")
    if config.shuffle_labels:
        _shuffle(samples, config.seed)
    device = training_device(config.device)
    plan = plan_features(samples, set(config.models), set(config.mirror), config.feature_store)
    progress.log(f"features: {plan.bytes / 1e9:.2f} GB in {plan.store}")
    # A disk store lives in the run folder while the run lasts (it can be far larger than the models).
    folder = (
        tempfile.TemporaryDirectory(dir=out, prefix=FEATURE_FOLDER_PREFIX)
        if plan.store == "disk"
        else contextlib.nullcontext(None)
    )
    with folder as feature_folder:
        folder_path = Path(feature_folder) if feature_folder else None
        metrics, state, history, timings, run_config = _train_models(
            config, samples, data_summary, plan, folder_path, device, progress, started
        )
    timings["total_s"] = round(time.perf_counter() - started, 1)
    run_config["timings"] = timings
    torch.save(state, out / "heads.pt")
    (out / "config.json").write_text(
        json.dumps(run_config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    (out / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history), encoding="utf-8")
    (out / "metrics.json").write_text(
        json.dumps(_clean(metrics), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    (out / "report.md").write_text(markdown_report(metrics, f"Run {out.name}"), encoding="utf-8")
    return {"metrics": metrics, "headline": headline(metrics), "timings": timings, "data": data_summary}


def _train_models(
    config: TrainConfig,
    samples: list,
    data_summary: dict,
    plan: FeaturePlan,
    feature_folder: Path | None,
    device: torch.device,
    progress: Progress,
    started: float,
) -> tuple[dict, dict, list[dict], dict, dict]:
    """Features once, then each model trained, validated per epoch and evaluated on every split."""
    backbone = Backbone()
    progress.stage("features", len(samples))
    cache = compute_features(
        samples,
        backbone,
        plan,
        feature_folder,
        on_progress=progress.advance,
        device=device.type,
        workers=config.workers,
    )
    timings = {"features_s": round(time.perf_counter() - started, 1)}
    history: list[dict] = []
    state: dict = {"taxonomy_version": TAXONOMY_VERSION, "config": config.to_dict()}
    metrics: dict = {}
    run_config = {
        **config.to_dict(),
        "device_used": str(device),
        "features": plan.to_dict(),
        "taxonomy_version": TAXONOMY_VERSION,
        "data_summary": data_summary,
    }

    if "detector" in config.models:
        t = time.perf_counter()
        features = cache.detector
        splits = [samples[s].split for s in features.sample]
        train_rows = np.array([i for i, s in enumerate(splits) if s == "train"])
        val_samples = [
            samples[i] for i in sorted({features.sample[r] for r in range(len(splits)) if splits[r] == "val"})
        ]

        def validate_detector(head: nn.Module) -> float:
            if not val_samples:
                return 0.0
            result = evaluate_detector(head, samples, cache, validation=True).get("val", {})
            return result.get("mean", {}).get("AP50", 0.0)

        keeper = _BestKeeper(
            "detector", validate_detector, history, progress, every=max(1, config.detector_epochs // 6)
        )
        progress.stage("detector", config.detector_epochs)
        head = keeper.restore(
            train_detector(features, train_rows, config.detector_epochs, config.seed, keeper, device=device)
        )
        state["detector"] = head.state_dict()
        metrics["detector"] = evaluate_detector(head, samples, cache)
        timings["detector_s"] = round(time.perf_counter() - t, 1)

    if "attributes" in config.models:
        t = time.perf_counter()
        crops = cache.crops
        targets = build_attribute_targets(
            [samples[s].record.items[i] for s, i in zip(crops.sample, crops.item, strict=True)]
        )
        splits = [samples[s].split for s in crops.sample]
        train_rows = np.array([i for i, s in enumerate(splits) if s == "train"])

        def validate_attributes(head: nn.Module) -> float:
            result = evaluate_attributes(head, samples, cache, targets, validation=True).get("val")
            if not result:
                return 0.0
            return float(np.mean([result["category"].get("top1", 0), result["color"].get("top1", 0)]))

        keeper = _BestKeeper(
            "attributes", validate_attributes, history, progress, every=max(1, config.attribute_epochs // 8)
        )
        progress.stage("attributes", config.attribute_epochs)
        trained = train_attributes(
            crops.values, targets, train_rows, config.attribute_epochs, config.seed, keeper, device=device
        )
        head = keeper.restore(trained.head)
        state["attributes"] = head.state_dict()
        run_config["imbalance_weights"] = trained.weights
        metrics["attributes"] = evaluate_attributes(head, samples, cache, targets)
        timings["attributes_s"] = round(time.perf_counter() - t, 1)

    if "style" in config.models:
        t = time.perf_counter()
        person = cache.person
        labels = [style_target(samples[s].record) for s in person.sample]
        present = np.array([v is not None for v in labels])
        targets = np.stack([v if v is not None else np.zeros(23, np.float32) for v in labels])
        splits = [samples[s].split for s in person.sample]
        train_rows = np.array([i for i, s in enumerate(splits) if s == "train"])

        def validate_style(head: nn.Module) -> float:
            return evaluate_style(head, samples, cache, validation=True).get("val", {}).get("mAP", 0.0)

        keeper = _BestKeeper(
            "style", validate_style, history, progress, every=max(1, config.style_epochs // 10)
        )
        progress.stage("style", config.style_epochs)
        head = keeper.restore(
            train_style(
                person.values,
                targets,
                present,
                train_rows,
                config.style_epochs,
                config.seed,
                keeper,
                device=device,
            )
        )
        state["style"] = head.state_dict()
        metrics["style"] = evaluate_style(head, samples, cache)
        timings["style_s"] = round(time.perf_counter() - t, 1)

    return metrics, state, history, timings, run_config


def _clean(value: object) -> object:
    """JSON-safe: NaN becomes null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
