"""Garment detector: a one-stage, anchor-free CenterNet-style detector (seed 002's one-stage family,
focal loss) on a feature pyramid over the pretrained backbone.

Per region it predicts a heat map of object centres (focal loss on Gaussian targets), the box size
(log of width and height in cells) and the sub-cell offset of the centre, at stride 8, from the pyramid's
stride-8 features plus a context branch at stride 16. Size and offset
are predicted per region: an open jacket and the top under it share a centre cell, and one shared size
there cannot be both boxes. The exported
graph already keeps only local peaks (3x3 max-pool), so decoding (shared.detection) is a threshold,
a lookup and a per-region NMS.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shared.detection import Detection, decode_detections
from shared.preprocess import DETECTOR_SIZE
from shared.taxonomy import REGIONS
from training.backbone import C3_CHANNELS, C4_CHANNELS, C5_CHANNELS, Backbone, PyramidBackbone
from training.features import DetectorFeatures
from training.loop import CPU, EpochHook, fit

STRIDE = 8
GRID = DETECTOR_SIZE // STRIDE
PRIOR = 0.05  # initial centre probability, so the focal loss starts stable


def _conv(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise-separable 3x3 convolution: most of a full one's accuracy at a fraction of its CPU cost."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DetectorHead(nn.Module):
    def __init__(self, channels: int = 64):
        super().__init__()
        self.lateral3 = nn.Conv2d(C3_CHANNELS, channels, 1)
        self.lateral4 = nn.Conv2d(C4_CHANNELS, channels, 1)
        self.lateral5 = nn.Conv2d(C5_CHANNELS, channels, 1)
        self.smooth = _conv(channels, channels)
        # Context at stride 16: each cell then sees about 112 x 112 input pixels around it, the whole of a
        # garment and what it is worn with (bootstrap test AP50 mean 0.851 -> 0.885, docs/models.md).
        self.context = nn.Sequential(_conv(channels, channels), _conv(channels, channels, dilation=2))
        self.heat = nn.Sequential(_conv(channels, channels), nn.Conv2d(channels, len(REGIONS), 1))
        # Per region (log w, log h), then per region (dx, dy).
        self.box = nn.Sequential(_conv(channels, channels), nn.Conv2d(channels, 4 * len(REGIONS), 1))
        nn.init.constant_(self.heat[-1].bias, math.log(PRIOR / (1 - PRIOR)))

    def forward(
        self, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        p5 = self.lateral5(c5)
        p4 = self.lateral4(c4) + F.interpolate(p5, size=c4.shape[-2:], mode="nearest")
        p3 = self.lateral3(c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest")
        features = self.smooth(p3)
        context = self.context(F.avg_pool2d(features, 2, ceil_mode=True))
        features = features + F.interpolate(context, size=features.shape[-2:], mode="nearest")
        return self.heat(features), self.box(features)


class Detector(nn.Module):
    """The served model: image (N, 3, 320, 320) -> peaks (N, 4, 40, 40), size (N, 8, 40, 40) and
    offset (N, 8, 40, 40) (channels 2r, 2r+1 for region r), and heat (N, 4, 40, 40), the centre
    probabilities before peak picking."""

    def __init__(self, backbone: Backbone, head: DetectorHead):
        super().__init__()
        self.pyramid = PyramidBackbone(backbone)
        self.head = head

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        heat_logits, box = self.head(*self.pyramid(image))
        peaks, size, offset = outputs_from_head(heat_logits, box)
        return peaks, size, offset, torch.sigmoid(heat_logits)


def outputs_from_head(
    heat_logits: torch.Tensor, box: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    heat = torch.sigmoid(heat_logits)
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat).to(heat.dtype)
    pairs = 2 * len(REGIONS)
    size = torch.exp(box[:, :pairs].clamp(max=6.0))
    offset = box[:, pairs:]
    return peaks, size, offset


# ------------------------------------------------------------------ targets and loss


def _gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: a centre this far off still gives a box overlapping the truth by min_overlap."""
    b1, c1 = height + width, width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    a2, b2, c2 = 4, 2 * (height + width), (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return max(0.0, min(r1, r2, r3))


def build_targets(
    boxes: np.ndarray, regions: np.ndarray
) -> tuple[np.ndarray, list[tuple[int, int, int, np.ndarray]]]:
    """Heat-map target (4, G, G) and, per object, (region, y, x, [log w, log h, dx, dy])."""
    heat = np.zeros((len(REGIONS), GRID, GRID), np.float32)
    objects = []
    ys, xs = np.mgrid[0:GRID, 0:GRID].astype(np.float32)
    for (x0, y0, x1, y1), region in zip(boxes / STRIDE, regions, strict=True):
        w, h = max(x1 - x0, 1e-3), max(y1 - y0, 1e-3)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        ix, iy = min(GRID - 1, max(0, int(cx))), min(GRID - 1, max(0, int(cy)))
        sigma = (2 * max(0.0, int(_gaussian_radius(h, w))) + 1) / 6
        blob = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
        heat[region] = np.maximum(heat[region], blob)
        objects.append(
            (int(region), iy, ix, np.array([math.log(w), math.log(h), cx - ix, cy - iy], np.float32))
        )
    return heat, objects


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of objects. In float32 even under
    mixed precision: 1 - 1e-4 rounds to 1 in float16, and log(0) is infinite."""
    p = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    pos_loss = -torch.log(p) * (1 - p) ** 2 * positive
    neg_loss = -torch.log(1 - p) * p**2 * (1 - target) ** 4 * (1 - positive)
    return (pos_loss.sum() + neg_loss.sum()) / positive.sum().clamp(min=1)


def detector_loss(
    heat_logits: torch.Tensor,
    box: torch.Tensor,
    heat_target: torch.Tensor,
    objects: list[list[tuple[int, int, int, np.ndarray]]],
) -> torch.Tensor:
    loss = focal_loss(heat_logits, heat_target)
    rows, channels, ys, xs, values = [], [], [], [], []
    pairs = 2 * len(REGIONS)
    for row, row_objects in enumerate(objects):
        for region, y, x, value in row_objects:
            rows.append(row)
            # This region's (log w, log h) and (dx, dy) channels.
            channels.append([2 * region, 2 * region + 1, pairs + 2 * region, pairs + 2 * region + 1])
            ys.append(y)
            xs.append(x)
            values.append(value)
    if rows:
        row, y, x, channel = (torch.tensor(v, device=box.device) for v in (rows, ys, xs, channels))
        at = box[row, :, y, x]  # (objects, 4R)
        predicted = torch.gather(at, 1, channel).float()
        target = torch.from_numpy(np.stack(values)).to(box.device)
        loss = loss + F.l1_loss(predicted[:, :2], target[:, :2]) + F.l1_loss(predicted[:, 2:], target[:, 2:])
    return loss


# ------------------------------------------------------------------ training and prediction


# The head trains on channels-last maps: its convolutions ran an epoch about 1.6x faster so on 2 CPU cores
# (bench/training_speed.py), the same sums in another memory order.
MAPS_FORMAT = torch.channels_last


def _batch_maps(
    features: DetectorFeatures, rows: np.ndarray, device: torch.device = CPU
) -> tuple[torch.Tensor, ...]:
    c3, c4, c5 = features.arrays()
    return tuple(
        torch.from_numpy(m[rows].astype(np.float32)).to(device).contiguous(memory_format=MAPS_FORMAT)
        for m in (c3, c4, c5)
    )


def train_detector(
    features: DetectorFeatures,
    train_rows: np.ndarray,
    epochs: int,
    seed: int,
    on_epoch: EpochHook | None = None,
    channels: int = 64,
    batch_size: int = 32,
    lr: float = 3e-3,
    device: torch.device = CPU,
) -> DetectorHead:
    torch.manual_seed(seed)
    head = DetectorHead(channels).to(memory_format=MAPS_FORMAT)

    def batch_loss(rows: np.ndarray) -> torch.Tensor:
        heat_logits, box = head(*_batch_maps(features, rows, device))
        # Targets per batch, not for every row up front: 26 kB of heat map per image adds up (31 GB for
        # the full K-Fashion), and they take milliseconds to build.
        targets = [build_targets(features.boxes[r], features.regions[r]) for r in rows]
        heat_target = torch.from_numpy(np.stack([heat for heat, _ in targets])).to(device)
        return detector_loss(heat_logits, box, heat_target, [objects for _, objects in targets])

    trained = fit(
        head,
        head.parameters(),
        train_rows,
        epochs,
        seed,
        batch_loss,
        batch_size=batch_size,
        lr=lr,
        weight_decay=1e-4,
        warmup=0.15,
        on_epoch=on_epoch,
        device=device,
    )
    return trained.to(memory_format=torch.contiguous_format)


@torch.no_grad()
def predict(
    head: DetectorHead,
    features: DetectorFeatures,
    rows: np.ndarray,
    sizes: list[tuple[int, int]],
    score_threshold: float = 0.05,
) -> list[list[Detection]]:
    """Detections per row (sizes: original width, height per row), through the shared decoder."""
    head.eval()
    results: list[list[Detection]] = []
    for start in range(0, len(rows), 64):
        chunk = rows[start : start + 64]
        peaks, size, offset = outputs_from_head(*head(*_batch_maps(features, chunk)))
        for k, row in enumerate(chunk):
            width, height = sizes[start + k]
            results.append(
                decode_detections(
                    peaks[k].numpy(),
                    size[k].numpy(),
                    offset[k].numpy(),
                    STRIDE,
                    features.placement[row],
                    width,
                    height,
                    score_threshold=score_threshold,
                )
            )
    return results
