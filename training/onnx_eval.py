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
from shared.preprocess import DETECTOR_SIZE, crop_box, letterbox, to_tensor, union_box
from shared.runtime import onnx_session
from shared.settings import ImageLimits
from shared.taxonomy import REGIONS, STYLE
from training.attributes import build_targets
from training.data import Sample, retrieval_key, style_target
from training.evaluate import attribute_metrics, detection_arrays, detection_truth
from training.metrics import detection_metrics, multilabel_metrics, retrieval_metrics

BATCH = 16


def evaluate_onnx(
    files: dict[str, Path],
    samples: list[Sample],
    stride: int,
    gallery: list[Sample] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Metrics of the given model files (keys: detector, attributes, style) on `samples`. Retrieval
    searches `gallery`'s items (the training split), or the samples' own items leave-one-out."""
    sessions = {name: onnx_session(path) for name, path in files.items()}
    limits = ImageLimits()
    truth, predicted = [], []
    crops, crop_meta, persons, person_targets = [], [], [], []
    for sample in samples:
        pixels = decode_image(sample.image_path.read_bytes(), limits, str(sample.image_path)).pixels
        items = [it for it in sample.record.items if it.box]
        if "detector" in sessions:
            model_input, placement = letterbox(pixels, DETECTOR_SIZE)
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
        if "attributes" in sessions:
            for item in items:
                crops.append(crop_box(pixels, item.box))
                crop_meta.append(item)
        if "style" in sessions and (target := style_target(sample.record)) is not None:
            persons.append(
                crop_box(pixels, union_box([it.box for it in items], pixels.shape[1], pixels.shape[0]))
            )
            person_targets.append(target)
        if on_progress:
            on_progress(1)
    result: dict = {}
    if "detector" in sessions:
        result["detector"] = detection_metrics(truth, predicted, REGIONS)
    if "attributes" in sessions and crops:
        session = sessions["attributes"]
        logits = dict(zip([o.name for o in session.get_outputs()], _run_batched(session, crops), strict=True))
        targets = build_targets(crop_meta)
        result["attributes"] = attribute_metrics(
            head_probabilities(logits, targets.region), targets, np.arange(len(crop_meta))
        )
        keys = targets.pair_key
        queries = logits["embedding"]
        if gallery:
            gallery_crops, gallery_keys = _gallery_crops(gallery, limits)
            found = _run_batched(sessions["attributes"], gallery_crops)[-1]
            result["attributes"]["retrieval"] = retrieval_metrics(queries, keys, found, gallery_keys)
        else:
            result["attributes"]["retrieval"] = retrieval_metrics(queries, keys)
    if "style" in sessions and persons:
        scores = sigmoid(_run_batched(sessions["style"], persons)[0])
        result["style"] = multilabel_metrics(scores, np.stack(person_targets), [lb.ko for lb in STYLE.labels])
    return result


def _gallery_crops(gallery: list[Sample], limits: ImageLimits) -> tuple[list[np.ndarray], list[str]]:
    crops, keys = [], []
    for sample in gallery:
        pixels = decode_image(sample.image_path.read_bytes(), limits, str(sample.image_path)).pixels
        for item in sample.record.items:
            if item.box:
                crops.append(crop_box(pixels, item.box))
                keys.append(retrieval_key(item))
    return crops, keys


def _run_batched(session, images: list[np.ndarray]) -> list[np.ndarray]:
    outputs: list[list[np.ndarray]] = []
    for start in range(0, len(images), BATCH):
        outputs.append(session.run(None, {"image": to_tensor(np.stack(images[start : start + BATCH]))}))
    return [np.concatenate([o[k] for o in outputs]) for k in range(len(outputs[0]))]
