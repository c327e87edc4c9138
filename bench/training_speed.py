"""The bootstrap's feature and detector stages against the forms they replaced (2026-12-01), in one process.

    .venv/bin/python -m bench.training_speed --data DIR [--images 300] [--rounds 3]

- model inputs: shared.preprocess.to_tensor (a lookup per uint8 level) against the per-pixel arithmetic it
  replaced, on a batch of 16 random 224 x 224 crops (outputs compared bit for bit);
- feature stage: training.features.compute_features on the first --images images of DIR (a K-Fashion-format
  dataset, e.g. the bootstrap's), all three models with the run's mirrored copies, ONNX Runtime called with
  16 rows (before) and 8 (now);
- detector training: one epoch of the detector head on those images' cached maps, contiguous (before) and
  channels last (now).
Rounds alternate the two forms, so drift on a noisy machine hits both; medians are printed.
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable
from unittest.mock import patch

import numpy as np
import torch

from bench.timing import bootstrap_features, median_seconds
from shared.preprocess import MEAN, STD, to_tensor
from training.backbone import Backbone
from training.detector import train_detector
from training.features import compute_features


def per_pixel_tensor(batch_rgb: np.ndarray) -> np.ndarray:
    """to_tensor as it was before 2026-12-01."""
    x = batch_rgb.astype(np.float32) / 255.0
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def report(what: str, seconds: dict[str, float], unit: float = 1.0, suffix: str = "s") -> None:
    before, now = seconds["before"] * unit, seconds["now"] * unit
    print(f"{what}: before {before:.2f} {suffix}, now {now:.2f} {suffix} ({before / now:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a K-Fashion-format dataset")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")

    crops = np.random.default_rng(0).integers(0, 256, (16, 224, 224, 3), dtype=np.uint8)
    assert np.array_equal(to_tensor(crops), per_pixel_tensor(crops))
    inputs = median_seconds(
        {"before": lambda: per_pixel_tensor(crops), "now": lambda: to_tensor(crops)}, 10 * args.rounds
    )
    report("model inputs, batch of 16 crops", inputs, 1000, "ms")

    samples, plan = bootstrap_features(args.data, args.images)
    backbone = Backbone()

    def features_with(rows_per_call: int) -> Callable[[], object]:
        def run() -> object:
            with patch("training.features.BATCH", rows_per_call):
                return compute_features(samples, backbone, plan)

        return run

    stage = median_seconds({"before": features_with(16), "now": features_with(8)}, args.rounds)
    report(
        f"feature stage, {len(samples)} images ({plan.detector_rows} detector inputs, "
        f"{plan.crop_rows} crops, {plan.person_rows} people)",
        stage,
    )

    cache = features_with(8)()
    train_rows = np.arange(plan.detector_rows)

    def epoch_with(memory_format: torch.memory_format) -> Callable[[], object]:
        def run() -> object:
            with patch("training.detector.MAPS_FORMAT", memory_format):
                return train_detector(cache.detector, train_rows, 1, seed=0)

        return run

    epoch = median_seconds(
        {"before": epoch_with(torch.contiguous_format), "now": epoch_with(torch.channels_last)}, args.rounds
    )
    report(f"detector training, one epoch of {len(train_rows)} rows", epoch)


if __name__ == "__main__":
    main()
