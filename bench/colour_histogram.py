"""The pooled backbone's colour histogram: the matrix-product form (training.backbone.ColourHistogram)
against the form it replaced, which built every pixel's difference to every palette colour.

    .venv/bin/python -m bench.colour_histogram [--repeats 10] [--data DIR --images 300]

Both are exported to ONNX and run by ONNX Runtime on the CPU on the same batches of 16 random 224 x 224
crops, alternating, in one process: milliseconds per crop for the histogram alone and for the whole pooled
backbone (what the attribute and style models run per crop), and the largest difference between the two
forms' outputs. With --data (a K-Fashion-format dataset, e.g. the bootstrap's), also the bootstrap's feature
stage (training.features.compute_features for all three models, mirrored copies as the bootstrap makes them)
on its first --images images with each form, one after the other.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from unittest.mock import patch

import numpy as np
import torch

from bench.timing import bootstrap_features, median_seconds
from shared.runtime import onnx_session
from training.backbone import Backbone, ColourHistogram, PooledBackbone
from training.features import compute_features, export_onnx
from training.graph_upgrade import DistanceHistogram


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--data", type=Path, help="a K-Fashion-format dataset: also time the feature stage")
    parser.add_argument("--images", type=int, default=300)
    args = parser.parse_args()
    backbone = Backbone()
    before = PooledBackbone(backbone)
    before.histogram = DistanceHistogram()
    modules = {
        ("histogram", "before"): DistanceHistogram(),
        ("histogram", "now"): ColourHistogram(),
        ("pooled backbone", "before"): before,
        ("pooled backbone", "now"): PooledBackbone(backbone),
    }
    batch = np.random.default_rng(0).standard_normal((16, 3, 224, 224)).astype(np.float32)
    sessions, outputs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, module in modules.items():
            path = Path(tmp) / f"{key[0].replace(' ', '_')}_{key[1]}.onnx"
            export_onnx(module, torch.zeros(1, 3, 224, 224), path, ["out"])
            sessions[key] = onnx_session(path, threads=2)
            outputs[key] = sessions[key].run(None, {"image": batch})[0]  # warm-up
    seconds = median_seconds(
        {key: partial(session.run, None, {"image": batch}) for key, session in sessions.items()}, args.repeats
    )
    print(f"{platform.processor() or platform.machine()}, batches of {len(batch)}, {args.repeats} repeats")
    for part in ("histogram", "pooled backbone"):
        before_ms, now_ms = (seconds[(part, form)] * 1000 / len(batch) for form in ("before", "now"))
        difference = float(np.abs(outputs[(part, "before")] - outputs[(part, "now")]).max())
        print(
            f"{part}: before {before_ms:.2f} ms per crop, now {now_ms:.2f} "
            f"({before_ms / now_ms:.2f}x), largest output difference {difference:.1e}"
        )

    if args.data:
        feature_stage(backbone, args.data, args.images)


def feature_stage(backbone: Backbone, data: Path, images: int) -> None:
    samples, plan = bootstrap_features(data, images)

    def stage_with(histogram: type) -> Callable[[], object]:
        def run() -> object:
            # PooledBackbone, built inside compute_features, takes the histogram class from training.backbone
            with patch("training.backbone.ColourHistogram", histogram):
                return compute_features(samples, backbone, plan)

        return run

    seconds = median_seconds({"before": stage_with(DistanceHistogram), "now": stage_with(ColourHistogram)}, 1)
    print(
        f"feature stage, {len(samples)} images ({plan.crop_rows} crops, {plan.person_rows} people, "
        f"{plan.detector_rows} detector inputs): before {seconds['before']:.1f} s, "
        f"now {seconds['now']:.1f} s "
        f"({seconds['before'] / seconds['now']:.2f}x)"
    )


if __name__ == "__main__":
    main()
