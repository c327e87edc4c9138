"""The detector's score threshold: labelled items found against detections shown, per threshold.

    .venv/bin/python -m bench.detector_threshold [--models models] [--baseline OTHER_MODELS]
                                                 [--images 300] [--seed 777]

Generates `--images` pictures the bootstrap never saw (seed 777, as the tests' unseen pictures), runs the
installed detector once at a low threshold and, per threshold, counts the labelled items found (a
detection of the same region with IoU >= 0.5, as /tagging's test counts them) and the detections a user
would see. `--baseline` measures another models folder on the same pictures, for a ratio in one run.
The manifest's threshold is the highest at which issue 4's 0.90 of the items are found: every lower one
shows more detections, mostly wrong ones.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from services.detector.model import Detector
from shared.imaging import ImageLimits, decode_image
from shared.runtime import create_runtime
from shared.settings import DetectorSettings, RuntimeSettings
from training.data import Sample, load_samples
from training.metrics import labelled_items_found
from training.synth.dataset import generate_dataset

THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
LOWEST = min(THRESHOLDS)


def _detections(models: Path, samples: list[Sample]) -> list[list]:
    runtime = create_runtime(models, RuntimeSettings(threads=2))
    runtime.load(["detector"])
    detector = Detector(runtime, DetectorSettings(score_threshold=LOWEST, max_items=100))
    limits = ImageLimits()
    return [
        detector.detect([decode_image(sample.image_path.read_bytes(), limits).pixels])[0]
        for sample in samples
    ]


def _found(samples: list[Sample], detections: list[list], threshold: float) -> tuple[int, int, int]:
    """(labelled items found, labelled items, detections at or above the threshold)."""
    found = total = shown = 0
    for sample, image_detections in zip(samples, detections, strict=True):
        kept = [(d.region, d.box) for d in image_detections if d.score >= threshold]
        shown += len(kept)
        total += len(sample.record.items)
        found += labelled_items_found([(item.region, item.box) for item in sample.record.items], kept)
    return found, total, shown


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--baseline", type=Path, help="another models folder, measured on the same pictures")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--seed", type=int, default=777)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        generate_dataset(Path(folder), args.images, args.seed, workers=2)
        samples = load_samples(Path(folder))[0]
        folders = {"models": args.models} | ({"baseline": args.baseline} if args.baseline else {})
        measured = {name: _detections(path, samples) for name, path in folders.items()}
    print(f"{len(samples)} generated pictures (seed {args.seed}), a labelled item found at IoU >= 0.5")
    print("| models | threshold | found | share found | detections | detections per labelled item |")
    print("|---|---|---|---|---|---|")
    for name, detections in measured.items():
        for threshold in THRESHOLDS:
            found, total, shown = _found(samples, detections, threshold)
            print(
                f"| {folders[name]} | {threshold:.2f} | {found}/{total} | {found / total:.3f} | {shown} "
                f"| {shown / total:.2f} |"
            )


if __name__ == "__main__":
    main()
