"""A standing figure: keypoints in pixels, drawn as skin, hair and shoes.

Lengths are fractions of the figure's height `h` from the top of the head; x is measured from the
body's centre line. Garments are built on these keypoints (training/synth/garments.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from training.synth.palette import HAIR_COLORS, RGB, SKIN_TONES, darker

Point = tuple[float, float]
_LINE = cv2.LINE_AA

# Half-width of the bare torso (in units of h) at heights y, before the body-width factor.
_TORSO_Y = np.array([0.150, 0.160, 0.215, 0.240, 0.300, 0.370, 0.460, 0.500, 0.560])
_TORSO_X = np.array([0.035, 0.104, 0.088, 0.088, 0.080, 0.070, 0.096, 0.098, 0.098])
# Half-width of one leg along its length (fraction from hip joint to ankle).
_LEG_T = np.array([0.0, 0.45, 1.0])
_LEG_HW = np.array([0.050, 0.033, 0.022])
ARM_LENGTH = 0.33  # shoulder to wrist, in units of h


@dataclass
class Figure:
    cx: float
    top: float
    h: float
    width: float  # body-width factor around 1
    arm_spread: float  # degrees of the upper arm from vertical
    forearm_spread: float
    stance: float  # extra half-distance between the ankles, units of h
    skin: RGB
    hair: RGB
    long_hair: bool

    @classmethod
    def sample(cls, canvas_w: int, canvas_h: int, rng: np.random.Generator) -> Figure:
        h = canvas_h * rng.uniform(0.62, 0.98)
        top = rng.uniform(0.01, 0.06) * canvas_h + rng.uniform(
            0, max(0.0, canvas_h - h * 1.02 - 0.06 * canvas_h)
        )
        half_span = 0.22 * h
        cx = rng.uniform(max(half_span, canvas_w * 0.22), min(canvas_w - half_span, canvas_w * 0.78))
        return cls(
            cx=float(cx),
            top=float(top),
            h=float(h),
            width=float(rng.uniform(0.9, 1.1)),
            arm_spread=float(rng.uniform(6, 20)),
            forearm_spread=float(rng.uniform(-4, 12)),
            stance=float(rng.uniform(0.0, 0.035)),
            skin=SKIN_TONES[int(rng.integers(len(SKIN_TONES)))],
            hair=HAIR_COLORS[int(rng.integers(len(HAIR_COLORS)))],
            long_hair=bool(rng.random() < 0.75),
        )

    # ---- geometry
    def p(self, x: float, y: float) -> Point:
        """A point given in body units (x from the centre line, y from the top of the head)."""
        return (self.cx + x * self.h, self.top + y * self.h)

    def px(self, length: float) -> float:
        return length * self.h

    def torso_half(self, y: float) -> float:
        return float(np.interp(y, _TORSO_Y, _TORSO_X)) * self.width

    def arm(self, side: int) -> list[Point]:
        """Shoulder joint, elbow, wrist of one arm (side -1 = image left), in body units."""
        shoulder = (side * 0.098 * self.width, 0.172)
        a1, a2 = np.radians(self.arm_spread), np.radians(self.arm_spread + self.forearm_spread)
        elbow = (shoulder[0] + side * 0.17 * np.sin(a1), shoulder[1] + 0.17 * np.cos(a1))
        wrist = (elbow[0] + side * 0.16 * np.sin(a2), elbow[1] + 0.16 * np.cos(a2))
        return [shoulder, elbow, wrist]

    def leg(self, side: int) -> list[Point]:
        """Hip joint, knee, ankle of one leg, in body units."""
        hip = (side * 0.05 * self.width, 0.48)
        knee = (side * (0.052 * self.width + self.stance * 0.45), 0.705)
        ankle = (side * (0.052 * self.width + self.stance), 0.93)
        return [hip, knee, ankle]

    @staticmethod
    def leg_half_width(t: float) -> float:
        return float(np.interp(t, _LEG_T, _LEG_HW))

    # ---- drawing
    def draw_back_hair(self, canvas: np.ndarray) -> None:
        if self.long_hair:
            pts = [self.p(x, y) for x, y in ((-0.06, 0.05), (0.06, 0.05), (0.075, 0.26), (-0.075, 0.26))]
            cv2.fillPoly(canvas, [np.int32(pts)], self.hair, _LINE)

    def draw_body(self, canvas: np.ndarray) -> None:
        skin = self.skin
        torso = [self.p(-self.torso_half(y), y) for y in _TORSO_Y] + [
            self.p(self.torso_half(y), y) for y in _TORSO_Y[::-1]
        ]
        cv2.fillPoly(canvas, [np.int32(torso)], skin, _LINE)
        cv2.rectangle(canvas, np.int32(self.p(-0.021, 0.10)), np.int32(self.p(0.021, 0.16)), skin, -1)
        for side in (-1, 1):
            pts = self.arm(side)
            for (a, b), (r0, r1) in zip(
                itertools.pairwise(pts), ((0.025, 0.019), (0.019, 0.014)), strict=True
            ):
                fill_limb(canvas, self.p(*a), self.p(*b), self.px(r0), self.px(r1), skin)
            wrist = pts[-1]
            cv2.circle(
                canvas, np.int32(self.p(wrist[0], wrist[1] + 0.025)), int(self.px(0.018)), skin, -1, _LINE
            )
            leg = self.leg(side)
            for (a, b), (t0, t1) in zip(itertools.pairwise(leg), ((0.0, 0.45), (0.45, 1.0)), strict=True):
                fill_limb(
                    canvas,
                    self.p(*a),
                    self.p(*b),
                    self.px(self.leg_half_width(t0)),
                    self.px(self.leg_half_width(t1)),
                    skin,
                )
            ankle = leg[-1]
            shoe = darker(self.hair, 0.8)
            cv2.ellipse(
                canvas,
                np.int32(self.p(ankle[0] + side * 0.008, ankle[1] + 0.022)),
                (int(self.px(0.03)), int(self.px(0.017))),
                0,
                0,
                360,
                shoe,
                -1,
                _LINE,
            )
        self.draw_head(canvas)

    def draw_head(self, canvas: np.ndarray) -> None:
        centre = np.int32(self.p(0, 0.062))
        axes = (int(self.px(0.041)), int(self.px(0.056)))
        cv2.ellipse(canvas, centre, axes, 0, 0, 360, self.skin, -1, _LINE)
        cv2.ellipse(
            canvas, centre, (axes[0] + 2, axes[1] + 2), 0, 180, 360, self.hair, max(3, axes[1] // 3), _LINE
        )
        eye_y = 0.066
        for side in (-1, 1):
            cv2.circle(
                canvas, np.int32(self.p(side * 0.015, eye_y)), max(1, int(self.px(0.004))), (40, 30, 30), -1
            )
        cv2.line(
            canvas,
            np.int32(self.p(-0.008, 0.093)),
            np.int32(self.p(0.008, 0.093)),
            (170, 80, 80),
            max(1, int(self.px(0.003))),
            _LINE,
        )

    def face_polygon(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Centre and axes of the face ellipse (what a hood must leave visible)."""
        return tuple(np.int32(self.p(0, 0.066))), (int(self.px(0.036)), int(self.px(0.05)))


def fill_limb(img: np.ndarray, a: Point, b: Point, r0: float, r1: float, color: RGB | int) -> None:
    """A tapered segment from a (half-width r0) to b (half-width r1), with round joints."""
    ax, ay = a
    bx, by = b
    length = max(1e-6, float(np.hypot(bx - ax, by - ay)))
    nx, ny = -(by - ay) / length, (bx - ax) / length
    quad = [
        (ax + nx * r0, ay + ny * r0),
        (bx + nx * r1, by + ny * r1),
        (bx - nx * r1, by - ny * r1),
        (ax - nx * r0, ay - ny * r0),
    ]
    cv2.fillPoly(img, [np.int32(quad)], color, _LINE)
    cv2.circle(img, (int(ax), int(ay)), max(1, int(r0)), color, -1, _LINE)
    cv2.circle(img, (int(bx), int(by)), max(1, int(r1)), color, -1, _LINE)


def point_along(points: list[Point], fraction: float) -> list[Point]:
    """The polyline cut at `fraction` of its length (the part from its start)."""
    lengths = [float(np.hypot(b[0] - a[0], b[1] - a[1])) for a, b in itertools.pairwise(points)]
    target = fraction * sum(lengths)
    out = [points[0]]
    for (a, b), seg in zip(itertools.pairwise(points), lengths, strict=True):
        if target <= seg:
            t = target / seg if seg else 0.0
            out.append((a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t))
            return out
        out.append(b)
        target -= seg
    return out
