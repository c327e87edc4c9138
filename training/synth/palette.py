"""Colours of the K-Fashion list as RGB shades, with the shade and lighting variation real photos show."""

from __future__ import annotations

import colorsys

import numpy as np

from shared.colors import COLOR_SHADES, RGB

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
