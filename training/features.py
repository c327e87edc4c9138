"""Backbone features of every training image, computed once with ONNX Runtime and cached.

The backbone is frozen, so its outputs never change during training: computing them once (ONNX
Runtime runs the backbone several times faster than torch eager on a CPU) leaves only the small
heads to train. Training images also get a mirrored copy (the one augmentation that keeps labels).

The cache lives in memory, or on disk as memory-mapped .npy files when it would not fit (about 354 kB
per image: the full K-Fashion's 1.2 M images need about 425 GB of disk instead of memory). Both
hold the same numbers, so a run trains identically either way.
"""

from __future__ import annotations

import os
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
from shared.preprocess import (
    CROP_ASPECT_POWER,
    CROP_SIZE,
    DETECTOR_SIZE,
    Letterbox,
    crop_box,
    letterbox,
    to_tensor,
    union_box,
)
from shared.runtime import onnx_session
from shared.settings import ImageLimits
from training.backbone import (
    C3_CHANNELS,
    C4_CHANNELS,
    C5_CHANNELS,
    POOLED_DIM,
    Backbone,
    PooledBackbone,
    PyramidBackbone,
)
from training.data import Sample, region_index

BATCH = 8  # rows per ONNX Runtime call: 4-8 ran the feature stage 8% faster than 16 or 32 on 2 cores
FEATURE_STORES = ("auto", "memory", "disk")
MEMORY_SHARE = 0.5  # "auto" keeps the cache in memory while it needs at most this share of the free memory
PYRAMID_DTYPE, POOLED_DTYPE = np.float16, np.float32


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


class RowStore:
    """One feature array, written row by row in order: in memory, or in a .npy file on disk read back as a
    memory map (the operating system pages rows in and out, so memory stays bounded). Allocated at the
    first write, when the shape of a row is known."""

    def __init__(self, rows: int, dtype: type, path: Path | None):
        self.rows, self.dtype, self.path = rows, dtype, path
        self.values: np.ndarray = np.zeros((0, 0), dtype)
        self.filled = 0

    def write(self, chunk: np.ndarray) -> None:
        if self.filled == 0:
            shape = (self.rows, *chunk.shape[1:])
            if self.path is None:
                self.values = np.empty(shape, self.dtype)
            else:
                self.values = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=shape)
        self.values[self.filled : self.filled + len(chunk)] = chunk
        self.filled += len(chunk)

    def finish(self) -> None:
        if self.filled != self.rows:
            raise RuntimeError(f"feature store expected {self.rows} rows, got {self.filled}")
        if isinstance(self.values, np.memmap):
            self.values.flush()


@dataclass
class DetectorFeatures:
    maps: list[RowStore]  # c3, c4, c5 (float16)
    boxes: list[np.ndarray] = field(default_factory=list)  # per row: (k, 4) corner boxes in input pixels
    regions: list[np.ndarray] = field(default_factory=list)  # per row: (k,) region index
    sample: list[int] = field(default_factory=list)
    flipped: list[bool] = field(default_factory=list)
    placement: list[Letterbox] = field(default_factory=list)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.maps[0].values, self.maps[1].values, self.maps[2].values


@dataclass
class PooledFeatures:
    store: RowStore
    sample: list[int] = field(default_factory=list)
    item: list[int] = field(default_factory=list)  # index in record.items (-1 for whole-person crops)
    region: list[int] = field(default_factory=list)
    flipped: list[bool] = field(default_factory=list)

    @property
    def values(self) -> np.ndarray:
        return self.store.values


@dataclass
class FeatureCache:
    detector: DetectorFeatures
    crops: PooledFeatures
    person: PooledFeatures


@dataclass(frozen=True)
class FeaturePlan:
    """How many rows each model's cache gets, what they weigh, and where they go."""

    want: frozenset[str]  # models whose features are computed
    mirror: frozenset[str]  # models whose training images also get a mirrored copy
    detector_rows: int
    crop_rows: int
    person_rows: int
    bytes: int
    store: str  # memory or disk

    def to_dict(self) -> dict:
        return {**self.__dict__, "want": sorted(self.want), "mirror": sorted(self.mirror)}


def plan_features(
    samples: list[Sample], want: set[str], mirror: set[str], store: str = "auto"
) -> FeaturePlan:
    """Row counts from the labels alone (before any image is read) and the store: `auto` chooses memory
    while the cache needs at most MEMORY_SHARE of the memory available now, else disk."""
    if store not in FEATURE_STORES:
        raise ValueError(f"unknown feature store {store!r}: {', '.join(FEATURE_STORES)}")
    rows = dict.fromkeys(("detector", "attributes", "style"), 0)
    for sample in samples:
        boxed = sum(1 for item in sample.record.items if item.box)
        for model, per_copy in (("detector", 1), ("attributes", boxed), ("style", 1)):
            if model in want:
                copies = 2 if model in mirror and sample.split == "train" else 1
                rows[model] += copies * per_copy
    grid = DETECTOR_SIZE // 8
    pyramid_row = C3_CHANNELS * grid**2 + C4_CHANNELS * (grid // 2) ** 2 + C5_CHANNELS * (grid // 4) ** 2
    size = (
        rows["detector"] * pyramid_row * np.dtype(PYRAMID_DTYPE).itemsize
        + (rows["attributes"] + rows["style"]) * POOLED_DIM * np.dtype(POOLED_DTYPE).itemsize
    )
    if store == "auto":
        store = "memory" if size <= MEMORY_SHARE * available_memory() else "disk"
    return FeaturePlan(
        frozenset(want),
        frozenset(mirror),
        rows["detector"],
        rows["attributes"],
        rows["style"],
        int(size),
        store,
    )


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (Linux's MemAvailable; else all physical memory)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class Batcher:
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
    plan: FeaturePlan,
    folder: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
    device: str = "cpu",
    workers: int = 4,
) -> FeatureCache:
    """Backbone features for the detector (pyramid maps), item crops and person crops of every sample, for
    the models the plan wants; training images of the models it mirrors also get a mirrored copy. The
    backbone runs in ONNX Runtime on `device` (cpu or cuda). A disk plan writes its files into `folder`
    (the caller removes it)."""
    if plan.store == "disk" and folder is None:
        raise ValueError("a disk feature store needs a folder")
    want, mirror = plan.want, plan.mirror

    def store(name: str, rows: int, dtype: type) -> RowStore:
        return RowStore(rows, dtype, folder / f"{name}.npy" if plan.store == "disk" and folder else None)

    cache = FeatureCache(
        DetectorFeatures([store(f"c{k}", plan.detector_rows, PYRAMID_DTYPE) for k in (3, 4, 5)]),
        PooledFeatures(store("crops", plan.crop_rows, POOLED_DTYPE)),
        PooledFeatures(store("person", plan.person_rows, POOLED_DTYPE)),
    )
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
        pyramid = Batcher(
            onnx_session(pyramid_path, device=device),
            lambda out: [cache.detector.maps[k].write(out[k]) for k in range(3)],
        )
        pooled = onnx_session(pooled_path, device=device)
        crops = Batcher(pooled, lambda out: cache.crops.store.write(out[0]))
        person = Batcher(pooled, lambda out: cache.person.store.write(out[0]))
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
                        crops.add(crop_box(image, box, CROP_ASPECT_POWER["item_crop"]))
                if "style" in want and (not flipped or "style" in mirror):
                    cache.person.sample.append(index)
                    cache.person.item.append(-1)
                    cache.person.region.append(-1)
                    cache.person.flipped.append(flipped)
                    person.add(
                        crop_box(
                            image,
                            union_box(boxes, image.shape[1], image.shape[0]),
                            CROP_ASPECT_POWER["person_crop"],
                        )
                    )
            if on_progress:
                on_progress(1)
        for batcher in (pyramid, crops, person):
            batcher.flush()
    for row_store in (*cache.detector.maps, cache.crops.store, cache.person.store):
        row_store.finish()
    return cache


def _mirror(box: tuple[float, float, float, float], width: int) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return (width - x - w, y, w, h)
