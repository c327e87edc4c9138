"""What the before/now benchmarks share: forms timed in alternating rounds, the bootstrap's feature plan."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

import numpy as np

from training.data import Sample, load_samples
from training.features import FeaturePlan, plan_features
from training.run import BOOTSTRAP_SETTINGS, TrainConfig

Form = TypeVar("Form", bound=Hashable)


def median_seconds(forms: dict[Form, Callable[[], object]], rounds: int) -> dict[Form, float]:
    """Median seconds of each form over `rounds`; each round runs every form once, so drift on a noisy
    machine hits them all."""
    times: dict[Form, list[float]] = {name: [] for name in forms}
    for _ in range(rounds):
        for name, run in forms.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: float(np.median(values)) for name, values in times.items()}


def bootstrap_features(data: str | Path, images: int) -> tuple[list[Sample], FeaturePlan]:
    """The first `images` samples of a dataset and the feature plan a bootstrap run makes for them (all three
    models, its mirrored copies, in memory)."""
    samples = load_samples(data, limit=images)[0]
    config = TrainConfig(data=str(data), out="", **BOOTSTRAP_SETTINGS)
    return samples, plan_features(samples, set(config.models), set(config.mirror), "memory")
