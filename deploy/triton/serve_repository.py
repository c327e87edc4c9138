"""Serve a Triton model repository (written by `kfashion models triton-repo`) with the Triton server that
PyTriton bundles, on this machine's CPU: each model's ONNX file runs in ONNX Runtime inside Triton's Python
backend, bound with the repository's own names, shapes, max batch size and dynamic batching. It stands in
for a production Triton (which would run the same repository with its ONNX Runtime backend) in the tests
and benchmarks.

Runs in its own environment (.venv-triton: PyTriton needs numpy<2):
    LD_LIBRARY_PATH=$(python3.11 -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))') \
    .venv-triton/bin/python deploy/triton/serve_repository.py REPO --http-port 8000 --grpc-port 8001
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
from google.protobuf import text_format
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig
from tritonclient.grpc import model_config_pb2

DTYPES = {model_config_pb2.TYPE_FP32: np.float32, model_config_pb2.TYPE_FP16: np.float16}


def read_config(folder: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def infer_function(session: ort.InferenceSession, input_name: str, output_names: list[str]):
    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        results = session.run(output_names, {input_name: inputs[input_name].astype(np.float32)})
        return dict(zip(output_names, results, strict=True))

    return infer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("repository", type=Path)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads per model; 0: all cores")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    triton_config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.http_port,
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
    )
    with Triton(config=triton_config) as triton:
        for folder in sorted(p for p in args.repository.iterdir() if (p / "config.pbtxt").is_file()):
            config = read_config(folder)
            version = max(int(v.name) for v in folder.iterdir() if v.name.isdigit())
            options = ort.SessionOptions()
            if args.threads:
                options.intra_op_num_threads = args.threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(folder / str(version) / "model.onnx"), options)
            inputs = [
                Tensor(name=t.name, dtype=DTYPES[t.data_type], shape=tuple(t.dims)) for t in config.input
            ]
            outputs = [
                Tensor(name=t.name, dtype=DTYPES[t.data_type], shape=tuple(t.dims)) for t in config.output
            ]
            batcher = DynamicBatcher(
                max_queue_delay_microseconds=config.dynamic_batching.max_queue_delay_microseconds,
                preferred_batch_size=list(config.dynamic_batching.preferred_batch_size) or None,
            )
            triton.bind(
                model_name=config.name,
                infer_func=infer_function(session, config.input[0].name, [t.name for t in config.output]),
                inputs=inputs,
                outputs=outputs,
                model_version=version,
                config=ModelConfig(max_batch_size=config.max_batch_size, batcher=batcher),
                strict=True,
            )
        triton.serve()


if __name__ == "__main__":
    main()
