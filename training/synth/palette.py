"""Colours of the K-Fashion list as RGB shades, with the shade and lighting variation real photos show."""

from __future__ import annotations

import colorsys

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
METALLIC = frozenset({"골드", "실버"})

SKIN_TONES: tuple[RGB, ...] = (
    (241, 205, 180),
    (228, 186, 156),
    (204, 160, 126),
    (170, 122, 90),
    (236, 198, 170),
)
HAIR_COLORS: tuple[RGB, ...] = ((24, 20, 18), (52, 36, 26), (92, 62, 40), (150, 116, 72), (30, 26, 28))
BACKGROUND_TONES: tuple[RGB, ...] = (
    (236, 234, 230),
    (214, 210, 202),
    (196, 204, 210),
    (226, 218, 204),
    (180, 186, 176),
    (160, 160, 166),
    (238, 228, 226),
    (206, 214, 224),
    (120, 124, 130),
    (90, 96, 88),
    (222, 226, 214),
    (250, 250, 250),
)


def shade(name: str, rng: np.random.Generator) -> RGB:
    """One shade of a named colour: a reference shade with a small hue/saturation/value jitter."""
    base = COLOR_SHADES[name][int(rng.integers(len(COLOR_SHADES[name])))]
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in base))
    h = (h + rng.uniform(-0.012, 0.012)) % 1.0
    s = float(np.clip(s * rng.uniform(0.9, 1.08), 0, 1))
    v = float(np.clip(v * rng.uniform(0.92, 1.06), 0, 1))
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (round(r * 255), round(g * 255), round(b * 255))


def jitter(color: RGB, rng: np.random.Generator, amount: int = 12) -> RGB:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)  # type: ignore[return-value]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x * (1 - t) + y * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def darker(color: RGB, factor: float) -> RGB:
    return tuple(round(c * factor) for c in color)  # type: ignore[return-value]
