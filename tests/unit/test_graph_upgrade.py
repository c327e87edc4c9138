"""`kfashion models upgrade`: models exported with the old colour histogram are rewritten to the faster graph
with the same outputs, and the manifest follows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from services.search.service import index_versions
from shared.manifest import ModelEntry, check_files, load_manifest, sha256_of, write_manifest
from shared.runtime import onnx_session
from training import graph_upgrade
from training.features import export_onnx
from training.graph_upgrade import DistanceHistogram, rewrite_histogram

MODELS = Path(__file__).parents[2] / "models"


class _Pooled(torch.nn.Module):
    """The old histogram inside a model, with something after it, as the heads are in the exported models."""

    def __init__(self, histogram: torch.nn.Module):
        super().__init__()
        self.pooled = torch.nn.Module()
        self.pooled.histogram = histogram
        self.head = torch.nn.Linear(250, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled.histogram(x))


@pytest.fixture(scope="module")
def old_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("old") / "old.onnx"
    export_onnx(_Pooled(DistanceHistogram()), torch.zeros(1, 3, 224, 224), path, ["out"])
    return path


def _crops() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((3, 3, 224, 224)).astype(np.float32)


def test_the_distance_chain_becomes_a_product_with_the_same_outputs(old_model: Path) -> None:
    model = onnx.load(str(old_model))
    ops = Counter(n.op_type for n in model.graph.node)
    assert rewrite_histogram(model)
    onnx.checker.check_model(model)
    now = Counter(n.op_type for n in model.graph.node)
    assert now["MatMul"] == ops["MatMul"] + 1 and now["Sub"] == ops["Sub"] - 1
    assert not {"Pow", "ReduceSum", "Neg"} & set(now)  # the distances went
    before = onnx_session(old_model).run(None, {"image": _crops()})[0]
    after = onnx_session(model.SerializeToString()).run(None, {"image": _crops()})[0]
    np.testing.assert_allclose(after, before, atol=1e-5, rtol=0)
    assert not rewrite_histogram(model)  # a rewritten graph is left alone
    assert not any(list(i.dims) == [1, 1, 125, 3] for i in model.graph.initializer)  # and the palette


def _folder_with_an_old_attribute_model(old_model: Path, tmp_path: Path) -> tuple[Path, ModelEntry]:
    """A copy of the committed models whose attribute entry is an old-form model."""
    folder = tmp_path / "models"
    shutil.copytree(MODELS, folder)
    manifest = load_manifest(folder)
    entry = manifest.models["attributes"]
    shutil.copy(old_model, folder / entry.file)
    entry.sha256, entry.bytes = sha256_of(folder / entry.file), (folder / entry.file).stat().st_size
    entry.verification.pop("rewritten_from", None)
    write_manifest(folder, manifest)
    return folder, entry


def test_models_upgrade_rewrites_old_models_and_keeps_the_catalog_current(
    old_model: Path, tmp_path: Path
) -> None:
    folder, entry = _folder_with_an_old_attribute_model(old_model, tmp_path)
    manifest = load_manifest(folder)
    versions = index_versions(folder)
    untouched = {n: (folder / e.file).read_bytes() for n, e in manifest.models.items() if n != "attributes"}

    def upgrade() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kfashion", "models", "upgrade", "--models", str(folder)],
            capture_output=True,
            text=True,
            timeout=300,
        )

    result = upgrade()
    assert result.returncode == 0, result.stderr
    assert "attributes: colour histogram rewritten" in result.stdout
    upgraded = load_manifest(folder)
    assert check_files(folder, upgraded) == dict.fromkeys(upgraded.models, "ok")
    rewritten = upgraded.models["attributes"]
    assert rewritten.sha256 != entry.sha256
    assert rewritten.verification["rewritten_from"]["sha256"] == entry.sha256
    assert rewritten.verification["rewritten_from"]["max_output_difference"] < 1e-4
    # Same outputs, so the catalog's search vectors stay current: no retagging after an upgrade.
    assert index_versions(folder) == versions
    for name, data in untouched.items():  # models already in the new form are not rewritten
        assert (folder / manifest.models[name].file).read_bytes() == data, name
    again = upgrade()
    assert again.returncode == 0 and "attributes: already current" in again.stdout


def test_a_rewrite_that_moves_an_output_is_refused_and_nothing_changes(
    old_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = _folder_with_an_old_attribute_model(old_model, tmp_path)
    files = {path.name: path.read_bytes() for path in folder.iterdir()}
    monkeypatch.setattr(graph_upgrade, "MAX_DIFFERENCE", -1.0)  # any difference at all is too much
    upgrades = {u.model: u.status for u in graph_upgrade.upgrade_models(folder)}
    assert upgrades == {"detector": "current", "attributes": "refused", "style": "current"}
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == files
