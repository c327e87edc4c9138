"""Model inputs from images, the same for training, evaluation and serving.

Constants here are also written into each exported model's manifest, so a service reading a manifest
prepares inputs exactly as the model was trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# ImageNet statistics, as the EfficientNet-Lite weights were trained with (RGB, 0..1 scale).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PAD_VALUE = 114  # grey border of letterboxed inputs
DETECTOR_SIZE = 320
CROP_SIZE = 224
CROP_CONTEXT = 0.08  # crops take this share of the box's size as margin around it
# How much of a box's aspect ratio a crop keeps, per kind of crop (the manifest records it): a box of
# aspect a (height / width) fills a crop of aspect a ** power, centred on grey. 1 letterboxes; item crops
# take 0.25, so a top's narrow strip under an open jacket fills a crop of its own instead of a fifth of
# one, yet a long skirt still shows taller than a mini (bootstrap data, attribute head alone: test colour
# 0.907 -> 0.918, retrieval top-1 0.802 -> 0.823, length kept; docs/models.md).
LETTERBOX_ASPECT_POWER = 1.0  # also what a manifest without the key means: models before it letterboxed crops
CROP_ASPECT_POWER = {"item_crop": 0.25, "person_crop": LETTERBOX_ASPECT_POWER}


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image was placed in a square model input: input = image * scale + (pad_x, pad_y)."""

    scale: float
    pad_x: int
    pad_y: int
    size: int

    def to_image(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Boxes from model-input pixels back to original-image pixels."""
        out = boxes_xyxy.astype(np.float32).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        return out

    def to_input(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        out = boxes_xyxy.astype(np.float32).copy()
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.scale + self.pad_y
        return out


def letterbox(pixels: np.ndarray, size: int = DETECTOR_SIZE) -> tuple[np.ndarray, Letterbox]:
    """The RGB image scaled to fit a size x size square (aspect kept), centred on grey."""
    h, w = pixels.shape[:2]
    scale = size / max(h, w)
    canvas, pad_x, pad_y = _centred(pixels, max(1, round(w * scale)), max(1, round(h * scale)), size)
    return canvas, Letterbox(scale, pad_x, pad_y, size)


def _centred(pixels: np.ndarray, width: int, height: int, size: int) -> tuple[np.ndarray, int, int]:
    """The pixels resized to width x height and centred on a grey size x size square; its padding."""
    shrinking = width < pixels.shape[1] or height < pixels.shape[0]
    resized = cv2.resize(
        pixels, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    pad_x, pad_y = (size - width) // 2, (size - height) // 2
    canvas[pad_y : pad_y + height, pad_x : pad_x + width] = resized
    return canvas, pad_x, pad_y


def crop_box(
    pixels: np.ndarray,
    box_xywh: tuple[float, float, float, float],
    aspect_power: float,
    size: int = CROP_SIZE,
) -> np.ndarray:
    """A size x size crop of one item: its box with a small margin, scaled so that its aspect ratio a
    (height / width) shows as a ** aspect_power (CROP_ASPECT_POWER), centred on grey."""
    x, y, w, h = box_xywh
    margin_x, margin_y = w * CROP_CONTEXT, h * CROP_CONTEXT
    x0, y0 = max(0, int(x - margin_x)), max(0, int(y - margin_y))
    x1 = min(pixels.shape[1], int(np.ceil(x + w + margin_x)))
    y1 = min(pixels.shape[0], int(np.ceil(y + h + margin_y)))
    if x1 <= x0 or y1 <= y0:
        return np.full((size, size, 3), PAD_VALUE, np.uint8)
    crop_w, crop_h = x1 - x0, y1 - y0
    # The height shown for the crop's width: crop_h * a ** (power - 1); exactly crop_h at power 1 (letterbox).
    shown_h = crop_h * (crop_h / crop_w) ** (aspect_power - 1)
    scale = size / max(crop_w, shown_h)
    return _centred(
        pixels[y0:y1, x0:x1], max(1, round(crop_w * scale)), max(1, round(shown_h * scale)), size
    )[0]


def crop_aspect_power(preprocessing: dict) -> float:
    """The aspect power a model's crops were made with, from its manifest's preprocessing."""
    return float(preprocessing.get("crop_aspect_power", LETTERBOX_ASPECT_POWER))


def union_box(
    boxes_xywh: list[tuple[float, float, float, float]], width: int, height: int
) -> tuple[float, ...]:
    """The box around all items (the person), or the whole image when there are none."""
    if not boxes_xywh:
        return (0.0, 0.0, float(width), float(height))
    x0 = min(b[0] for b in boxes_xywh)
    y0 = min(b[1] for b in boxes_xywh)
    x1 = max(b[0] + b[2] for b in boxes_xywh)
    y1 = max(b[1] + b[3] for b in boxes_xywh)
    return (x0, y0, x1 - x0, y1 - y0)


# The normalised value of each uint8 level per channel: (v / 255 - mean) / std in float32, the same operations
# in the same order as computing it per pixel, so looking it up gives the same numbers bit for bit, 3x faster
# (one pass per channel instead of five over the batch).
_NORMALISED_LEVELS = (
    (np.arange(256, dtype=np.float32)[None, :] / 255.0 - np.array(MEAN, np.float32)[:, None])
    / np.array(STD, np.float32)[:, None]
).astype(np.float32)


def to_tensor(batch_rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (N, H, W, 3) -> normalised float32 (N, 3, H, W)."""
    n, h, w, _ = batch_rgb.shape
    out = np.empty((n, 3, h, w), np.float32)
    for channel in range(3):
        np.take(_NORMALISED_LEVELS[channel], batch_rgb[..., channel], out=out[:, channel])
    return out


def preprocessing_manifest(input_size: int, kind: str) -> dict:
    """What a service must do to an image before this model, as written in the model manifest."""
    return {
        "kind": kind,
        "input_size": input_size,
        "color": "RGB",
        "scale": 1 / 255,
        "mean": list(MEAN),
        "std": list(STD),
        "layout": "NCHW",
        "letterbox_pad_value": PAD_VALUE,
        "crop_context": CROP_CONTEXT,
        **({"crop_aspect_power": CROP_ASPECT_POWER[kind]} if kind in CROP_ASPECT_POWER else {}),
    }
