"""The committed bootstrap models (models/): intact, current, and working on pictures they never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.detection import iou_matrix, xywh_to_xyxy
from shared.imaging import decode_image
from shared.manifest import check_files, load_manifest
from shared.settings import ImageLimits
from shared.taxonomy import TAXONOMY_VERSION
from training.data import load_samples
from training.onnx_eval import evaluate_onnx
from training.predict import Tagger
from training.synth.dataset import generate_dataset

MODELS = Path(__file__).parents[1] / "models"
UNSEEN_SEED = 777  # the bootstrap used seed 0
# Lower than the bootstrap's test figures (docs/models.md): 60 images is a small, noisy sample.
UNSEEN_THRESHOLDS = {
    ("detector", "mean", "AP50"): 0.6,
    ("attributes", "category", "top3"): 0.85,
    ("attributes", "color", "top1"): 0.55,
    ("style", None, "mAP"): 0.4,
}


@pytest.fixture(scope="module")
def unseen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unseen")
    generate_dataset(root, 60, UNSEEN_SEED, workers=2)
    return root


def test_manifest_is_valid_and_files_intact() -> None:
    manifest = load_manifest(MODELS)
    assert set(manifest.models) == {"detector", "attributes", "style"}
    assert check_files(MODELS, manifest) == dict.fromkeys(manifest.models, "ok")
    total = sum(entry.bytes for entry in manifest.models.values())
    assert total < 40e6, f"committed models take {total / 1e6:.1f} MB"


def test_models_match_this_taxonomy() -> None:
    # A taxonomy change changes heads and ids: the bootstrap models must be retrained and re-committed.
    assert load_manifest(MODELS).taxonomy_version == TAXONOMY_VERSION


def test_models_work_on_unseen_generated_pictures(unseen: Path) -> None:
    manifest = load_manifest(MODELS)
    files = {name: MODELS / entry.file for name, entry in manifest.models.items()}
    samples = load_samples(unseen)[0]
    metrics = evaluate_onnx(files, samples, int(manifest.models["detector"].postprocessing["stride"]))
    for (model, section, key), threshold in UNSEEN_THRESHOLDS.items():
        value = (metrics[model][section] if section else metrics[model])[key]
        assert value >= threshold, (model, section, key, value)


def test_tagger_finds_the_labelled_garments(unseen: Path) -> None:
    tagger = Tagger(MODELS)
    matched = total = 0
    for sample in load_samples(unseen)[0][:20]:
        pixels = decode_image(sample.image_path.read_bytes(), ImageLimits()).pixels
        record = tagger.tag(pixels)
        assert record.styles and record.styles[0].style
        truth = [it for it in sample.record.items if it.box]
        for item in truth:
            same_region = [p for p in record.items if p.region == item.region]
            total += 1
            if same_region:
                ious = iou_matrix(
                    xywh_to_xyxy(np.array([item.box])), xywh_to_xyxy(np.array([p.box for p in same_region]))
                )
                matched += bool(ious.max() >= 0.5)
        for predicted in record.items:
            assert "category" in predicted.attributes and "color" in predicted.attributes
    assert matched / total >= 0.6, f"{matched}/{total}"
