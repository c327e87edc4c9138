"""Colour facts reported per item: the hex of the garment's pixels and their share of the box."""

from __future__ import annotations

import numpy as np
import pytest

from shared.colors import COLOR_SHADES, color_share


@pytest.mark.parametrize("color", list(COLOR_SHADES))
def test_every_reference_shade_is_its_own_colour(color: str) -> None:
    for shade in COLOR_SHADES[color]:
        patch = np.full((20, 30, 3), shade, np.uint8)
        hex_value, share = color_share(patch, color)
        assert share == 1.0, (color, shade)
        assert hex_value == "#{:02x}{:02x}{:02x}".format(*shade)


def test_share_counts_only_the_named_colour() -> None:
    box = np.full((100, 50, 3), (240, 240, 238), np.uint8)  # white background
    box[30:] = COLOR_SHADES["레드"][0]
    hex_value, share = color_share(box, "레드")
    assert share == pytest.approx(0.7, abs=0.02)
    rgb = [int(hex_value[k : k + 2], 16) for k in (1, 3, 5)]
    assert np.abs(np.array(rgb) - COLOR_SHADES["레드"][0]).max() <= 3  # the edge row is resampled
    assert color_share(box, "화이트")[1] == pytest.approx(0.3, abs=0.02)
    assert color_share(box, "블루") == ("#285cc8", 0.0)  # none: the reference hex, share 0
    assert color_share(box, "보라색 아님") == ("", 0.0)
    assert color_share(box[:0], "레드") == ("#c82026", 0.0)
