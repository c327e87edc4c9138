"""The K-Fashion colours as reference RGB shades, and the colour facts /tagging reports per item.

The generator paints garments with these shades (training/synth), and the attribute service measures
how much of an item's box is nearest its predicted colour, so both read one table.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

RGB = tuple[int, int, int]

# Each K-Fashion colour as a few reference shades (RGB). Variation is added around them by `shade`,
# kept small enough that neighbours (navy/blue/black, beige/brown, pink/red) stay apart.
COLOR_SHADES: dict[str, tuple[RGB, ...]] = {
    "블랙": ((22, 22, 24), (34, 32, 36)),
    "화이트": ((242, 242, 238), (250, 248, 243)),
    "그레이": ((128, 128, 131), (156, 156, 158), (104, 104, 108)),
    "레드": ((200, 32, 38), (178, 22, 32)),
    "핑크": ((242, 156, 186), (232, 124, 164)),
    "오렌지": ((240, 124, 32), (246, 140, 52)),
    "베이지": ((216, 196, 160), (226, 208, 178)),
    "브라운": ((118, 74, 40), (140, 92, 56)),
    "옐로우": ((246, 216, 52), (240, 200, 40)),
    "그린": ((40, 140, 62), (58, 160, 82)),
    "카키": ((108, 108, 60), (124, 118, 70)),
    "민트": ((160, 226, 202), (150, 216, 196)),
    "블루": ((40, 92, 200), (56, 112, 212)),
    "네이비": ((26, 36, 82), (32, 42, 96)),
    "스카이블루": ((136, 196, 240), (150, 204, 236)),
    "퍼플": ((122, 52, 152), (108, 44, 136)),
    "라벤더": ((192, 172, 232), (200, 184, 236)),
    "와인": ((114, 26, 46), (100, 20, 40)),
    "네온": ((196, 255, 36), (150, 255, 60)),
    "골드": ((212, 176, 56), (200, 164, 60)),
    "실버": ((194, 194, 202), (184, 186, 196)),
}


_BITS = 5  # colour lookup table resolution per channel (32 levels: 32,768 cells)


@cache
def nearest_color_table() -> tuple[tuple[str, ...], np.ndarray]:
    """For every 5-bit-per-channel RGB cell, the index of the nearest colour name (distance in CIE Lab to
    any of its shades). Built once; looking pixels up is then one array index."""
    names = tuple(COLOR_SHADES)
    owner = np.array([k for k, shades in enumerate(COLOR_SHADES.values()) for _ in shades])
    shades = np.array([s for shades in COLOR_SHADES.values() for s in shades], np.uint8)[None]
    shade_lab = cv2.cvtColor(shades, cv2.COLOR_RGB2LAB)[0].astype(np.float32)
    levels = (np.arange(1 << _BITS) << (8 - _BITS)) + (1 << (7 - _BITS))  # cell centres
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    cells = np.stack([r, g, b], -1).reshape(1, -1, 3).astype(np.uint8)
    cell_lab = cv2.cvtColor(cells, cv2.COLOR_RGB2LAB)[0].astype(np.float32)
    nearest = np.empty(len(cell_lab), np.int16)
    for start in range(0, len(cell_lab), 4096):
        chunk = cell_lab[start : start + 4096]
        nearest[start : start + 4096] = owner[((chunk[:, None] - shade_lab[None]) ** 2).sum(-1).argmin(1)]
    return names, nearest


def hex_of(rgb: RGB | np.ndarray) -> str:
    r, g, b = (round(float(c)) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def color_share(pixels: np.ndarray, color: str, sample_side: int = 64) -> tuple[str, float]:
    """For the RGB pixels of an item's box: the mean colour (hex) of the pixels nearest the named colour's
    shades, and their share of the box. The box holds some background, so the share is a lower bound of
    the garment's own share. Unknown colour or no such pixel: the reference hex and share 0."""
    names, nearest = nearest_color_table()
    if color not in COLOR_SHADES:
        return "", 0.0
    reference_hex = hex_of(COLOR_SHADES[color][0])
    if pixels.size == 0:
        return reference_hex, 0.0
    h, w = pixels.shape[:2]
    scale = min(1.0, sample_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    flat = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA).reshape(-1, 3)
    cells = flat >> (8 - _BITS)
    index = (
        (cells[:, 0].astype(np.int32) << (2 * _BITS)) | (cells[:, 1].astype(np.int32) << _BITS) | cells[:, 2]
    )
    mine = nearest[index] == names.index(color)
    if not mine.any():
        return reference_hex, 0.0
    return hex_of(flat[mine].mean(axis=0)), round(float(mine.mean()), 4)
