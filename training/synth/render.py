"""One generated K-Fashion sample: a photo-like picture of a dressed figure and its exact label record.

Boxes and polygons come from what is visible in the final picture (a top under a closed jacket shows
only where it shows), so they mean what a human labeller's rects and polygons mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import cv2
import numpy as np

from shared.labels import ImageInfo, Item, LabelRecord, StyleLabel
from training.synth.figure import Figure
from training.synth.garments import build_shape, draw_surface_details, mask_window
from training.synth.outfit import Garment, Outfit, derive_styles, sample_outfit
from training.synth.palette import BACKGROUND_TONES, METALLIC, RGB, darker, jitter, shade
from training.synth.prints import render_print

CANVAS_WIDTH = 800
CANVAS_HEIGHTS = (800, 800, 800, 900, 1000, 1066)
PAINT_ORDER = {"bottom": 0, "onepiece": 0, "top": 1, "outer": 2}
MIN_VISIBLE_SHARE = 0.12  # a garment less visible than this (of its own area) is not labelled
MIN_VISIBLE_PIXELS = 400
# A labeller does not box a garment's slivers: bits thinner than this (pixels of the 800-wide canvas; under 2
# pixels of the detector's 320-pixel input) or parts smaller than MIN_PART_SHARE of what shows, such as an
# inner sleeve's edge along an outer's sleeve. Until synth-3 they set the box, so a fifth of the tops under
# an outer had boxes a labeller would not draw.
SLIVER_PIXELS = 5
MIN_PART_SHARE = 0.02
P_MISSING_ATTRIBUTE = 0.03  # real labels miss attributes now and then; so do ours (never the category)
_EPOCH = datetime(2020, 9, 1, 9, 0, 0)


@dataclass
class Sample:
    pixels: np.ndarray  # RGB uint8
    record: LabelRecord
    outfit: Outfit


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    a = np.array(jitter(BACKGROUND_TONES[int(rng.integers(len(BACKGROUND_TONES)))], rng, 14), np.float32)
    b = np.array(jitter(BACKGROUND_TONES[int(rng.integers(len(BACKGROUND_TONES)))], rng, 14), np.float32)
    kind = int(rng.integers(4))
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(a * (1 - t) + b * t, (h, w, 3)).copy()
    if kind == 1:  # wall and floor
        horizon = int(h * rng.uniform(0.72, 0.9))
        img[horizon:] = np.array(darker(tuple(int(v) for v in b), 0.75), np.float32)  # type: ignore[arg-type]
        img[horizon - 3 : horizon] = np.array(darker(tuple(int(v) for v in a), 0.6), np.float32)  # type: ignore[arg-type]
    elif kind == 2:  # out-of-focus street: blurred blobs, drawn small and scaled up
        small = cv2.resize(img, (w // 8, h // 8))
        for _ in range(int(rng.integers(8, 20))):
            color = tuple(
                float(c) for c in jitter(BACKGROUND_TONES[int(rng.integers(len(BACKGROUND_TONES)))], rng, 40)
            )
            cv2.circle(
                small,
                (int(rng.integers(w // 8)), int(rng.integers(h // 8))),
                int(rng.integers(3, 14)),
                color,
                -1,
            )
        img = cv2.resize(cv2.GaussianBlur(small, (0, 0), 2.5), (w, h), interpolation=cv2.INTER_LINEAR)
    elif kind == 3:  # tiles or bricks
        step = int(rng.integers(40, 110))
        line = darker(tuple(int(v) for v in a), 0.82)  # type: ignore[arg-type]
        for y in range(0, h, step // 2):
            cv2.line(img, (0, y), (w, y), line, 2)
            offset = (step // 2) * ((y // (step // 2)) % 2)
            for x in range(offset, w, step):
                cv2.line(img, (x, y), (x, y + step // 2), line, 2)
    return img


def _material_shading(
    texture: np.ndarray, garment: Garment, unit: float, rng: np.random.Generator
) -> np.ndarray:
    h, w = texture.shape[:2]
    out = texture.astype(np.float32)
    materials = set(garment.materials)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if "데님" in materials:
        out *= (1 + 0.07 * np.sin((xs + ys) * 1.3))[..., None]
        out += rng.normal(0, 5, (h, w, 1)).astype(np.float32)
    if materials & {"니트", "앙고라", "울/캐시미어"} and garment.category in ("니트웨어", "가디건", "베스트"):
        out *= (1 + 0.08 * np.sin(xs / max(1.5, unit * 0.018)))[..., None]
    if "코듀로이" in materials:
        out *= (1 + 0.1 * np.sin(xs / max(1.2, unit * 0.01)))[..., None]
    if materials & {"트위드", "울/캐시미어", "플리스"}:
        out += rng.normal(0, 7, (h, w, 1)).astype(np.float32)
    if materials & {"가죽", "비닐/PVC"} or garment.color in METALLIC or "시퀸/글리터" in materials:
        sheen = np.exp(-(((xs / max(w, 1)) - rng.uniform(0.3, 0.7)) ** 2) / 0.01)
        out += (sheen * 70)[..., None]
    if "시퀸/글리터" in materials:
        sparkle = rng.random((h, w)) > 0.985
        out[sparkle] = 255
    if "레이스" in materials:
        holes = (np.sin(xs / 2.2) * np.sin(ys / 2.2)) > 0.75
        out[holes] = out[holes] * 0.6 + 255 * 0.4
    return out


def _paint(
    canvas: np.ndarray, mask: np.ndarray, garment: Garment, unit: float, rng: np.random.Generator
) -> RGB:
    x0, y0, width, height = cv2.boundingRect(mask)  # of its non-zero pixels, far faster than a scan
    if width == 0:
        return (0, 0, 0)
    y1, x1 = y0 + height, x0 + width
    base = shade(garment.color, rng)
    accent = shade(garment.accent, rng)
    if garment.print in ("호피",):
        accent = darker(accent, 0.35)
    texture = render_print(garment.print, int(y1 - y0), int(x1 - x0), base, accent, unit, rng)
    crop = mask[y0:y1, x0:x1]
    shaded = _material_shading(texture, garment, unit, rng)
    # soft shading: darker towards the garment's edges, plus a few folds
    distance = cv2.distanceTransform((crop > 0).astype(np.uint8), cv2.DIST_L2, 3)
    light = 0.8 + 0.2 * np.clip(distance / max(4.0, unit * 0.05), 0, 1)
    for _ in range(int(rng.integers(1, 4))):
        fx = rng.uniform(0, crop.shape[1])
        fold = np.exp(-((np.arange(crop.shape[1]) - fx) ** 2) / (2 * (unit * 0.01) ** 2 + 1))
        light = light - 0.07 * fold[None, :]
    shaded = np.clip(shaded * light[..., None], 0, 255).astype(np.uint8)
    region = canvas[y0:y1, x0:x1]
    np.copyto(region, shaded, where=(crop > 127)[..., None])
    contours, _ = cv2.findContours((crop > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(region, contours, -1, darker(base, 0.6), max(1, int(unit * 0.004)), cv2.LINE_AA)
    return base


def _lighting(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    # Broadcast rows against columns: the same values as a full coordinate grid, without building one.
    ramp = np.cos(angle) * (xs / w - 0.5) + np.sin(angle) * (ys / h - 0.5)
    gain = rng.uniform(0.9, 1.06) + rng.uniform(0.05, 0.16) * ramp
    warm = np.array([rng.uniform(0.96, 1.04), 1.0, rng.uniform(0.96, 1.04)], np.float32)
    noise = rng.normal(0, 2.5, (h, w)).astype(np.float32)
    # One colour plane at a time, in the dtypes and order of `img * gain * warm + noise`: the same pixels
    # in less time than broadcasting over the pixels' three channels.
    out = np.empty((3, h, w), gain.dtype)
    for channel in range(3):
        np.multiply(img[..., channel], gain, out=out[channel])
        out[channel] *= warm[channel]
        out[channel] += noise
    np.clip(out, 0, 255, out=out)
    return np.ascontiguousarray(out.astype(np.uint8).transpose(1, 2, 0))


def labelled_part(visible: np.ndarray) -> np.ndarray:
    """The part of a garment's visible mask (uint8, 0 or 1) that a labeller boxes: without slivers."""
    opened = cv2.morphologyEx(visible, cv2.MORPH_OPEN, np.ones((SLIVER_PIXELS, SLIVER_PIXELS), np.uint8))
    _, parts, stats, _ = cv2.connectedComponentsWithStats(opened)
    area = stats[1:, cv2.CC_STAT_AREA]
    kept = 1 + np.flatnonzero(area >= MIN_PART_SHARE * max(int(area.sum()), 1))
    return np.isin(parts, kept).astype(np.uint8)


def _visible_polygon(mask: np.ndarray, offset: tuple[int, int]) -> list[tuple[float, float]]:
    """The outline of every part of the mask as one polygon, in canvas pixels (`offset`: the mask's corner
    there), so that it fills what the box bounds, as a real file's polygon does (an open jacket's two
    fronts). The label format has one polygon per item: each further part, largest first, hangs from the
    outline by a zero-width bridge between their nearest points, walked there and back, which fills
    nothing."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=offset)
    parts = [
        cv2.approxPolyDP(c, 1.5, True)[:, 0, :] for c in sorted(contours, key=cv2.contourArea, reverse=True)
    ]
    outline = parts[0]
    for part in parts[1:]:
        distance = np.linalg.norm(outline[:, None, :].astype(np.float32) - part[None, :, :], axis=2)
        i, j = np.unravel_index(int(np.argmin(distance)), distance.shape)
        outline = np.concatenate([outline[: i + 1], part[j:], part[: j + 1], outline[i:]])
    return [(float(x), float(y)) for x, y in outline]


def _label_attributes(g: Garment, rng: np.random.Generator) -> dict[str, str | list[str]]:
    attributes: dict[str, str | list[str]] = {"category": g.category, "color": g.color}
    optional: dict[str, str | list[str] | None] = {
        "sub_color": g.accent if g.print != "무지" else None,
        "print": [g.print],
        "material": list(g.materials),
        "detail": list(g.details) or None,
        "length": g.length,
        "sleeve": g.sleeve,
        "neckline": g.neckline,
        "collar": g.collar,
        "fit": g.fit,
    }
    for key, value in optional.items():
        if value and rng.random() >= P_MISSING_ATTRIBUTE:
            attributes[key] = value
    return attributes


def render_sample(index: int, seed: int, outfit: Outfit | None = None) -> Sample:
    """The sample number `index` of the dataset made with `seed`; the same arguments give the same pixels."""
    rng = np.random.default_rng([seed, index])
    height = CANVAS_HEIGHTS[int(rng.integers(len(CANVAS_HEIGHTS)))]
    width = CANVAS_WIDTH
    outfit = outfit or sample_outfit(rng)
    canvas = _background(height, width, rng)
    fig = Figure.sample(width, height, rng)
    cv2.ellipse(
        canvas,
        np.int32(fig.p(0, 0.965)),
        (int(fig.px(0.14)), int(fig.px(0.02))),
        0,
        0,
        360,
        darker(tuple(int(v) for v in canvas[min(height - 1, int(fig.p(0, 0.965)[1])), int(fig.cx)]), 0.8),
        -1,
    )
    canvas = canvas.astype(np.uint8)
    fig.draw_back_hair(canvas)
    fig.draw_body(canvas)
    owner = np.zeros((height, width), np.uint8)  # which garment (1-based) is on top at each pixel
    garments = sorted(outfit.garments, key=lambda g: PAINT_ORDER[g.region])
    full_area: list[int] = []
    # Each garment's pixels with a margin of zeros around them, wide enough that the sliver opening in
    # labelled_part sees there what it would see on the whole canvas.
    windows: list[tuple[slice, slice]] = []
    unit = fig.h * 0.28  # pattern scale, proportional to the figure
    for number, garment in enumerate(garments, start=1):
        shape = build_shape(fig, garment, (height, width))
        base = _paint(canvas, shape.mask, garment, unit, rng)
        draw_surface_details(canvas, fig, garment, shape, base, rng)
        window = mask_window(shape.mask, margin=SLIVER_PIXELS)
        painted = shape.mask[window] > 127
        owner[window][painted] = number
        full_area.append(int(painted.sum()))
        windows.append(window)
    pixels = _lighting(canvas, rng)

    record = LabelRecord(
        image=ImageInfo(id=index + 1, width=width, height=height, file_name=image_file_name(seed, index)),
        created_at=(_EPOCH + timedelta(minutes=7 * index + seed % 1000)).strftime("%Y-%m-%d %H:%M:%S"),
        file_number=index + 1,
        file_name=image_file_name(seed, index),
    )
    labelled: list[Garment] = []
    for number, (garment, (rows, columns)) in enumerate(zip(garments, windows, strict=True), start=1):
        visible = labelled_part((owner[rows, columns] == number).astype(np.uint8))
        area = int(visible.sum())
        if area < MIN_VISIBLE_PIXELS or area < MIN_VISIBLE_SHARE * full_area[number - 1]:
            continue
        left, top, box_width, box_height = cv2.boundingRect(visible)
        box = (float(left + columns.start), float(top + rows.start), float(box_width), float(box_height))
        record.items.append(
            Item(
                region=garment.region,
                box=box,
                polygon=_visible_polygon(visible, (columns.start, rows.start)),
                attributes=_label_attributes(garment, rng),
            )
        )
        labelled.append(garment)
    main, sub = derive_styles(labelled or outfit.garments)
    record.styles = [StyleLabel(main, sub)]
    return Sample(pixels, record, outfit)


def image_file_name(seed: int, index: int) -> str:
    return f"kf_synth_{seed}_{index + 1:07d}.jpg"
