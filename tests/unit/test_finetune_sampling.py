"""How fine-tuning draws its garments: by source shares, and within a real set favouring rare labels when
asked (`kfashion train-real --balanced`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.finetune import Crop, balanced_chances, mixed_batches
from training.realdata import Target


def _crop(source: str, category: str) -> Crop:
    return Crop(
        Path(f"{source}-{category}.jpg"), source, None, "top", {"category": Target(allowed=(category,))}
    )


def _share_of_blouses(batches: list[list[Crop]]) -> float:
    drawn = [crop for batch in batches for crop in batch if crop.source == "clothing"]
    return sum(crop.targets["category"].allowed == ("블라우스",) for crop in drawn) / len(drawn)


def test_balanced_drawing_favours_a_rare_label_within_its_set_only() -> None:
    pools = {
        "clothing": [_crop("clothing", "티셔츠")] * 90 + [_crop("clothing", "블라우스")] * 10,
        "generated": [_crop("generated", "티셔츠")] * 50,
    }
    chances = balanced_chances(pools)
    assert set(chances) == {"clothing"}  # generated pictures are drawn as before
    assert chances["clothing"].sum() == pytest.approx(1.0)
    # each label weighs 1/sqrt(its count): 10 / sqrt(10) against 90 / sqrt(90)
    assert chances["clothing"][90:].sum() == pytest.approx(10**0.5 / (10**0.5 + 90**0.5))
    mix = {"clothing": 0.5, "generated": 0.5}
    plain = list(mixed_batches(pools, mix, 32, 400, seed=0))
    balanced = list(mixed_batches(pools, mix, 32, 400, seed=0, chances=chances))
    assert _share_of_blouses(plain) == pytest.approx(0.10, abs=0.02)
    assert _share_of_blouses(balanced) == pytest.approx(0.25, abs=0.02)
    sources = [crop.source for batch in balanced for crop in batch]
    assert sources.count("clothing") / len(sources) == pytest.approx(0.5, abs=0.02)
