"""The committed bootstrap models (models/): intact, current, and working on pictures they never saw."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from shared.detection import detector_geometry
from shared.manifest import check_files, load_manifest, sha256_of, write_manifest
from shared.taxonomy import TAXONOMY_VERSION
from tests.conftest import UNSEEN_SEED
from training.data import LAYERED_REGIONS, load_samples, shows_outer
from training.onnx_eval import LAYERING_GROUPS, aspect_powers, evaluate_onnx
from training.synth.dataset import generate_dataset

MODELS = Path(__file__).parents[2] / "models"
# Lower than the bootstrap's test figures (docs/models.md): 60 images is a small, noisy sample.
UNSEEN_THRESHOLDS = {
    ("detector", "mean", "AP50"): 0.6,
    ("attributes", "category", "top3"): 0.85,
    ("attributes", "color", "top1"): 0.55,
    ("style", None, "mAP"): 0.4,
}


@pytest.fixture(scope="module")
def unseen_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unseen_dataset")
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


def test_models_work_on_unseen_generated_pictures(unseen_dataset: Path) -> None:
    manifest = load_manifest(MODELS)
    files = {name: MODELS / entry.file for name, entry in manifest.models.items()}
    samples = load_samples(unseen_dataset)[0]
    metrics = evaluate_onnx(
        files, samples, detector_geometry(manifest.models["detector"]), aspect_powers(manifest)
    )
    for (model, section, key), threshold in UNSEEN_THRESHOLDS.items():
        value = (metrics[model][section] if section else metrics[model])[key]
        assert value >= threshold, (model, section, key, value)


def _kfashion(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfashion", *args], capture_output=True, text=True, timeout=timeout
    )


def test_eval_takes_the_detector_input_size_from_the_manifest(unseen_dataset: Path, tmp_path: Path) -> None:
    # A user's detector may take another size than ours: the committed one, its graph set to 256x256 (it is
    # fully convolutional), is evaluated at the size its manifest says (the training constant failed here).
    graph = onnx.load(MODELS / "detector.onnx")
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = dims[3].dim_value = 256
    for output in graph.graph.output:
        for dim in output.type.tensor_type.shape.dim[2:]:
            dim.dim_param = "grid"
    del graph.graph.value_info[:]
    resized = tmp_path / "detector.onnx"
    onnx.save(graph, resized)
    manifest = load_manifest(MODELS)
    manifest.models = {"detector": manifest.models["detector"]}
    entry = manifest.models["detector"]
    entry.preprocessing["input_size"] = 256
    entry.sha256, entry.bytes = sha256_of(resized), resized.stat().st_size
    write_manifest(tmp_path, manifest)
    out = tmp_path / "metrics.json"
    result = _kfashion(
        "eval", "--data", str(unseen_dataset), "--models", str(tmp_path), "--split", "all", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    ap50 = json.loads(out.read_text(encoding="utf-8"))["detector"]["mean"]["AP50"]
    assert ap50 >= UNSEEN_THRESHOLDS[("detector", "mean", "AP50")], ap50


def test_eval_and_predict_commands(unseen_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    result = _kfashion(
        "eval", "--data", str(unseen_dataset), "--models", str(MODELS), "--split", "all", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(out.read_text(encoding="utf-8"))
    assert set(metrics) == {"detector", "attributes", "style", "layering"}
    # `--split all` prints its figures in one column (it printed only dashes once)
    assert re.search(r"category top-3\W+\d\.\d{3}", result.stdout), result.stdout
    # Tops and onepieces split by an outer over them: the two groups are all of them, nothing lost
    layering = metrics["layering"]
    for region in LAYERED_REGIONS:
        groups = [layering["detector"][group][region]["objects"] for group in LAYERING_GROUPS]
        assert sum(groups) == metrics["detector"][region]["objects"]
    samples = load_samples(unseen_dataset)[0]
    coloured = [
        shows_outer(s.record.items)
        for s in samples
        for item in s.record.items
        if item.box and item.region in LAYERED_REGIONS and item.attributes.get("color")
    ]
    counts = [layering["attributes"][group]["color"].get("count", 0) for group in LAYERING_GROUPS]
    assert counts == [sum(coloured), len(coloured) - sum(coloured)] and all(counts), counts
    assert "under an outer" in result.stdout
    images = sorted(unseen_dataset.rglob("*.jpg"))[:2]
    sheet = tmp_path / "predicted.png"
    result = _kfashion("predict", *map(str, images), "--models", str(MODELS), "--out", str(sheet))
    assert result.returncode == 0, result.stderr
    views = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(views) == 2 and all(v["styles"][0]["style"] for v in views)
    assert sheet.stat().st_size > 10_000


@pytest.mark.parametrize("command", ["predict", "catalog add", "eval", "models list"])
def test_commands_say_clearly_when_no_models_are_installed(command: str, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"never read: the models are looked for first")
    inputs = {
        "predict": [str(photo)],
        "catalog add": [str(tmp_path), "--data-dir", str(tmp_path / "data")],
        "eval": ["--data", str(tmp_path)],
    }.get(command, [])
    result = _kfashion(*command.split(), *inputs, "--models", str(tmp_path / "none"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    message = " ".join(result.stderr.split())
    assert "no manifest.json in" in message and "kfashion models bootstrap" in message, message


def test_bootstrap_command_end_to_end(tmp_path: Path) -> None:
    """The real `models bootstrap` at a tiny size: generate, train, evaluate, export, list."""
    models = tmp_path / "models"
    result = _kfashion(
        "models", "bootstrap", "--count", "30", "--out", str(models), "--work", str(tmp_path / "w")
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "w" / "run" / "report.md").is_file()
    manifest = load_manifest(models)
    assert check_files(models, manifest) == dict.fromkeys(("detector", "attributes", "style"), "ok")
    assert all(entry.storage in ("fp32", "fp16", "int8") for entry in manifest.models.values())
