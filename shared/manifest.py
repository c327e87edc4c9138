"""The manifest of a models folder: what each ONNX file is, how to feed it, how good it is.

Written by `kfashion export`, read by the services and `kfashion models list`. A user points the
services at their own models (trained on the real K-Fashion) with KFASHION_MODELS_DIR.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

MANIFEST_NAME = "manifest.json"
MODEL_NAMES = ("detector", "attributes", "style")


class TensorSpec(BaseModel):
    name: str
    shape: list[int | str]  # "batch" for the dynamic dimension
    dtype: str = "float32"


class ModelEntry(BaseModel):
    name: str
    version: str
    file: str
    sha256: str
    bytes: int = Field(gt=0)
    quantized: bool = False  # int8 weights
    storage: str = "fp32"  # fp32, fp16 (weights stored half, computed in fp32) or int8
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    preprocessing: dict[str, Any]
    postprocessing: dict[str, Any] = {}
    labels: dict[str, list[str]] = {}  # output name -> Korean label names in id order
    taxonomy_version: str
    metrics: dict[str, Any] = {}
    training_data: dict[str, Any] = {}
    verification: dict[str, Any] = {}


class Manifest(BaseModel):
    format: int = 1
    created: str
    taxonomy_version: str
    models: dict[str, ModelEntry]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def outputs_sha256(entry: ModelEntry) -> str:
    """The sha256 of the file whose outputs this model gives: its own, or for a model that `kfashion models
    upgrade` rewrote (a faster graph, the same outputs) the file it was rewritten from. What is derived from a
    model's outputs (the catalog's search vectors) is keyed by this, so a rewrite leaves it current."""
    return entry.verification.get("rewritten_from", {}).get("sha256", entry.sha256)


def load_manifest(models_dir: str | Path) -> Manifest:
    path = Path(models_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no {MANIFEST_NAME} in {Path(models_dir).resolve()}: run `kfashion export` or "
            "`kfashion models bootstrap`, or set KFASHION_MODELS_DIR"
        )
    return Manifest.model_validate_json(path.read_text(encoding="utf-8"))


def write_manifest(models_dir: str | Path, manifest: Manifest) -> None:
    """Writes the folder's manifest whole: a reader sees the old one or the new one, never half of it."""
    written = Path(models_dir) / f"{MANIFEST_NAME}.writing"
    written.write_text(manifest.model_dump_json(indent=1) + "\n", encoding="utf-8")
    written.replace(Path(models_dir) / MANIFEST_NAME)


def check_files(models_dir: str | Path, manifest: Manifest) -> dict[str, str]:
    """Per model: "ok", "missing" or "sha256 mismatch"."""
    status = {}
    for name, entry in manifest.models.items():
        path = Path(models_dir) / entry.file
        if not path.is_file():
            status[name] = "missing"
        elif sha256_of(path) != entry.sha256:
            status[name] = "sha256 mismatch"
        else:
            status[name] = "ok"
    return status
