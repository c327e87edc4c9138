"""A Triton model repository from a models folder (`kfashion models triton-repo OUT`).

One folder per model: `config.pbtxt` (ONNX Runtime backend, the manifest's input and output names and shapes,
max batch size, dynamic batching, instance groups, version policy) and `1/model.onnx`. The services address
the models by the same names through `KFASHION_RUNTIME__BACKEND=triton`, and read the manifest for
preprocessing, so the repository and the models folder travel together.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shared.manifest import Manifest, TensorSpec, load_manifest

DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32"}
Variant = Literal["gpu", "cpu"]


@dataclass(frozen=True)
class Batching:
    max_batch_size: int = 32
    preferred: tuple[int, ...] = (8, 16, 32)
    queue_delay_us: int = 2_000  # how long a request may wait for others to fill a batch
    instances: int = 1  # per GPU (gpu) or in all (cpu)


def _dims(spec: TensorSpec) -> str:
    """Dimensions after the batch one; other named (dynamic) dimensions are -1."""
    if spec.shape[0] != "batch":
        raise ValueError(f"{spec.name}: the first dimension must be the batch")
    dims = [-1 if isinstance(d, str) else int(d) for d in spec.shape[1:]]
    return ", ".join(str(d) for d in dims)


def _tensors(kind: str, specs: list[TensorSpec]) -> str:
    blocks = []
    for spec in specs:
        fields = f'name: "{spec.name}"\n    data_type: {DTYPES[spec.dtype]}\n    dims: [ {_dims(spec)} ]'
        blocks.append(f"  {{\n    {fields}\n  }}")
    return f"{kind} [\n" + ",\n".join(blocks) + "\n]\n"


def model_config(name: str, manifest: Manifest, variant: Variant, batching: Batching) -> str:
    """The config.pbtxt of one model (protobuf text format of Triton's ModelConfig)."""
    entry = manifest.models[name]
    kind = "KIND_GPU" if variant == "gpu" else "KIND_CPU"
    preferred = ", ".join(str(b) for b in batching.preferred if b <= batching.max_batch_size)
    return (
        f'name: "{name}"\n'
        'platform: "onnxruntime_onnx"\n'
        f"max_batch_size: {batching.max_batch_size}\n"
        "version_policy: { latest: { num_versions: 1 } }\n"
        + _tensors("input", entry.inputs)
        + _tensors("output", entry.outputs)
        + "dynamic_batching {\n"
        f"  preferred_batch_size: [ {preferred} ]\n"
        f"  max_queue_delay_microseconds: {batching.queue_delay_us}\n"
        "}\n"
        f"instance_group [\n  {{\n    count: {batching.instances}\n    kind: {kind}\n  }}\n]\n"
        f'parameters {{ key: "kfashion_version" value: {{ string_value: "{entry.version}" }} }}\n'
        f'parameters {{ key: "kfashion_sha256" value: {{ string_value: "{entry.sha256}" }} }}\n'
    )


def write_repository(
    models_dir: Path, out: Path, variant: Variant = "gpu", batching: Batching | None = None
) -> list[Path]:
    """Write (or replace) the repository; returns the config files written."""
    manifest = load_manifest(models_dir)
    batching = batching or Batching()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entry in manifest.models.items():
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)
        (folder / "1").mkdir(parents=True)
        shutil.copyfile(Path(models_dir) / entry.file, folder / "1" / "model.onnx")
        config = folder / "config.pbtxt"
        config.write_text(model_config(name, manifest, variant, batching), encoding="utf-8")
        written.append(config)
    return written
