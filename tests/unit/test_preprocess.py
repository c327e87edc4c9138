"""Item and person crops: how much of a box's aspect ratio they keep, and which models get which."""

from __future__ import annotations

import numpy as np
import pytest

from shared.preprocess import (
    CROP_ASPECT_POWER,
    CROP_CONTEXT,
    CROP_SIZE,
    PAD_VALUE,
    crop_aspect_power,
    crop_box,
    letterbox,
    preprocessing_manifest,
)


def _picture(height: int = 600, width: int = 400) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _shown(crop: np.ndarray) -> tuple[int, int]:
    """Width and height of the part of a crop that is not the grey padding (the test pictures have no
    grey rows or columns)."""
    content = (crop != PAD_VALUE).any(axis=2)
    return int(content.any(axis=0).sum()), int(content.any(axis=1).sum())


@pytest.mark.parametrize(
    "box", [(50, 40, 60, 400), (10, 300, 350, 90), (100, 100, 150, 150), (0, 0, 400, 600)]
)
def test_power_one_is_the_letterbox_of_the_box_with_its_margin(box: tuple[int, int, int, int]) -> None:
    """Person crops (power 1) and every crop of models exported before the power was recorded."""
    pixels = _picture()
    x, y, w, h = box
    x0, y0 = max(0, int(x - w * CROP_CONTEXT)), max(0, int(y - h * CROP_CONTEXT))
    x1 = min(pixels.shape[1], int(np.ceil(x + w + w * CROP_CONTEXT)))
    y1 = min(pixels.shape[0], int(np.ceil(y + h + h * CROP_CONTEXT)))
    np.testing.assert_array_equal(crop_box(pixels, box, 1.0), letterbox(pixels[y0:y1, x0:x1], CROP_SIZE)[0])


def test_item_crops_widen_narrow_boxes_and_keep_their_order() -> None:
    """A narrow strip fills a crop as wide as its aspect ratio to the item power allows, far more than
    its letterbox; a taller box still shows taller than a wider one."""
    pixels = _picture()
    power = CROP_ASPECT_POWER["item_crop"]
    assert 0 < power < 1
    strip = (150, 50, 40, 480)  # about 1:11 with its margin
    width, height = _shown(crop_box(pixels, strip, power))
    aspect = (480 * (1 + 2 * CROP_CONTEXT)) / (40 * (1 + 2 * CROP_CONTEXT))
    assert height == CROP_SIZE
    assert width == pytest.approx(CROP_SIZE / aspect**power, abs=2)
    assert width > 3 * _shown(crop_box(pixels, strip, 1.0))[0]
    shapes = [(100, 100, 200, 100), (100, 100, 150, 150), (100, 100, 100, 250), (100, 50, 50, 400)]
    shown = [_shown(crop_box(pixels, box, power)) for box in shapes]
    ratios = [h / w for w, h in shown]
    assert ratios == sorted(ratios) and ratios[0] < 1 < ratios[-1]
    assert _shown(crop_box(pixels, strip, 0.0)) == (CROP_SIZE, CROP_SIZE)  # power 0 stretches


def test_a_model_is_served_the_crops_its_manifest_records() -> None:
    assert (
        preprocessing_manifest(CROP_SIZE, "item_crop")["crop_aspect_power"] == CROP_ASPECT_POWER["item_crop"]
    )
    assert preprocessing_manifest(CROP_SIZE, "person_crop")["crop_aspect_power"] == 1.0
    assert "crop_aspect_power" not in preprocessing_manifest(320, "letterbox")
    assert crop_aspect_power(preprocessing_manifest(CROP_SIZE, "item_crop")) == CROP_ASPECT_POWER["item_crop"]
    # Models exported before the power was recorded letterboxed their crops.
    older = {
        k: v for k, v in preprocessing_manifest(CROP_SIZE, "item_crop").items() if k != "crop_aspect_power"
    }
    assert crop_aspect_power(older) == 1.0
