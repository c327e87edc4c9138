"""Shared fixtures: the KFASHION.md sample label and a generated dataset of 200 images."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SAMPLE_LABEL = DATA / "kfashion_sample.json"
# The bottom item of the sample, as `labels show` prints its attributes.
SAMPLE_BOTTOM_ATTRIBUTES = {
    "category": "팬츠",
    "color": "블랙",
    "print": ["아가일"],
    "material": ["울/캐시미어"],
    "detail": ["리본"],
    "length": "발목",
    "fit": "루즈",
}
SYNTH_COUNT = 200
SYNTH_SEED = 11


@pytest.fixture
def sample_doc() -> dict:
    """The KFASHION.md / seed 004 sample label as a fresh dict (safe to modify)."""
    return copy.deepcopy(json.loads(SAMPLE_LABEL.read_text(encoding="utf-8")))


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 generated images in the K-Fashion layout (about 15 s on 2 cores)."""
    from training.synth.dataset import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, SYNTH_COUNT, SYNTH_SEED, workers=2)
    return root
