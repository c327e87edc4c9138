"""The detector's score threshold on real photos: per threshold, CCP validation AP50 (mean over regions), the
share of shown detections that are right (precision at IoU 0.5 with a labelled garment of their region) and
the clothing-dataset validation photos with a garment found.

    .venv/bin/python -m bench.real_threshold [--models models] [--realdata ../shared/realdata]

Runs the installed detector once per photo at the lowest threshold (services/detector, ONNX Runtime) and
filters. AP50 only grows as the threshold falls (more detections extend the precision-recall curve); what a
shop sees is the precision, so the manifest's threshold is chosen where both hold (docs/models.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from services.detector.model import Detector
from shared.detection import iou_matrix, xywh_to_xyxy
from shared.imaging import ImageLimits, decode_image
from shared.runtime import create_runtime
from shared.settings import DetectorSettings, RuntimeSettings
from shared.taxonomy import REGIONS
from training.metrics import detection_metrics
from training.realdata import read_all, realdata_root

THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)


def sweep(models: Path, realdata: Path) -> list[dict]:
    runtime = create_runtime(models, RuntimeSettings(threads=2))
    runtime.load(["detector"])
    detector = Detector(runtime, DetectorSettings(score_threshold=min(THRESHOLDS), max_items=100))
    photos = read_all(realdata, ("ccp", "clothing"))
    limits = ImageLimits()

    def detect(path: Path) -> list:
        return detector.detect([decode_image(path.read_bytes(), limits).pixels])[0]

    ccp = [p for p in photos["ccp"] if p.split == "val"]
    clothing = [p for p in photos["clothing"] if p.split == "val"]
    ccp_found = [detect(p.path) for p in ccp]
    clothing_found = [detect(p.path) for p in clothing]
    rows = []
    for threshold in THRESHOLDS:
        truth, predicted, right, shown = [], [], 0, 0
        for photo, found in zip(ccp, ccp_found, strict=True):
            kept = [d for d in found if d.score >= threshold]
            boxes = xywh_to_xyxy([it.box for it in photo.items])
            regions = np.array([REGIONS.index(it.region) for it in photo.items])
            truth.append((boxes, regions))
            predicted.append(
                (
                    xywh_to_xyxy([d.box for d in kept]),
                    np.array([REGIONS.index(d.region) for d in kept]),
                    np.array([d.score for d in kept], np.float32),
                )
            )
            for d in kept:
                shown += 1
                same = boxes[regions == REGIONS.index(d.region)]
                right += bool(len(same)) and iou_matrix(xywh_to_xyxy([d.box]), same).max() >= 0.5
        ap = detection_metrics(truth, predicted, REGIONS)
        rows.append(
            {
                "threshold": threshold,
                "ccp_AP50": {r: round(ap[r]["AP50"], 3) for r in (*REGIONS, "mean")},
                "ccp_precision": round(right / max(shown, 1), 3),
                "ccp_detections_per_photo": round(shown / len(ccp), 2),
                "clothing_found": round(
                    float(np.mean([any(d.score >= threshold for d in f) for f in clothing_found])), 3
                ),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--realdata", type=Path, default=None)
    args = parser.parse_args()
    for row in sweep(args.models, realdata_root(args.realdata)):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
