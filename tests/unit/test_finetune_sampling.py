"""How fine-tuning draws its garments: by source shares, and within CAD favouring rare labels when asked
(`kfashion train-real --balanced`: CAD's print, sleeve and neckline are measured as balanced accuracy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.finetune import Crop, balanced_chances, mixed_batches
from training.realdata import Target


def _crop(source: str, sleeve: str) -> Crop:
    return Crop(Path(f"{source}-{sleeve}.jpg"), source, None, "top", {"sleeve": Target(allowed=(sleeve,))})


def _share_sleeveless(batches: list[list[Crop]], source: str) -> float:
    drawn = [crop for batch in batches for crop in batch if crop.source == source]
    return sum(crop.targets["sleeve"].allowed == ("민소매",) for crop in drawn) / len(drawn)


def test_balanced_drawing_favours_a_rare_label_within_cad_only() -> None:
    pools = {
        source: [_crop(source, "긴팔")] * 90 + [_crop(source, "민소매")] * 10
        for source in ("cad", "clothing", "generated")
    }
    chances = balanced_chances(pools)
    assert set(chances) == {"cad"}  # the other sets are measured by plain accuracy, drawn as before
    assert chances["cad"].sum() == pytest.approx(1.0)
    # each label weighs 1/sqrt(its count): 10 / sqrt(10) against 90 / sqrt(90)
    assert chances["cad"][90:].sum() == pytest.approx(10**0.5 / (10**0.5 + 90**0.5))
    mix = {"cad": 0.4, "clothing": 0.3, "generated": 0.3}
    plain = list(mixed_batches(pools, mix, 32, 400, seed=0))
    balanced = list(mixed_batches(pools, mix, 32, 400, seed=0, chances=chances))
    assert _share_sleeveless(plain, "cad") == pytest.approx(0.10, abs=0.02)
    assert _share_sleeveless(balanced, "cad") == pytest.approx(0.25, abs=0.02)
    assert _share_sleeveless(balanced, "clothing") == pytest.approx(0.10, abs=0.02)
    sources = [crop.source for batch in balanced for crop in batch]
    assert sources.count("cad") / len(sources) == pytest.approx(0.4, abs=0.02)
