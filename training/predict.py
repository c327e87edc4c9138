"""Tag images with installed ONNX models, as label records (so they can be drawn and written like labels).

A direct, single-process path for checking models (`kfashion predict`); the services of issue 4 serve
the same models behind the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.detection import decode_detections
from shared.heads import head_probabilities, heads, region_mask, sigmoid
from shared.labels import ImageInfo, Item, LabelRecord, StyleLabel
from shared.manifest import load_manifest
from shared.preprocess import DETECTOR_SIZE, crop_box, letterbox, to_tensor, union_box
from shared.taxonomy import REGIONS, STYLE
from training.features import ort_session

MULTI_THRESHOLD = 0.5


@dataclass
class Tagger:
    models_dir: Path

    def __post_init__(self) -> None:
        manifest = load_manifest(self.models_dir)
        self.manifest = manifest
        self.sessions = {
            name: ort_session(Path(self.models_dir) / entry.file) for name, entry in manifest.models.items()
        }
        post = manifest.models["detector"].postprocessing
        self.stride, self.threshold = int(post["stride"]), float(post["score_threshold"])

    def tag(self, pixels: np.ndarray, name: str = "image") -> LabelRecord:
        model_input, placement = letterbox(pixels, DETECTOR_SIZE)
        peaks, size, offset = self.sessions["detector"].run(
            ["peaks", "size", "offset"], {"image": to_tensor(model_input[None])}
        )
        detections = decode_detections(
            peaks[0],
            size[0],
            offset[0],
            self.stride,
            placement,
            pixels.shape[1],
            pixels.shape[0],
            score_threshold=self.threshold,
        )
        record = LabelRecord(ImageInfo(None, pixels.shape[1], pixels.shape[0], name))
        if detections:
            crops = np.stack([crop_box(pixels, d.box) for d in detections])
            session = self.sessions["attributes"]
            outputs = dict(
                zip(
                    [o.name for o in session.get_outputs()],
                    session.run(None, {"image": to_tensor(crops)}),
                    strict=True,
                )
            )
            regions = np.array([REGIONS.index(d.region) for d in detections])
            probabilities = head_probabilities(outputs, regions)
            for k, detection in enumerate(detections):
                attributes: dict[str, str | list[str]] = {}
                for h in heads():
                    if not region_mask(h.key, detection.region).any():
                        continue
                    p = probabilities[h.key][k]
                    if h.multi:
                        chosen = [h.attribute.labels[i].ko for i in np.flatnonzero(p >= MULTI_THRESHOLD)]
                        if chosen:
                            attributes[h.key] = chosen
                    else:
                        attributes[h.key] = h.attribute.labels[int(np.argmax(p))].ko
                record.items.append(Item(detection.region, detection.box, [], attributes))
        person = crop_box(pixels, union_box([d.box for d in detections], pixels.shape[1], pixels.shape[0]))
        scores = sigmoid(self.sessions["style"].run(None, {"image": to_tensor(person[None])})[0][0])
        ranked = np.argsort(-scores)
        record.styles = [
            StyleLabel(
                STYLE.labels[ranked[0]].ko,
                STYLE.labels[ranked[1]].ko if scores[ranked[1]] >= MULTI_THRESHOLD else None,
            )
        ]
        return record
