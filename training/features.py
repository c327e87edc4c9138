"""Backbone features of every training image, computed once with ONNX Runtime and cached in memory.

The backbone is frozen, so its outputs never change during training: computing them once (ONNX
Runtime runs the backbone several times faster than torch eager on a CPU) leaves only the small
heads to train. Training images also get a mirrored copy (the one augmentation that keeps labels).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.imaging import decode_image
from shared.preprocess import CROP_SIZE, DETECTOR_SIZE, Letterbox, crop_box, letterbox, to_tensor, union_box
from shared.runtime import onnx_session
from shared.settings import ImageLimits
from training.backbone import Backbone, PooledBackbone, PyramidBackbone
from training.data import Sample, region_index

BATCH = 16


def export_onnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    output_names: list[str],
    dynamic_outputs: dict | None = None,
) -> None:
    """One ONNX file (no external data), dynamic batch, opset 17."""
    axes = {"image": {0: "batch"}, **{name: {0: "batch"} for name in output_names}}
    axes.update(dynamic_outputs or {})
    with warnings.catch_warnings():
        # The backbone's "same" padding slices make the exporter note it cannot fold them; harmless.
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.onnx")
        torch.onnx.export(
            module.eval(),
            (example,),
            str(path),
            input_names=["image"],
            output_names=output_names,
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
            external_data=False,
        )


@dataclass
class DetectorFeatures:
    maps: list[list[np.ndarray]] = field(default_factory=lambda: [[], [], []])  # c3, c4, c5 chunks (float16)
    boxes: list[np.ndarray] = field(default_factory=list)  # per row: (k, 4) corner boxes in input pixels
    regions: list[np.ndarray] = field(default_factory=list)  # per row: (k,) region index
    sample: list[int] = field(default_factory=list)
    flipped: list[bool] = field(default_factory=list)
    placement: list[Letterbox] = field(default_factory=list)

    def finish(self) -> None:
        self.maps = [[np.concatenate(chunks)] if chunks else [] for chunks in self.maps]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.maps[0][0], self.maps[1][0], self.maps[2][0]


@dataclass
class PooledFeatures:
    chunks: list[np.ndarray] = field(default_factory=list)
    sample: list[int] = field(default_factory=list)
    item: list[int] = field(default_factory=list)  # index in record.items (-1 for whole-person crops)
    region: list[int] = field(default_factory=list)
    flipped: list[bool] = field(default_factory=list)
    values: np.ndarray | None = None

    def finish(self) -> None:
        self.values = np.concatenate(self.chunks) if self.chunks else np.zeros((0, 0), np.float32)
        self.chunks = []


@dataclass
class FeatureCache:
    detector: DetectorFeatures
    crops: PooledFeatures
    person: PooledFeatures


class _Batcher:
    """Collects inputs and runs the ONNX backbone when a batch is full."""

    def __init__(self, session: Any, sink: Callable[[list[np.ndarray]], None]):
        self.session, self.sink, self.pending = session, sink, []

    def add(self, pixels: np.ndarray) -> None:
        self.pending.append(pixels)
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.sink(self.session.run(None, {"image": to_tensor(np.stack(self.pending))}))
            self.pending = []


def decoded_images(samples: list[Sample], workers: int, chunk: int = 32) -> Iterator[np.ndarray]:
    """The samples' pixels in order, decoded by `workers` threads one chunk ahead of the consumer (OpenCV
    decodes without the GIL), so a fast backbone (a GPU) does not wait for JPEG decoding."""
    limits = ImageLimits()

    def decode(sample: Sample) -> np.ndarray:
        return decode_image(sample.image_path.read_bytes(), limits, str(sample.image_path)).pixels

    with ThreadPoolExecutor(max(1, workers)) as pool:
        ahead: list = []
        for start in range(0, len(samples), chunk):
            submitted = [pool.submit(decode, s) for s in samples[start : start + chunk]]
            for future in ahead:
                yield future.result()
            ahead = submitted
        for future in ahead:
            yield future.result()


def compute_features(
    samples: list[Sample],
    backbone: Backbone,
    want: set[str],
    mirror: set[str],
    on_progress: Callable[[int], None] | None = None,
    device: str = "cpu",
    workers: int = 4,
) -> FeatureCache:
    """Backbone features for the detector (pyramid maps), item crops and person crops of every sample;
    training images of the models named in `mirror` also get a mirrored copy. The backbone runs in ONNX
    Runtime on `device` (cpu or cuda)."""
    cache = FeatureCache(DetectorFeatures(), PooledFeatures(), PooledFeatures())
    with tempfile.TemporaryDirectory() as tmp:
        pyramid_path, pooled_path = Path(tmp) / "pyramid.onnx", Path(tmp) / "pooled.onnx"
        export_onnx(
            PyramidBackbone(backbone),
            torch.zeros(1, 3, DETECTOR_SIZE, DETECTOR_SIZE),
            pyramid_path,
            ["c3", "c4", "c5"],
        )
        export_onnx(
            PooledBackbone(backbone), torch.zeros(1, 3, CROP_SIZE, CROP_SIZE), pooled_path, ["pooled"]
        )
        pyramid = _Batcher(
            onnx_session(pyramid_path, device=device),
            lambda out: [cache.detector.maps[k].append(out[k].astype(np.float16)) for k in range(3)],
        )
        pooled = onnx_session(pooled_path, device=device)
        crops = _Batcher(pooled, lambda out: cache.crops.chunks.append(out[0]))
        person = _Batcher(pooled, lambda out: cache.person.chunks.append(out[0]))
        for index, (sample, pixels) in enumerate(zip(samples, decoded_images(samples, workers), strict=True)):
            mirrors = (False, True) if mirror and sample.split == "train" else (False,)
            for flipped in mirrors:
                image = pixels[:, ::-1] if flipped else pixels
                width = image.shape[1]
                items = [(k, it) for k, it in enumerate(sample.record.items) if it.box]
                boxes = [_mirror(it.box, width) if flipped else it.box for _, it in items]
                if "detector" in want and (not flipped or "detector" in mirror):
                    model_input, placement = letterbox(image, DETECTOR_SIZE)
                    corners = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], np.float32).reshape(
                        -1, 4
                    )
                    cache.detector.boxes.append(placement.to_input(corners))
                    cache.detector.regions.append(
                        np.array([region_index(it.region) for _, it in items], np.int64)
                    )
                    cache.detector.sample.append(index)
                    cache.detector.flipped.append(flipped)
                    cache.detector.placement.append(placement)
                    pyramid.add(model_input)
                if "attributes" in want and (not flipped or "attributes" in mirror):
                    for (k, item), box in zip(items, boxes, strict=True):
                        cache.crops.sample.append(index)
                        cache.crops.item.append(k)
                        cache.crops.region.append(region_index(item.region))
                        cache.crops.flipped.append(flipped)
                        crops.add(crop_box(image, box))
                if "style" in want and (not flipped or "style" in mirror):
                    cache.person.sample.append(index)
                    cache.person.item.append(-1)
                    cache.person.region.append(-1)
                    cache.person.flipped.append(flipped)
                    person.add(crop_box(image, union_box(boxes, image.shape[1], image.shape[0])))
            if on_progress:
                on_progress(1)
        for batcher in (pyramid, crops, person):
            batcher.flush()
    cache.detector.finish()
    cache.crops.finish()
    cache.person.finish()
    return cache


def _mirror(box: tuple[float, float, float, float], width: int) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return (width - x - w, y, w, h)
