"""Turning the detector's output maps into items: one post-processing used by evaluation and serving.

The detector (CenterNet-style, training/detector.py) outputs per region a heat map of object centres
whose non-peaks are already zeroed in the graph (3x3 max-pool), the box size and the centre's
sub-cell offset, at one stride; detectors exported since 2026-12-02 also output `parts`, per region the
share of each cell of a finer grid that shows the garment, from which each box is drawn again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from shared.manifest import ModelEntry
from shared.preprocess import Letterbox
from shared.taxonomy import REGIONS


def detector_geometry(entry: ModelEntry) -> tuple[int, int]:
    """The detector's input size and output stride, as its manifest entry says: serving and evaluation
    both letterbox and decode by it, so a detector of another size than ours is read right."""
    return int(entry.preprocessing["input_size"]), int(entry.postprocessing["stride"])


def detection_outputs(available: Iterable[str]) -> list[str]:
    """The outputs decoding reads, of the ones a detector has: `parts` only where it was trained with
    garment masks (detectors exported before 2026-12-02 have none, and their boxes are decoded as before)."""
    return ["peaks", "size", "offset"] + (["parts"] if "parts" in set(available) else [])


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


# Redrawing a box from the garment's mask (docs/models.md, "Garment masks"; chosen on the validation split):
# the mask is read at PARTS_THRESHOLD within the box grown by PARTS_WINDOW of its size on each side; its
# parts that touch the box (each at least PARTS_MIN_SHARE of what shows there) give the new box, kept only
# when it overlaps the detector's at PARTS_AGREEMENT IoU or more (an open outer's mask box taken from one
# front would lose it).
PARTS_THRESHOLD = 0.3
PARTS_WINDOW = 0.5
PARTS_MIN_SHARE = 0.02
PARTS_AGREEMENT = 0.5


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
    parts: np.ndarray | None = None,
) -> list[Detection]:
    """Items of one image from its output maps: peaks (R, H, W); size and offset (2R, H, W) with
    channels 2r, 2r+1 for region r; parts (R, H', W') when the detector has them, to redraw each box."""
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
    input_boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    boxes = _in_image(input_boxes, placement, image_width, image_height)
    kept: list[int] = []
    for region_index in np.unique(regions):
        chosen = np.flatnonzero(regions == region_index)
        kept += [int(chosen[k]) for k in nms(boxes[chosen], scores[chosen], nms_iou)]
    kept = [i for i in kept if boxes[i, 2] - boxes[i, 0] >= 1 and boxes[i, 3] - boxes[i, 1] >= 1]
    kept.sort(key=lambda i: -scores[i])
    kept = kept[:max_items]
    if parts is not None and kept:
        redrawn = _redrawn(input_boxes[kept], regions[kept], parts, placement.size)
        boxes[kept] = _in_image(redrawn, placement, image_width, image_height)
    return [
        Detection(
            REGIONS[regions[i]],
            (
                float(boxes[i, 0]),
                float(boxes[i, 1]),
                float(boxes[i, 2] - boxes[i, 0]),
                float(boxes[i, 3] - boxes[i, 1]),
            ),
            float(scores[i]),
        )
        for i in kept
    ]


def _in_image(input_boxes: np.ndarray, placement: Letterbox, width: int, height: int) -> np.ndarray:
    """Boxes from model-input pixels to the original image's, clipped to it."""
    boxes = placement.to_image(input_boxes)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    return boxes


def _redrawn(boxes: np.ndarray, regions: np.ndarray, parts: np.ndarray, input_size: int) -> np.ndarray:
    """The boxes (model-input pixels, corner format) drawn again around what their region's mask shows."""
    out = boxes.astype(np.float32).copy()
    upsampled: dict[int, np.ndarray] = {}
    for k, (box, region) in enumerate(zip(boxes, regions, strict=True)):
        if region not in upsampled:
            upsampled[region] = cv2.resize(
                parts[region].astype(np.float32), (input_size, input_size), interpolation=cv2.INTER_LINEAR
            )
        x0, y0, x1, y1 = box
        grow_x, grow_y = PARTS_WINDOW * (x1 - x0), PARTS_WINDOW * (y1 - y0)
        wx0, wy0 = int(max(0.0, x0 - grow_x)), int(max(0.0, y0 - grow_y))
        wx1, wy1 = int(min(input_size, np.ceil(x1 + grow_x))), int(min(input_size, np.ceil(y1 + grow_y)))
        shows = (upsampled[region][wy0:wy1, wx0:wx1] > PARTS_THRESHOLD).astype(np.uint8)
        if wx1 <= wx0 or wy1 <= wy0 or not shows.any():
            continue
        _, labels, stats, _ = cv2.connectedComponentsWithStats(shows)
        area = stats[1:, cv2.CC_STAT_AREA]
        inside = labels[
            max(0, int(y0) - wy0) : max(0, int(np.ceil(y1)) - wy0),
            max(0, int(x0) - wx0) : max(0, int(np.ceil(x1)) - wx0),
        ]
        kept = [p for p in np.unique(inside) if p and area[p - 1] >= PARTS_MIN_SHARE * area.sum()]
        if not kept:
            continue
        ys, xs = np.nonzero(np.isin(labels, kept))
        drawn = np.array([xs.min() + wx0, ys.min() + wy0, xs.max() + wx0 + 1, ys.max() + wy0 + 1], np.float32)
        if iou_matrix(drawn[None], box[None].astype(np.float32))[0, 0] >= PARTS_AGREEMENT:
            out[k] = drawn
    return out


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
