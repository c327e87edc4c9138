"""Print textures (프린트) rendered as pixels: every print of the K-Fashion list has a drawing here.

`render_print(name, height, width, base, accent, unit, rng)` returns an RGB uint8 array; `unit` is a
length in pixels proportional to the figure, so patterns scale with the person in the picture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
import numpy as np

from training.synth.palette import RGB, darker, mix

PrintFn = Callable[[np.ndarray, RGB, RGB, float, np.random.Generator], None]
_LINE = cv2.LINE_AA


def _fill(h: int, w: int, color: RGB) -> np.ndarray:
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = color
    return canvas


def _staggered_grid(h: int, w: int, step: int) -> Iterator[tuple[int, int]]:
    """Centres of a grid covering (h, w) whose every other row is shifted by half a step."""
    for row, y in enumerate(range(step // 2, h + step, step)):
        for x in range((step // 2) * (row % 2), w + step, step):
            yield x, y


def _solid(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    return None


def _stripe(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    period = max(6, int(unit * rng.uniform(0.18, 0.45)))
    width = max(2, int(period * rng.uniform(0.3, 0.5)))
    if rng.random() < 0.7:  # horizontal (breton) stripes are the common case
        for y in range(int(rng.integers(period)), h, period):
            img[y : y + width] = accent
    else:
        for x in range(int(rng.integers(period)), w, period):
            img[:, x : x + width] = accent


def _check(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    period = max(10, int(unit * rng.uniform(0.35, 0.7)))
    band = max(3, period // 3)
    over = np.zeros((h, w), np.float32)
    for y in range(0, h, period):
        over[y : y + band] += 0.5
    for x in range(0, w, period):
        over[:, x : x + band] += 0.5
    thin = darker(accent, 0.6)
    np.copyto(img, (img * (1 - over[..., None]) + np.array(accent) * over[..., None]).astype(np.uint8))
    for y in range(period // 2, h, period):
        img[y : y + 1] = thin
    for x in range(period // 2, w, period):
        img[:, x : x + 1] = thin


def _gingham(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    cell = max(4, int(unit * rng.uniform(0.1, 0.18)))
    # Coloured bands a third of the period wide, so the ground colour (the label) shows most.
    rows = (np.arange(h) // cell) % 3 == 0
    cols = (np.arange(w) // cell) % 3 == 0
    img[rows[:, None] & cols[None, :]] = accent
    img[rows[:, None] ^ cols[None, :]] = mix(base, accent, 0.5)


def _dot(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    step = max(8, int(unit * rng.uniform(0.22, 0.4)))
    radius = max(2, int(step * rng.uniform(0.18, 0.3)))
    for x, y in _staggered_grid(h, w, step):
        cv2.circle(img, (x, y), radius, accent, -1, _LINE)


def _floral(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    size = max(4, int(unit * rng.uniform(0.1, 0.18)))
    count = int(h * w / (size * size * 18)) + 1  # flowers cover about 40%: the ground colour shows most
    centre_color = (250, 220, 80) if sum(accent) < 600 else (200, 80, 60)
    leaf = (60, 130, 70)
    for _ in range(count):
        cx, cy = int(rng.integers(w)), int(rng.integers(h))
        angle = rng.uniform(0, 2 * np.pi)
        lx, ly = int(cx + 1.6 * size * np.cos(angle + 2)), int(cy + 1.6 * size * np.sin(angle + 2))
        cv2.ellipse(
            img, (lx, ly), (size, max(1, size // 2)), float(np.degrees(angle)), 0, 360, leaf, -1, _LINE
        )
        for k in range(5):
            a = angle + k * 2 * np.pi / 5
            cv2.circle(
                img,
                (int(cx + size * np.cos(a)), int(cy + size * np.sin(a))),
                max(2, int(size * 0.7)),
                accent,
                -1,
                _LINE,
            )
        cv2.circle(img, (cx, cy), max(1, size // 2), centre_color, -1, _LINE)


def _zigzag(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    period = max(8, int(unit * rng.uniform(0.25, 0.45)))
    amp = period // 2
    thick = max(2, period // 5)
    xs = np.arange(-period, w + period, period // 2)
    for y0 in range(0, h + period, period):
        pts = np.array([(x, y0 + (amp if i % 2 else 0)) for i, x in enumerate(xs)], np.int32)
        cv2.polylines(img, [pts], False, accent, thick, _LINE)


def _leopard(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    size = max(4, int(unit * rng.uniform(0.1, 0.16)))
    inner = mix(base, (110, 70, 30), 0.45)
    for _ in range(int(h * w / (size * size * 7)) + 1):
        cx, cy = int(rng.integers(w)), int(rng.integers(h))
        axes = (int(size * rng.uniform(0.8, 1.3)), int(size * rng.uniform(0.6, 1.0)))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(img, (cx, cy), axes, angle, 0, 360, inner, -1, _LINE)
        start = float(rng.uniform(0, 360))
        for arc in range(3):  # broken dark rings are what reads as leopard
            a0 = start + arc * 120
            cv2.ellipse(img, (cx, cy), axes, angle, a0, a0 + 80, accent, max(2, size // 3), _LINE)


def _zebra(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    period = max(10, int(unit * rng.uniform(0.3, 0.5)))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = (
        xs / period * 2 * np.pi + 1.8 * np.sin(ys / (period * 1.7)) + 0.8 * np.sin(ys / (period * 0.6) + 1)
    )
    img[np.sin(phase) > 0.25] = accent


def _argyle(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    size = max(8, int(unit * rng.uniform(0.35, 0.55)))
    ys, xs = np.mgrid[0:h, 0:w]
    u, v = (xs + ys) // size, (xs - ys) // size
    img[((u + v) % 2 == 0) & (u % 2 == 0)] = accent  # every other diamond: the ground colour shows most
    line = mix(base, (255, 255, 255), 0.6)
    for k in range(-h, w + h, size):
        cv2.line(img, (k, 0), (k + h, h), line, 1, _LINE)
        cv2.line(img, (k, 0), (k - h, h), line, 1, _LINE)


def _heart(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    step = max(10, int(unit * rng.uniform(0.3, 0.45)))
    r = max(2, step // 6)
    for x, y in _staggered_grid(h, w, step):
        cv2.circle(img, (x - r, y), r, accent, -1, _LINE)
        cv2.circle(img, (x + r, y), r, accent, -1, _LINE)
        pts = np.array([(x - 2 * r, y + r // 3), (x + 2 * r, y + r // 3), (x, y + 2 * r + r // 2)], np.int32)
        cv2.fillPoly(img, [pts], accent, _LINE)


_WORDS = ("SEOUL", "LOVE", "K-STYLE", "NEW YORK", "DREAM", "1994", "HAPPY", "CLUB", "PARIS", "BASIC")


def _lettering(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    lines = int(rng.integers(1, 4))
    scale = max(0.4, unit / 60 * rng.uniform(0.6, 0.9))
    thick = max(1, int(scale * 2))
    y = int(h * rng.uniform(0.2, 0.3))
    for _ in range(lines):
        word = _WORDS[int(rng.integers(len(_WORDS)))]
        (tw, th), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_DUPLEX, scale, thick)
        cv2.putText(
            img, word, (max(0, (w - tw) // 2), y + th), cv2.FONT_HERSHEY_DUPLEX, scale, accent, thick, _LINE
        )
        y += int(th * 1.6)


def _graphic(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    cx, cy, r = w // 2, int(h * 0.33), max(6, int(min(w, h) * rng.uniform(0.18, 0.26)))
    shape = int(rng.integers(3))
    if shape == 0:
        cv2.circle(img, (cx, cy), r, accent, -1, _LINE)
        cv2.circle(img, (cx, cy), r // 2, mix(accent, base, 0.6), -1, _LINE)
    elif shape == 1:
        pts = [
            (
                cx + r * np.cos(a) * (1 if k % 2 == 0 else 0.45),
                cy + r * np.sin(a) * (1 if k % 2 == 0 else 0.45),
            )
            for k, a in enumerate(np.linspace(-np.pi / 2, 1.5 * np.pi, 11)[:-1])
        ]
        cv2.fillPoly(img, [np.array(pts, np.int32)], accent, _LINE)
    else:
        pts = np.array([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], np.int32)
        cv2.fillPoly(img, [pts], accent, _LINE)
        cv2.polylines(img, [pts], True, darker(accent, 0.5), max(2, r // 8), _LINE)


def _camouflage(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    tones = (accent, mix(base, (40, 40, 30), 0.45), mix(base, (200, 190, 150), 0.35))
    small_h, small_w = max(2, int(h / unit * 5)), max(2, int(w / unit * 5))
    for tone in tones:
        noise = cv2.resize(
            rng.random((small_h, small_w)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
        )
        img[noise > 0.62] = tone


def _gradation(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    # The ground colour fills the upper half and fades into the accent below, so it shows most.
    t = np.clip(np.linspace(-1, 1, h, dtype=np.float32), 0, 1)[:, None, None]
    np.copyto(img, (np.array(base) * (1 - t) + np.array(accent) * t).astype(np.uint8).repeat(w, axis=1))


def _tie_dye(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.7)
    radius = np.hypot(xs - cx, ys - cy)
    angle = np.arctan2(ys - cy, xs - cx)
    wave = np.sin(radius / (unit * 0.12) + 3 * angle)
    third = (accent[2], accent[0], accent[1])
    img[wave > 0.7] = accent  # thresholds leave the ground colour about half of the area, the most
    img[wave < -0.8] = third


def _houndstooth(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    tile = np.zeros((8, 8), bool)
    tile[:4, :4] = True
    for k in range(4):  # the "teeth": diagonals running out of the filled quarter
        tile[k, 7 - k] = tile[4 + k, 3 - k] = tile[k, 4 + k // 2] = True
    cell = max(1, int(unit * rng.uniform(0.025, 0.04)))
    big = np.kron(tile, np.ones((cell, cell), bool))
    reps = (h // big.shape[0] + 1, w // big.shape[1] + 1)
    img[np.tile(big, reps)[:h, :w]] = accent


def _skull(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    step = max(14, int(unit * rng.uniform(0.45, 0.6)))
    r = max(3, step // 5)
    for x, y in _staggered_grid(h, w, step):
        cv2.circle(img, (x, y), r, accent, -1, _LINE)
        cv2.rectangle(img, (x - r // 2, y + r // 2), (x + r // 2, y + r + r // 3), accent, -1)
        for dx in (-r // 2, r // 2):
            cv2.circle(img, (x + dx, y), max(1, r // 3), base, -1, _LINE)


def _paisley(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    size = max(5, int(unit * rng.uniform(0.12, 0.18)))
    for _ in range(int(h * w / (size * size * 10)) + 1):
        cx, cy = int(rng.integers(w)), int(rng.integers(h))
        angle = float(rng.uniform(0, 360))
        cv2.ellipse(img, (cx, cy), (size, int(size * 0.6)), angle, 0, 360, accent, -1, _LINE)
        tip = np.radians(angle)
        tail = (int(cx + 1.6 * size * np.cos(tip)), int(cy + 1.6 * size * np.sin(tip)))
        cv2.line(img, (cx, cy), tail, accent, max(2, size // 3), _LINE)
        cv2.ellipse(
            img, (cx, cy), (size // 2, max(1, size // 4)), angle, 0, 360, base, max(1, size // 6), _LINE
        )


def _mix(img: np.ndarray, base: RGB, accent: RGB, unit: float, rng: np.random.Generator) -> None:
    _h, w = img.shape[:2]
    left, right = img[:, : w // 2], img[:, w // 2 :]
    _stripe(left, base, accent, unit, rng)
    right[:] = mix(base, accent, 0.3)
    _dot(right, mix(base, accent, 0.3), base, unit, rng)


PRINTS: dict[str, PrintFn] = {
    "무지": _solid,
    "스트라이프": _stripe,
    "체크": _check,
    "깅엄": _gingham,
    "도트": _dot,
    "플로럴": _floral,
    "지그재그": _zigzag,
    "호피": _leopard,
    "지브라": _zebra,
    "아가일": _argyle,
    "하트": _heart,
    "레터링": _lettering,
    "그래픽": _graphic,
    "카무플라쥬": _camouflage,
    "그라데이션": _gradation,
    "타이다이": _tie_dye,
    "하운즈 투스": _houndstooth,
    "해골": _skull,
    "페이즐리": _paisley,
    "믹스": _mix,
}


def render_print(
    name: str, height: int, width: int, base: RGB, accent: RGB, unit: float, rng: np.random.Generator
) -> np.ndarray:
    img = _fill(height, width, base)
    PRINTS[name](img, base, accent, unit, rng)
    return img
