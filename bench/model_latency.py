"""Inference latency of the installed ONNX models with ONNX Runtime on the CPU.

    .venv/bin/python -m bench.model_latency [--models models] [--repeats 30]

Per model: median and 95th-percentile milliseconds for a batch of 1 and per image in a batch of 8, on
2 intra-op threads (this project's machines have 2 cores). For a detector with garment masks (`parts`), also
the shared decoder's milliseconds per image with and without redrawing the boxes from them, on generated
pictures (`--pictures`, 40 by default).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from shared.detection import decode_detections, detector_geometry
from shared.manifest import ModelEntry, load_manifest
from shared.preprocess import letterbox, to_tensor
from shared.runtime import onnx_session
from training.synth.render import render_sample


def _time(session, batch: np.ndarray, repeats: int) -> np.ndarray:
    session.run(None, {"image": batch})  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, {"image": batch})
        times.append((time.perf_counter() - started) * 1000)
    return np.array(times)


def _decoding(session, entry: ModelEntry, pictures: int) -> tuple[float, float, float]:
    """Decoder milliseconds per picture without and with the masks, and detections per picture."""
    size, stride = detector_geometry(entry)
    post = entry.postprocessing
    plain, redrawn, found = [], [], 0
    for index in range(pictures):
        pixels = render_sample(index, 4242).pixels
        model_input, placement = letterbox(pixels, size)
        peaks, box_size, offset, parts = session.run(
            ["peaks", "size", "offset", "parts"], {"image": to_tensor(model_input[None])}
        )
        arguments = (peaks[0], box_size[0], offset[0], stride, placement, pixels.shape[1], pixels.shape[0])
        options = {"score_threshold": float(post["score_threshold"]), "nms_iou": float(post["nms_iou"])}
        for times, masks in ((plain, None), (redrawn, parts[0])):
            started = time.perf_counter()
            detections = decode_detections(*arguments, **options, parts=masks)
            times.append((time.perf_counter() - started) * 1000)
        found += len(detections)
    return float(np.median(plain)), float(np.median(redrawn)), found / pictures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--pictures", type=int, default=40)
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
        if "parts" in {output.name for output in entry.outputs}:
            plain, redrawn, found = _decoding(session, entry, args.pictures)
            print(
                f"{'':<11} decoding p50: {plain:.2f} ms, boxes drawn again from the masks {redrawn:.2f}"
                f" ms per picture ({found:.2f} detections each, {args.pictures} generated pictures)"
            )


if __name__ == "__main__":
    main()
