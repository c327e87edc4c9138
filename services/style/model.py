"""Look style: the person (the box around the image's items) in, the 23 styles with probabilities, a main
style and a sub-style out. The model sees pixels only; items' features are not an input of it. Served as the
style service (services/model_app.py; contract in schemas.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.style.schemas import STYLE as STYLE_SERVICE
from services.style.schemas import StyleRequest, StyleResponse, StyleScore
from shared.heads import sigmoid
from shared.inference import Box
from shared.preprocess import crop_aspect_power, crop_box, to_tensor, union_box
from shared.runtime import ModelRuntime
from shared.taxonomy import STYLE

MODEL = STYLE_SERVICE.name


class StyleClassifier:
    spec = STYLE_SERVICE

    def __init__(self, runtime: ModelRuntime):
        self.runtime = runtime
        self.threshold = float(runtime.entry(MODEL).postprocessing.get("threshold", 0.5))
        self.aspect_power = crop_aspect_power(runtime.entry(MODEL).preprocessing)

    def predict(self, images: Sequence[np.ndarray], requests: Sequence[StyleRequest]) -> list[StyleResponse]:
        return self.classify([(pixels, r.boxes) for pixels, r in zip(images, requests, strict=True)])

    def options(self) -> dict:
        return {"threshold": self.threshold}

    def classify(self, looks: Sequence[tuple[np.ndarray, Sequence[Box]]]) -> list[StyleResponse]:
        """Per (image, item boxes): its styles, best first. All looks go through the model in one call."""
        if not looks:
            return []
        crops = np.stack(
            [
                crop_box(pixels, union_box(list(boxes), pixels.shape[1], pixels.shape[0]), self.aspect_power)
                for pixels, boxes in looks
            ]
        )
        scores = sigmoid(self.runtime.infer(MODEL, to_tensor(crops), ["logits"])["logits"])
        results = []
        for row in scores:
            ranked = np.argsort(-row)
            main, second = STYLE.labels[int(ranked[0])], STYLE.labels[int(ranked[1])]
            sub = second if row[ranked[1]] >= self.threshold else None
            results.append(
                StyleResponse(
                    style=main.ko,
                    style_en=main.en,
                    sub_style=sub.ko if sub else None,
                    sub_style_en=sub.en if sub else None,
                    styles=[
                        StyleScore(
                            name=STYLE.labels[int(i)].ko,
                            name_en=STYLE.labels[int(i)].en,
                            score=round(float(row[i]), 4),
                        )
                        for i in ranked
                    ],
                )
            )
        return results
