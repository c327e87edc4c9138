"""Garment shapes on a figure: a mask per garment (its silhouette shows category, length, sleeve,
neckline, collar and fit), and the surface details drawn on it after it is painted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from training.synth.figure import Figure, Point, fill_limb, point_along
from training.synth.outfit import Garment
from training.synth.palette import RGB, darker, mix

_LINE = cv2.LINE_AA

TOP_HEM = {"크롭": 0.315, "노멀": 0.47, "롱": 0.55}
LOWER_HEM = {"미니": 0.565, "니렝스": 0.70, "미디": 0.80, "발목": 0.915, "맥시": 0.95}
OUTER_HEM = {"미니": 0.50, "니렝스": 0.70, "미디": 0.80, "발목": 0.905, "맥시": 0.945}
SLEEVE_FRACTION = {"민소매": 0.0, "캡": 0.1, "반팔": 0.32, "7부소매": 0.74, "긴팔": 0.98}
FIT_WIDTH = {"타이트": 0.97, "스키니": 0.97, "노멀": 1.06, "루즈": 1.2, "와이드": 1.22, "오버사이즈": 1.34}
LEG_FIT = {"타이트": 1.04, "스키니": 1.1, "노멀": 1.35, "루즈": 1.6, "와이드": 1.55, "오버사이즈": 1.7}
WAIST_Y = 0.375


@dataclass
class Shape:
    """A garment's mask on the canvas and the lines its details are drawn along (body units)."""

    mask: np.ndarray
    neck_y: float
    hem_y: float
    waist_y: float
    half_width_at: dict[float, float]  # y -> half width of the garment body, for details


def _poly(mask: np.ndarray, fig: Figure, pts: list[Point], value: int = 255) -> None:
    cv2.fillPoly(mask, [np.int32([fig.p(x, y) for x, y in pts])], value, _LINE)


def _upper_body(fig: Figure, g: Garment, hem_y: float, widen: float, mask: np.ndarray) -> dict[float, float]:
    """Torso and sleeves of a top, outer or the upper half of a onepiece; returns half widths by height."""
    fit = FIT_WIDTH.get(g.fit or "노멀", 1.06) * widen
    loose = min(1.0, max(0.0, (fit - 0.97) / 0.4))
    chest = fig.torso_half(0.24)
    ys = [
        y
        for y in (0.215, 0.24, 0.30, WAIST_Y, 0.42, 0.46, 0.50, 0.56, 0.62, 0.70, 0.80, 0.90, 0.95)
        if y < hem_y
    ]
    ys.append(hem_y)
    widths: dict[float, float] = {}
    for y in ys:
        body = fig.torso_half(min(y, 0.50))
        flare = 1.0 + max(0.0, y - 0.5) * 0.55  # long outers widen below the hips like a coat
        widths[y] = (body + (chest - body) * loose) * fit * flare + 0.006
    drop = "드롭숄더" in g.details or g.fit == "오버사이즈"
    shoulder_x = 0.104 * fig.width * (1 + (fit - 1) * 0.6) + (0.02 if drop else 0.0)
    shoulder_y = 0.158 + (0.012 if drop else 0.0)
    side = [(w, y) for y, w in widths.items()]
    outline = (
        [(-0.03, 0.142), (-shoulder_x, shoulder_y)]
        + [(-w, y) for w, y in side]
        + [(w, y) for w, y in side[::-1]]
        + [(shoulder_x, shoulder_y), (0.03, 0.142)]
    )
    _poly(mask, fig, outline)
    fraction = SLEEVE_FRACTION.get(g.sleeve or "민소매", 0.0)
    if fraction > 0:
        sleeve_width = (1.25 + (fit - 1) * 1.2) * (1.1 if "패딩" in g.details else 1.0)
        for s in (-1, 1):
            if g.neckline == "원숄더" and s == 1:
                continue
            arm = point_along(fig.arm(s), fraction)
            if drop:
                arm[0] = (arm[0][0] + s * 0.01, arm[0][1] + 0.012)
            for k, (a, b) in enumerate(itertools.pairwise(arm)):
                t0 = k / max(1, len(arm) - 1)
                r0 = (0.026 - 0.008 * t0) * sleeve_width
                r1 = (0.026 - 0.008 * (t0 + 0.5)) * sleeve_width
                fill_limb(mask, fig.p(*a), fig.p(*b), fig.px(r0), fig.px(r1), 255)
            if "퍼프" in g.details:
                cv2.circle(mask, np.int32(fig.p(*arm[0])), int(fig.px(0.036)), 255, -1, _LINE)
    return widths


def _carve_neckline(fig: Figure, g: Garment, mask: np.ndarray) -> None:
    """Cut the neckline out of an upper garment (skin shows through) or add the neck it covers."""
    neck, c = g.neckline, fig.p(0, 0.142)
    centre = (int(c[0]), int(c[1]))
    if neck in ("라운드넥", None, "후드"):
        cv2.ellipse(mask, centre, (int(fig.px(0.034)), int(fig.px(0.024))), 0, 0, 360, 0, -1, _LINE)
    elif neck == "노카라":
        cv2.ellipse(mask, centre, (int(fig.px(0.03)), int(fig.px(0.016))), 0, 0, 360, 0, -1, _LINE)
    elif neck == "브이넥":
        _poly(mask, fig, [(-0.04, 0.13), (0.04, 0.13), (0.0, 0.225)], 0)
    elif neck == "유넥":
        cv2.ellipse(mask, centre, (int(fig.px(0.04)), int(fig.px(0.065))), 0, 0, 360, 0, -1, _LINE)
    elif neck == "스퀘어넥":
        _poly(mask, fig, [(-0.045, 0.13), (0.045, 0.13), (0.045, 0.195), (-0.045, 0.195)], 0)
    elif neck == "보트넥":
        cv2.ellipse(mask, centre, (int(fig.px(0.075)), int(fig.px(0.016))), 0, 0, 360, 0, -1, _LINE)
    elif neck == "스위트하트":
        _poly(mask, fig, [(-0.06, 0.12), (0.06, 0.12), (0.06, 0.19), (-0.06, 0.19)], 0)
        for s in (-1, 1):
            cv2.circle(mask, np.int32(fig.p(s * 0.03, 0.19)), int(fig.px(0.032)), 255, -1, _LINE)
        _poly(mask, fig, [(-0.012, 0.19), (0.012, 0.19), (0.0, 0.21)], 0)
        _poly(mask, fig, [(-0.2, 0.12), (0.2, 0.12), (0.2, 0.17), (-0.2, 0.17)], 0)
    elif neck == "터틀넥":
        _poly(mask, fig, [(-0.026, 0.105), (0.026, 0.105), (0.03, 0.15), (-0.03, 0.15)])
    elif neck == "오프숄더":
        _poly(mask, fig, [(-0.3, 0.10), (0.3, 0.10), (0.3, 0.19), (-0.3, 0.19)], 0)
    elif neck == "원숄더":
        _poly(mask, fig, [(-0.02, 0.10), (0.3, 0.10), (0.3, 0.245), (0.0, 0.215), (-0.02, 0.14)], 0)
    elif neck == "홀터넥":
        for s in (-1, 1):
            _poly(
                mask,
                fig,
                [(s * 0.03, 0.10), (s * 0.3, 0.10), (s * 0.3, 0.23), (s * 0.085, 0.23), (s * 0.03, 0.145)],
                0,
            )


def _add_collar(fig: Figure, g: Garment, mask: np.ndarray) -> None:
    collar = g.collar
    if collar in ("셔츠칼라", "폴로칼라"):
        size = 0.8 if collar == "폴로칼라" else 1.0
        for s in (-1, 1):
            _poly(mask, fig, [(s * 0.012, 0.15), (s * 0.036, 0.128), (s * 0.05 * size, 0.175 * size + 0.01)])
    elif collar in ("밴드칼라", "차이나칼라"):
        top = 0.118 if collar == "차이나칼라" else 0.13
        _poly(mask, fig, [(-0.028, top), (0.028, top), (0.03, 0.148), (-0.03, 0.148)])
    elif collar == "피터팬칼라":
        for s in (-1, 1):
            cv2.ellipse(
                mask,
                np.int32(fig.p(s * 0.024, 0.152)),
                (int(fig.px(0.026)), int(fig.px(0.018))),
                0,
                0,
                360,
                255,
                -1,
                _LINE,
            )
    elif collar == "보우칼라":
        _poly(mask, fig, [(-0.035, 0.16), (0.0, 0.17), (-0.035, 0.19)])
        _poly(mask, fig, [(0.035, 0.16), (0.0, 0.17), (0.035, 0.19)])


def build_shape(fig: Figure, g: Garment, canvas_shape: tuple[int, int]) -> Shape:
    mask = np.zeros(canvas_shape, np.uint8)
    widths: dict[float, float] = {}
    neck_y, waist_y = 0.142, WAIST_Y
    if g.region == "top":
        hem = TOP_HEM.get(g.length or "노멀", 0.47)
        if g.category == "브라탑":
            hem = 0.275
        widths = _upper_body(fig, g, hem, 1.0, mask)
        _carve_neckline(fig, g, mask)
        if g.category in ("탑", "브라탑") and g.neckline not in ("홀터넥", "오프숄더", "원숄더"):
            _poly(mask, fig, [(-0.3, 0.10), (0.3, 0.10), (0.3, 0.185), (-0.3, 0.185)], 0)  # straps only
            for s in (-1, 1):
                _poly(mask, fig, [(s * 0.05, 0.15), (s * 0.062, 0.15), (s * 0.066, 0.19), (s * 0.054, 0.19)])
        _add_collar(fig, g, mask)
    elif g.region == "outer":
        hem = OUTER_HEM.get(g.length or "미니", 0.5)
        widths = _upper_body(fig, g, hem, 1.1 + (0.12 if "패딩" in g.details else 0.0), mask)
        if g.open_front:
            _poly(mask, fig, [(-0.018, 0.17), (0.018, 0.17), (0.05, hem + 0.01), (-0.05, hem + 0.01)], 0)
        _carve_neckline(fig, g, mask)
        if g.collar in ("테일러드칼라", "너치드칼라", "숄칼라"):
            for s in (-1, 1):  # lapels, folded back over the chest
                _poly(mask, fig, [(s * 0.025, 0.135), (s * 0.07, 0.16), (s * 0.058, 0.19), (s * 0.02, 0.26)])
        else:
            _add_collar(fig, g, mask)
    elif g.region == "onepiece":
        hem = LOWER_HEM.get(g.length or "니렝스", 0.70)
        widths = _upper_body(fig, g, WAIST_Y + 0.02, 1.0, mask)
        _carve_neckline(fig, g, mask)
        _add_collar(fig, g, mask)
        if g.category == "점프수트":
            _trousers(fig, g, hem, mask)
        else:
            _skirt(fig, g, hem, mask)
    else:  # bottom
        hem = LOWER_HEM.get(g.length or "발목", 0.915)
        if g.category == "스커트":
            _skirt(fig, g, hem, mask)
        else:
            _trousers(fig, g, hem, mask)
        neck_y = waist_y = WAIST_Y + 0.01
    _add_edge_details(fig, g, hem, mask)
    return Shape(mask, neck_y, hem, waist_y, widths)


def _skirt(fig: Figure, g: Garment, hem: float, mask: np.ndarray) -> None:
    hip = fig.torso_half(0.46) * 1.06
    waist = fig.torso_half(WAIST_Y) * 1.04
    hem_half = hip + max(0.0, hem - 0.46) * 0.42 * (g.flare - 0.95)
    outline = [
        (-waist, WAIST_Y),
        (waist, WAIST_Y),
        (hip, 0.46),
        (hem_half, hem),
        (-hem_half, hem),
        (-hip, 0.46),
    ]
    _poly(mask, fig, outline)
    if "슬릿" in g.details:
        x = hem_half * 0.45
        _poly(
            mask,
            fig,
            [(x - 0.012, hem + 0.01), (x + 0.012, hem + 0.01), (x, hem - min(0.12, (hem - 0.5) * 0.5))],
            0,
        )


def _trousers(fig: Figure, g: Garment, hem: float, mask: np.ndarray) -> None:
    waist = fig.torso_half(WAIST_Y) * 1.04
    hip = fig.torso_half(0.46) * 1.05
    _poly(
        mask,
        fig,
        [
            (-waist, WAIST_Y),
            (waist, WAIST_Y),
            (hip, 0.46),
            (hip, 0.50),
            (0.0, 0.53),
            (-hip, 0.50),
            (-hip, 0.46),
        ],
    )
    fit = LEG_FIT.get(g.fit or "노멀", 1.35)
    if g.category == "레깅스":
        fit = 1.04
    fraction = min(1.04, (hem - 0.48) / (0.93 - 0.48))
    for s in (-1, 1):
        leg = fig.leg(s)
        path = point_along(leg, min(1.0, fraction))
        if fraction > 1.0:  # maxi trousers pool over the shoe
            path[-1] = (path[-1][0], hem)
        n = len(path)
        for k, (a, b) in enumerate(itertools.pairwise(path)):
            t0 = fraction * k / max(1, n - 1)
            t1 = fraction * (k + 1) / max(1, n - 1)
            r0 = fig.leg_half_width(t0) * fit
            r1 = fig.leg_half_width(t1) * fit
            if g.flare > 1.0:
                r1 = max(r1, fig.leg_half_width(0.0) * (0.9 + 0.45 * (g.flare - 1.0) * t1))
            if g.category == "조거팬츠" and k == n - 2:
                r1 = fig.leg_half_width(1.0) * 1.35
            fill_limb(mask, fig.p(*a), fig.p(*b), fig.px(r0), fig.px(r1), 255)


def _add_edge_details(fig: Figure, g: Garment, hem: float, mask: np.ndarray) -> None:
    """Details that change the outline: hood, frills, fringe, fur trim."""
    if "후드" in g.details or g.neckline == "후드":
        centre = fig.p(0, 0.07)
        cv2.ellipse(
            mask, np.int32(centre), (int(fig.px(0.062)), int(fig.px(0.072))), 0, 0, 360, 255, -1, _LINE
        )
        face_c, face_axes = fig.face_polygon()
        cv2.ellipse(mask, face_c, face_axes, 0, 0, 360, 0, -1, _LINE)
    hem_half = _hem_half_width(fig, mask, hem)
    if hem_half is None:
        return
    left, right = hem_half
    if "프릴" in g.details or "러플" in g.details:
        r = fig.px(0.012 if "프릴" in g.details else 0.018)
        for x in np.arange(left + r, right - r + 1, r * 1.6):
            cv2.circle(mask, (int(x), int(fig.p(0, hem)[1])), int(r), 255, -1, _LINE)
    if "프린지" in g.details:
        y = fig.p(0, hem)[1]
        for x in np.arange(left + 2, right - 1, max(3.0, fig.px(0.006))):
            cv2.line(
                mask, (int(x), int(y - 2)), (int(x), int(y + fig.px(0.035))), 255, max(1, int(fig.px(0.002)))
            )


def _hem_half_width(fig: Figure, mask: np.ndarray, hem: float) -> tuple[float, float] | None:
    y = int(fig.p(0, hem)[1]) - 2
    if not 0 <= y < mask.shape[0]:
        return None
    xs = np.flatnonzero(mask[y])
    return (float(xs.min()), float(xs.max())) if xs.size else None


# ------------------------------------------------------------------ surface details


def draw_surface_details(
    canvas: np.ndarray, fig: Figure, g: Garment, shape: Shape, color: RGB, rng: np.random.Generator
) -> None:
    """Marks drawn inside the painted garment: buttons, zips, pockets, quilting, pleats, belts, ...
    Everything is clipped to the garment's mask."""
    layer = canvas.copy()
    line = darker(color, 0.55) if sum(color) > 150 else mix(color, (255, 255, 255), 0.35)
    thin = max(1, int(fig.px(0.0035)))
    details = set(g.details)
    hem, _neck = shape.hem_y, (0.2 if g.region != "bottom" else shape.waist_y + 0.02)
    front_x = [-0.03] if g.region == "outer" and g.open_front else [0.0]
    if "집업" in details:
        zip_color = (200, 200, 205) if sum(color) < 300 else (70, 70, 75)
        a, b = fig.p(0, 0.15), fig.p(0, hem - 0.005)
        cv2.line(layer, np.int32(a), np.int32(b), zip_color, max(2, thin + 1), _LINE)
        for y in np.arange(0.16, hem, 0.012):
            p = fig.p(0, y)
            cv2.line(
                layer,
                (int(p[0] - fig.px(0.005)), int(p[1])),
                (int(p[0] + fig.px(0.005)), int(p[1])),
                zip_color,
                1,
            )
    if "단추" in details and "집업" not in details:
        columns = (
            [x - 0.022 for x in front_x] + [x + 0.022 for x in front_x]
            if "더블브레스티드" in details
            else front_x
        )
        top = 0.16 if g.region != "bottom" else shape.waist_y + 0.01
        stop = min(hem - 0.02, 0.46 if g.region != "bottom" else hem - 0.02)
        for x in columns:
            for y in np.linspace(top + 0.02, stop, 5 if g.region != "bottom" else 3):
                cv2.circle(layer, np.int32(fig.p(x, y)), max(2, int(fig.px(0.006))), line, -1, _LINE)
    if "퀼팅" in details:
        for y in np.arange(0.19, hem, 0.035):
            a, b = fig.p(-0.4, y), fig.p(0.4, y + 0.004)
            cv2.line(layer, np.int32(a), np.int32(b), darker(color, 0.7), max(1, thin), _LINE)
    if "포켓" in details:
        if g.category in ("후드티", "짚업"):
            _poly_outline(
                layer, fig, [(-0.05, 0.37), (0.05, 0.37), (0.065, 0.44), (-0.065, 0.44)], line, thin
            )
        elif g.region == "bottom" or g.category == "점프수트":
            for s in (-1, 1):
                _poly_outline(
                    layer, fig, [(s * 0.045, 0.395), (s * 0.085, 0.395), (s * 0.085, 0.44)], line, thin
                )
        else:
            for s in (-1, 1):
                y0 = 0.25 if g.category == "셔츠" else min(hem - 0.07, 0.40)
                if g.category == "셔츠" and s == 1:
                    continue
                _poly_outline(
                    layer,
                    fig,
                    [(s * 0.035, y0), (s * 0.075, y0), (s * 0.075, y0 + 0.045), (s * 0.035, y0 + 0.045)],
                    line,
                    thin,
                )
    if "플리츠" in details:
        for x in np.linspace(-0.09, 0.09, 9):
            a, b = fig.p(x * 0.9, shape.waist_y + 0.01), fig.p(x * 1.8, hem)
            cv2.line(layer, np.int32(a), np.int32(b), darker(color, 0.72), thin, _LINE)
    if "띠" in details or "버클" in details:
        y = WAIST_Y + 0.004
        belt = darker(color, 0.45) if "띠" in details else (60, 40, 30)
        cv2.rectangle(layer, np.int32(fig.p(-0.2, y - 0.008)), np.int32(fig.p(0.2, y + 0.008)), belt, -1)
        if "버클" in details:
            cv2.rectangle(
                layer,
                np.int32(fig.p(-0.014, y - 0.011)),
                np.int32(fig.p(0.014, y + 0.011)),
                (200, 180, 90),
                max(1, thin),
                _LINE,
            )
    if "리본" in details:
        y = 0.16 if g.region in ("top", "onepiece") else WAIST_Y
        ribbon = mix(color, (255, 255, 255), 0.5) if g.print == "무지" else darker(color, 0.6)
        for s in (-1, 1):
            bow = np.int32([fig.p(0, y), fig.p(s * 0.03, y - 0.015), fig.p(s * 0.03, y + 0.015)])
            cv2.fillPoly(layer, [bow], ribbon, _LINE)
        cv2.circle(layer, np.int32(fig.p(0, y)), max(2, int(fig.px(0.007))), darker(ribbon, 0.8), -1, _LINE)
    if "롤업" in details:
        for s in (-1, 1):
            ankle = point_along(fig.leg(s), min(1.0, (hem - 0.48) / 0.45))[-1]
            a, b = fig.p(ankle[0] - 0.05, hem - 0.02), fig.p(ankle[0] + 0.05, hem)
            cv2.rectangle(layer, np.int32(a), np.int32(b), mix(color, (255, 255, 255), 0.3), -1)
    if "컷오프" in details or "디스트로이드" in details:
        fray = (236, 236, 230)
        spots = [hem - 0.006] if "컷오프" in details else []
        if "디스트로이드" in details and hem > 0.72:
            spots += [0.69, 0.71]
        for y in spots:
            for s in (-1, 1):
                for x in np.linspace(-0.03, 0.03, 7):
                    xx = s * 0.06 + x + rng.uniform(-0.004, 0.004)
                    a = fig.p(xx, y)
                    cv2.line(
                        layer,
                        np.int32(a),
                        np.int32((a[0] + fig.px(0.012), a[1] + rng.uniform(-1, 1))),
                        fray,
                        1,
                    )
    if "스티치" in details:
        stitch = (225, 180, 70)
        eroded = cv2.erode(shape.mask, np.ones((5, 5), np.uint8))
        contours, _ = cv2.findContours(eroded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        for contour in contours:
            pts = contour[:, 0, :]
            for k in range(0, len(pts) - 4, 10):
                cv2.line(layer, tuple(int(v) for v in pts[k]), tuple(int(v) for v in pts[k + 4]), stitch, 1)
    if "니트꽈배기" in details:
        for x in (-0.04, 0.0, 0.04):
            for y in np.arange(0.2, hem - 0.01, 0.03):
                cv2.ellipse(
                    layer,
                    np.int32(fig.p(x, y)),
                    (int(fig.px(0.01)), int(fig.px(0.016))),
                    30,
                    0,
                    360,
                    darker(color, 0.8),
                    thin,
                    _LINE,
                )
    if "셔링" in details:
        for y in np.arange(0.2, 0.28, 0.012):
            a, b = fig.p(-0.07, y), fig.p(0.07, y)
            cv2.line(layer, np.int32(a), np.int32(b), darker(color, 0.82), 1, _LINE)
    if "스터드" in details:
        for x in np.linspace(-0.08, 0.08, 7):
            cv2.circle(
                layer, np.int32(fig.p(x, 0.17)), max(1, int(fig.px(0.004))), (215, 215, 222), -1, _LINE
            )
    if "퍼트리밍" in details:
        fur = (232, 222, 200)
        contours, _ = cv2.findContours(shape.mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        head_y = fig.p(0, 0.16)[1]
        for contour in contours:
            for px, py in contour[::3, 0, :]:
                if py < head_y:
                    cv2.circle(layer, (int(px), int(py)), max(2, int(fig.px(0.007))), fur, -1)
    if g.category == "조거팬츠":
        for s in (-1, 1):
            ankle = point_along(fig.leg(s), min(1.0, (hem - 0.48) / 0.45))[-1]
            cv2.rectangle(
                layer,
                np.int32(fig.p(ankle[0] - 0.04, hem - 0.025)),
                np.int32(fig.p(ankle[0] + 0.04, hem)),
                darker(color, 0.85),
                -1,
            )
    window = mask_window(shape.mask)
    np.copyto(canvas[window], layer[window], where=shape.mask[window][..., None] > 0)


def mask_window(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice]:
    """The rows and columns that hold every non-zero pixel of `mask`, widened by `margin` within the image:
    work on one garment's pixels there costs what the garment covers, not the whole canvas."""
    x, y, width, height = cv2.boundingRect(mask)
    return slice(max(0, y - margin), y + height + margin), slice(max(0, x - margin), x + width + margin)


def _poly_outline(canvas: np.ndarray, fig: Figure, pts: list[Point], color: RGB, thickness: int) -> None:
    cv2.polylines(canvas, [np.int32([fig.p(x, y) for x, y in pts])], True, color, thickness, _LINE)
