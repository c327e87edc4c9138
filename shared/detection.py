"""Turning the detector's output maps into items: one post-processing used by evaluation and serving.

The detector (CenterNet-style, training/detector.py) outputs per region a heat map of object centres
whose non-peaks are already zeroed in the graph (3x3 max-pool), the box size and the centre's
sub-cell offset, at one stride.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.manifest import ModelEntry
from shared.preprocess import Letterbox
from shared.taxonomy import REGIONS


def detector_geometry(entry: ModelEntry) -> tuple[int, int]:
    """The detector's input size and output stride, as its manifest entry says: serving and evaluation
    both letterbox and decode by it, so a detector of another size than ours is read right."""
    return int(entry.preprocessing["input_size"]), int(entry.postprocessing["stride"])


@dataclass(frozen=True, slots=True)
class Detection:
    region: str
    box: tuple[float, float, float, float]  # x, y, width, height in original-image pixels
    score: float


def iou_matrix(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in a with every box in b (corner format)."""
    if len(a_xyxy) == 0 or len(b_xyxy) == 0:
        return np.zeros((len(a_xyxy), len(b_xyxy)), np.float32)
    x0 = np.maximum(a_xyxy[:, None, 0], b_xyxy[None, :, 0])
    y0 = np.maximum(a_xyxy[:, None, 1], b_xyxy[None, :, 1])
    x1 = np.minimum(a_xyxy[:, None, 2], b_xyxy[None, :, 2])
    y1 = np.minimum(a_xyxy[:, None, 3], b_xyxy[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a_xyxy[:, 2] - a_xyxy[:, 0]) * (a_xyxy[:, 3] - a_xyxy[:, 1])
    area_b = (b_xyxy[:, 2] - b_xyxy[:, 0]) * (b_xyxy[:, 3] - b_xyxy[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression, best first."""
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        best = order.pop(0)
        keep.append(int(best))
        if order:
            ious = iou_matrix(boxes_xyxy[[best]], boxes_xyxy[order])[0]
            order = [i for i, v in zip(order, ious, strict=True) if v <= iou_threshold]
    return keep


def decode_detections(
    peaks: np.ndarray,
    size: np.ndarray,
    offset: np.ndarray,
    stride: int,
    placement: Letterbox,
    image_width: int,
    image_height: int,
    score_threshold: float = 0.3,
    max_items: int = 20,
    nms_iou: float = 0.6,
) -> list[Detection]:
    """Items of one image from its output maps: peaks (R, H, W); size and offset (2R, H, W) with
    channels 2r, 2r+1 for region r."""
    regions, ys, xs = np.nonzero(peaks >= score_threshold)
    if regions.size == 0:
        return []
    scores = peaks[regions, ys, xs]
    order = np.argsort(-scores)[: max_items * 4]
    regions, ys, xs, scores = regions[order], ys[order], xs[order], scores[order]
    first = 2 * regions
    cx = (xs + offset[first, ys, xs]) * stride
    cy = (ys + offset[first + 1, ys, xs]) * stride
    w = np.maximum(size[first, ys, xs], 0) * stride
    h = np.maximum(size[first + 1, ys, xs], 0) * stride
    boxes = placement.to_image(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, image_width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, image_height)
    detections: list[Detection] = []
    for region_index in np.unique(regions):
        chosen = np.flatnonzero(regions == region_index)
        for k in nms(boxes[chosen], scores[chosen], nms_iou):
            x0, y0, x1, y1 = boxes[chosen[k]]
            if x1 - x0 >= 1 and y1 - y0 >= 1:
                detections.append(
                    Detection(
                        REGIONS[region_index],
                        (float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
                        float(scores[chosen[k]]),
                    )
                )
    detections.sort(key=lambda d: -d.score)
    return detections[:max_items]


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
