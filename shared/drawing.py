"""Drawing items on images: boxes, polygons and short labels per region, and contact sheets.

Used by `kfashion synth --preview`, `kfashion labels preview` and later by /tagging's drawn images.
Text is drawn in English: OpenCV's fonts have no Hangul.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from shared.labels import LabelRecord
from shared.taxonomy import ATTRIBUTES, STYLE

REGION_COLORS = {
    "outer": (230, 126, 34),
    "top": (41, 128, 185),
    "bottom": (39, 174, 96),
    "onepiece": (192, 57, 43),
}
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def english(attribute_key: str, value: str) -> str:
    """English name of a Korean taxonomy value, or the value itself when the taxonomy does not know it."""
    attribute = STYLE if attribute_key == "style" else ATTRIBUTES[attribute_key]
    label = attribute.lookup(value)
    return label.en if label else value


def _text(
    img: np.ndarray, text: str, origin: tuple[int, int], scale: float, color: tuple[int, int, int]
) -> None:
    x, y = origin
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    cv2.rectangle(img, (x, y - th - 3), (x + tw + 4, y + base), (255, 255, 255), -1)
    cv2.putText(img, text, (x + 2, y - 1), _FONT, scale, color, 1, cv2.LINE_AA)


def draw_record(pixels: np.ndarray, record: LabelRecord, polygons: bool = True) -> np.ndarray:
    """A copy of an RGB image with each item's box (and polygon) and a one-line summary drawn on it."""
    img = pixels.copy()
    scale = max(0.4, img.shape[1] / 1600)
    thickness = max(2, img.shape[1] // 300)
    for item in record.items:
        color = REGION_COLORS.get(item.region, (0, 0, 0))
        if polygons and len(item.polygon) >= 3:
            cv2.polylines(img, [np.int32(item.polygon)], True, color, max(1, thickness // 2), cv2.LINE_AA)
        if item.box:
            x, y, w, h = (round(v) for v in item.box)
            cv2.rectangle(img, (x, y), (x + w, y + h), color, thickness)
            words = [item.region]
            for key in ("category", "color", "print", "length"):
                value = item.attributes.get(key)
                if value:
                    words.append(english(key, value[0] if isinstance(value, list) else value))
            _text(img, " ".join(words), (x + 2, max(14, y + int(18 * scale * 2))), scale, color)
    if record.styles:
        style = record.styles[0]
        caption = "style: " + " / ".join(english("style", s) for s in (style.style, style.sub_style) if s)
        _text(img, caption, (6, img.shape[0] - 8), scale * 1.1, (20, 20, 20))
    return img


def contact_sheet(images: Sequence[np.ndarray], columns: int = 4, thumb_width: int = 360) -> np.ndarray:
    """Images side by side in a grid, each scaled to `thumb_width`, on a white sheet (RGB)."""
    if not images:
        raise ValueError("no images for the contact sheet")
    thumbs = [
        cv2.resize(
            im, (thumb_width, int(im.shape[0] * thumb_width / im.shape[1])), interpolation=cv2.INTER_AREA
        )
        for im in images
    ]
    cell_h = max(t.shape[0] for t in thumbs)
    columns = min(columns, len(thumbs))
    rows = math.ceil(len(thumbs) / columns)
    gap = 6
    sheet = np.full((rows * (cell_h + gap) + gap, columns * (thumb_width + gap) + gap, 3), 255, np.uint8)
    for k, thumb in enumerate(thumbs):
        r, c = divmod(k, columns)
        y, x = gap + r * (cell_h + gap), gap + c * (thumb_width + gap)
        sheet[y : y + thumb.shape[0], x : x + thumb_width] = thumb
    return sheet
