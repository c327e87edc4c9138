"""Evaluating exported ONNX models end to end on a K-Fashion-format dataset (generated or real).

The detector sees whole images; the attribute model sees crops of the labelled boxes and the style
model the labelled person, so each model is measured on its own job. The same metric functions as in
training are used, so the figures compare.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from shared.detection import decode_detections
from shared.heads import head_probabilities, sigmoid
from shared.imaging import decode_image
from shared.manifest import Manifest
from shared.preprocess import crop_aspect_power, crop_box, letterbox, to_tensor, union_box
from shared.runtime import onnx_session
from shared.settings import ImageLimits
from shared.taxonomy import REGIONS, STYLE
from training.attributes import build_targets
from training.data import LAYERED_REGIONS, Sample, retrieval_key, shows_outer, style_target
from training.evaluate import (
    SUBSET_ROWS,
    attribute_metrics,
    detection_arrays,
    detection_truth,
    evenly_spaced,
)
from training.features import Batcher
from training.metrics import (
    classification_metrics,
    detection_metrics,
    multilabel_metrics,
    retrieval_metrics,
)


def aspect_powers(manifest: Manifest) -> dict[str, float]:
    """The crops' aspect power of each model of a manifest, as evaluate_onnx takes them."""
    return {name: crop_aspect_power(entry.preprocessing) for name, entry in manifest.models.items()}


def evaluate_onnx(
    files: dict[str, Path],
    samples: list[Sample],
    geometry: tuple[int, int] | None,
    aspect_power: dict[str, float],
    gallery: list[Sample] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Metrics of the given model files (keys: detector, attributes, style) on `samples`. Retrieval
    searches `gallery`'s items (the training split), or the samples' own items leave-one-out. Crops go
    through the models in batches as they are cut and only the outputs are kept, so memory grows with the
    number of items, not with their pixels. `layering` splits the figures of tops and onepieces by whether
    an outer is worn over them (`_detection_by_outer`, `_attributes_by_outer`). `on_progress` counts the
    samples' images, then the gallery's. As the manifest says (`shared.detection.detector_geometry`,
    `aspect_powers`): `geometry`, the detector's input size and stride (None without a detector), and
    `aspect_power`, how each crop model's crops are made."""
    sessions = {name: onnx_session(path) for name, path in files.items()}
    if "detector" in sessions:
        if geometry is None:
            raise ValueError("evaluating a detector needs its input size and stride (detector_geometry)")
        detector_size, stride = geometry
    limits = ImageLimits()
    truth, predicted, image_outer = [], [], []  # image_outer: the image shows an outer
    crop_meta, crop_outer, person_targets = [], [], []  # crop_outer: the crop's image shows an outer
    attribute_outputs: list[list[np.ndarray]] = []
    style_outputs: list[list[np.ndarray]] = []
    crops = Batcher(sessions["attributes"], attribute_outputs.append) if "attributes" in sessions else None
    persons = Batcher(sessions["style"], style_outputs.append) if "style" in sessions else None
    for sample in samples:
        pixels = decode_image(sample.image_path.read_bytes(), limits, str(sample.image_path)).pixels
        items = [it for it in sample.record.items if it.box]
        outer = shows_outer(items)
        if "detector" in sessions:
            model_input, placement = letterbox(pixels, detector_size)
            peaks, size, offset = sessions["detector"].run(
                ["peaks", "size", "offset"], {"image": to_tensor(model_input[None])}
            )
            detections = decode_detections(
                peaks[0],
                size[0],
                offset[0],
                stride,
                placement,
                pixels.shape[1],
                pixels.shape[0],
                score_threshold=0.05,
            )
            truth.append(detection_truth(items))
            predicted.append(detection_arrays(detections))
            image_outer.append(outer)
        if crops:
            for item in items:
                crops.add(crop_box(pixels, item.box, aspect_power["attributes"]))
                crop_meta.append(item)
                crop_outer.append(outer)
        if persons and (target := style_target(sample.record)) is not None:
            persons.add(
                crop_box(
                    pixels,
                    union_box([it.box for it in items], pixels.shape[1], pixels.shape[0]),
                    aspect_power["style"],
                )
            )
            person_targets.append(target)
        if on_progress:
            on_progress(1)
    result: dict = {}
    layering: dict = {}
    if "detector" in sessions:
        result["detector"] = detection_metrics(truth, predicted, REGIONS)
        layering["detector"] = _detection_by_outer(truth, predicted, np.array(image_outer, bool))
    if crops and crop_meta:
        crops.flush()
        names = [o.name for o in sessions["attributes"].get_outputs()]
        logits = dict(zip(names, _joined(attribute_outputs), strict=True))
        targets = build_targets(crop_meta)
        probabilities = head_probabilities(logits, targets.region)
        result["attributes"] = attribute_metrics(probabilities, targets, np.arange(len(crop_meta)))
        layered = np.array([it.region in LAYERED_REGIONS for it in crop_meta], bool)
        layering["attributes"] = _attributes_by_outer(
            probabilities, targets.single, layered, np.array(crop_outer, bool)
        )
        keys = targets.pair_key
        queries = logits["embedding"]
        if gallery:
            found, gallery_keys = _gallery_embeddings(
                sessions["attributes"], gallery, limits, aspect_power["attributes"], on_progress
            )
            result["attributes"]["retrieval"] = retrieval_metrics(queries, keys, found, gallery_keys)
        else:
            result["attributes"]["retrieval"] = retrieval_metrics(queries, keys)
    if persons and person_targets:
        persons.flush()
        scores = sigmoid(_joined(style_outputs)[0])
        result["style"] = multilabel_metrics(scores, np.stack(person_targets), [lb.ko for lb in STYLE.labels])
    if layering:
        result["layering"] = layering
    return result


LAYERING_GROUPS = ("under_outer", "not_under_outer")
LAYERING_HEADS = ("category", "color")


def _detection_by_outer(truth: list, predicted: list, image_outer: np.ndarray) -> dict:
    """AP of tops and onepieces on the images with an outer and on those without."""
    result = {}
    for group, wanted in zip(LAYERING_GROUPS, (True, False), strict=True):
        chosen = np.flatnonzero(image_outer == wanted)
        metrics = detection_metrics([truth[i] for i in chosen], [predicted[i] for i in chosen], REGIONS)
        result[group] = {region: metrics[region] for region in LAYERED_REGIONS}
    return result


def _attributes_by_outer(
    probabilities: dict[str, np.ndarray],
    single: dict[str, np.ndarray],
    layered: np.ndarray,
    crop_outer: np.ndarray,
) -> dict:
    """Category and colour of the tops and onepieces of images with an outer, and of the other images'."""
    result = {}
    for group, wanted in zip(LAYERING_GROUPS, (True, False), strict=True):
        rows = np.flatnonzero(layered & (crop_outer == wanted))
        result[group] = {
            key: classification_metrics(probabilities[key][rows], single[key][rows], [])
            for key in LAYERING_HEADS
        }
    return result


def retrieval_gallery(samples: list[Sample], split: str) -> list[Sample]:
    """What the items of `split` search for retrieval, as in the run's report: the training split's images
    for val and test (at most SUBSET_ROWS, evenly spaced, so a real dataset's million training images do
    not make an evaluation take hours); none for train or all, whose items search each other."""
    if split in ("train", "all"):
        return []
    train = [s for s in samples if s.split == "train"]
    return [train[k] for k in evenly_spaced(len(train), SUBSET_ROWS)]


def _gallery_embeddings(
    session,
    gallery: list[Sample],
    limits: ImageLimits,
    aspect_power: float,
    on_progress: Callable[[int], None] | None,
) -> tuple[np.ndarray, list[str]]:
    """Embeddings and retrieval keys of every labelled item of the gallery's images."""
    embeddings: list[np.ndarray] = []
    keys: list[str] = []
    batcher = Batcher(session, lambda out: embeddings.append(out[-1]))
    for sample in gallery:
        pixels = decode_image(sample.image_path.read_bytes(), limits, str(sample.image_path)).pixels
        for item in sample.record.items:
            if item.box:
                batcher.add(crop_box(pixels, item.box, aspect_power))
                keys.append(retrieval_key(item))
        if on_progress:
            on_progress(1)
    batcher.flush()
    return np.concatenate(embeddings), keys


def _joined(batches: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Each output of a model, its batches joined."""
    return [np.concatenate([batch[k] for batch in batches]) for k in range(len(batches[0]))]
