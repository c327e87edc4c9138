"""Models through a real Triton server against in-process ONNX Runtime, measured in one run: latency per
call and inputs per second at batch 1, 8 and 32, over HTTP and gRPC.

    .venv/bin/python -m bench.triton [--seconds 3]

Needs .venv-triton (`scripts/setup.sh test`): PyTriton's Triton 2.51 serving the repository that
`kfashion models triton-repo` writes, on this machine's CPU, on loopback. Each configuration runs for about
`--seconds` after a warm-up; one call at a time.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from shared.runtime import ModelRuntime, OnnxRuntimeBackend, TritonBackend
from shared.settings import RuntimeSettings
from tests.servers import ROOT
from tests.triton_server import TritonServer, write_repository

MODELS = ROOT / "models"
SHAPES = {"detector": (3, 320, 320), "attributes": (3, 224, 224), "style": (3, 224, 224)}
BATCHES = (1, 8, 32)


def _measure(runtime: ModelRuntime, model: str, batch: np.ndarray, seconds: float) -> tuple[float, float]:
    """(p50 ms per call, inputs per second)."""
    for _ in range(2):
        runtime.infer(model, batch)
    times = []
    began = time.perf_counter()
    while time.perf_counter() - began < seconds or len(times) < 3:
        started = time.perf_counter()
        runtime.infer(model, batch)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000), len(batch) * len(times) / sum(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = TritonServer(write_repository(Path(tmp) / "repository"), Path(tmp) / "triton.log").start()
        try:
            runtimes: dict[str, ModelRuntime] = {
                "onnxruntime": OnnxRuntimeBackend(MODELS, RuntimeSettings()),
                "triton http": TritonBackend(
                    MODELS, RuntimeSettings(backend="triton", triton_url=server.http_url)
                ),
                "triton grpc": TritonBackend(
                    MODELS,
                    RuntimeSettings(backend="triton", triton_url=server.grpc_url, triton_protocol="grpc"),
                ),
            }
            for runtime in runtimes.values():
                runtime.load(list(SHAPES))
            rows = []
            rng = np.random.default_rng(0)
            for model, shape in SHAPES.items():
                for size in BATCHES:
                    batch = rng.normal(size=(size, *shape)).astype(np.float32)
                    rows.append(
                        (
                            model,
                            size,
                            {n: _measure(r, model, batch, args.seconds) for n, r in runtimes.items()},
                        )
                    )
            for runtime in runtimes.values():
                if isinstance(runtime, TritonBackend):
                    runtime.close()
        finally:
            server.stop()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; one call at a time")
    print(
        "| model | batch | in-process p50 ms | Triton HTTP p50 ms | Triton gRPC p50 ms "
        "| HTTP / in-process throughput | gRPC / in-process throughput |"
    )
    print("|---|---|---|---|---|---|---|")
    for model, size, r in rows:
        local, http, grpc = r["onnxruntime"], r["triton http"], r["triton grpc"]
        print(
            f"| {model} | {size} | {local[0]:.1f} | {http[0]:.1f} | {grpc[0]:.1f} | "
            f"x{http[1] / local[1]:.2f} | x{grpc[1] / local[1]:.2f} |"
        )


if __name__ == "__main__":
    main()
