"""Inference latency of the installed ONNX models with ONNX Runtime on the CPU.

    .venv/bin/python -m bench.model_latency [--models models] [--repeats 30]

Per model: median and 95th-percentile milliseconds for a batch of 1 and per image in a batch of 8, on
2 intra-op threads (this project's machines have 2 cores).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from shared.manifest import load_manifest
from shared.runtime import onnx_session


def _time(session, batch: np.ndarray, repeats: int) -> np.ndarray:
    session.run(None, {"image": batch})  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, {"image": batch})
        times.append((time.perf_counter() - started) * 1000)
    return np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    manifest = load_manifest(args.models)
    rng = np.random.default_rng(0)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, 2 threads")
    for name, entry in manifest.models.items():
        session = onnx_session(args.models / entry.file, threads=2)
        size = int(entry.inputs[0].shape[2])
        one = _time(session, rng.standard_normal((1, 3, size, size)).astype(np.float32), args.repeats)
        eight = (
            _time(session, rng.standard_normal((8, 3, size, size)).astype(np.float32), args.repeats // 3) / 8
        )
        print(
            f"{name:<11} {entry.storage:<5} {size}x{size}  batch 1: p50 {np.median(one):6.1f} ms, "
            f"p95 {np.percentile(one, 95):6.1f} ms   batch 8: {np.median(eight):6.1f} ms per image"
        )


if __name__ == "__main__":
    main()
