"""The shared decoder (shared.detection): boxes from the detector's centre maps, and drawn again around
the garment's mask where the detector has one."""

from __future__ import annotations

import numpy as np
import pytest

from shared.detection import decode_detections, detection_outputs
from shared.preprocess import letterbox
from shared.taxonomy import REGIONS

TOP = REGIONS.index("top")
IMAGE = np.zeros((640, 320, 3), np.uint8)  # letterboxed at half size, 80 pixels of padding on each side


def _maps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One top centred at input pixel (160, 160), 80 x 96 input pixels (10 x 12 cells of 8)."""
    peaks = np.zeros((len(REGIONS), 40, 40), np.float32)
    size = np.zeros((2 * len(REGIONS), 40, 40), np.float32)
    offset = np.zeros_like(size)
    peaks[TOP, 20, 20] = 0.9
    size[2 * TOP, 20, 20], size[2 * TOP + 1, 20, 20] = 10, 12
    return peaks, size, offset


def _decode(parts: np.ndarray | None) -> tuple[float, float, float, float]:
    _, placement = letterbox(IMAGE, 320)
    (found,) = decode_detections(*_maps(), 8, placement, 320, 640, score_threshold=0.2, parts=parts)
    assert found.region == "top" and found.score == pytest.approx(0.9)
    return found.box


def _parts(*cells: tuple[slice, slice]) -> np.ndarray:
    """A top's mask at stride 4 (80 x 80 cells) covering the given (rows, columns) of cells."""
    parts = np.zeros((len(REGIONS), 80, 80), np.float32)
    for rows, columns in cells:
        parts[TOP, rows, columns] = 1.0
    return parts


def test_a_box_is_its_centre_and_size_in_the_original_pixels() -> None:
    # Input box (120, 112) - (200, 208); the image is scaled by 1/2 and shifted by 80 pixels in x.
    assert _decode(None) == pytest.approx(((120 - 80) * 2, 112 * 2, 80 * 2, 96 * 2))


def test_a_box_is_drawn_again_around_the_mask_that_overlaps_it() -> None:
    # The mask shows the garment over input pixels 112..208 x 100..220: wider and longer than the box.
    x, y, w, h = _decode(_parts((slice(25, 55), slice(28, 52))))
    assert ((x / 2 + 80), y / 2, (x + w) / 2 + 80, (y + h) / 2) == pytest.approx((112, 100, 208, 220), abs=2)


def test_mask_parts_that_do_not_touch_the_box_are_left_out() -> None:
    # The garment as above, plus a part inside the grown window but apart from the box, and one far away.
    with_specks = _parts(
        (slice(25, 55), slice(28, 52)), (slice(25, 30), slice(20, 24)), (slice(0, 5), slice(70, 80))
    )
    assert _decode(with_specks) == pytest.approx(_decode(_parts((slice(25, 55), slice(28, 52)))))


@pytest.mark.parametrize(
    "parts",
    [
        _parts((slice(25, 55), slice(28, 37))),  # one front only: IoU with the box about 0.3
        _parts(),  # nothing shows
    ],
    ids=["disagreeing", "empty"],
)
def test_a_mask_that_does_not_agree_with_the_box_leaves_it(parts: np.ndarray) -> None:
    assert _decode(parts) == pytest.approx(_decode(None))


def test_masks_are_read_only_from_detectors_that_have_them() -> None:
    assert detection_outputs(["peaks", "size", "offset", "heat"]) == ["peaks", "size", "offset"]
    assert detection_outputs(["peaks", "size", "offset", "heat", "parts"])[-1] == "parts"
