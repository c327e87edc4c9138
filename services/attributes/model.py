"""Item attributes: crops of an image's items in, per item every attribute its region has (top-k labels
with probabilities, Korean and English), its colour as hex and share, and its search embedding. Served as
the attribute service (services/model_app.py; contract in schemas.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.attributes.schemas import (
    ATTRIBUTES,
    AttributesRequest,
    AttributesResponse,
    ItemAttributes,
    ItemBox,
)
from shared.colors import color_share, nearest_color_table
from shared.heads import head_probabilities, heads, region_mask
from shared.preprocess import crop_aspect_power, crop_box, to_tensor
from shared.runtime import ModelRuntime
from shared.taxonomy import REGIONS

MODEL = ATTRIBUTES.name
MULTI_THRESHOLD = 0.5
TOP_K = 3  # labels listed per attribute when a request does not say


class AttributeClassifier:
    spec = ATTRIBUTES

    def __init__(self, runtime: ModelRuntime, top_k: int = TOP_K):
        self.runtime = runtime
        self.top_k = top_k
        self.embedding_output = runtime.entry(MODEL).postprocessing.get("embedding", "embedding")
        self.aspect_power = crop_aspect_power(runtime.entry(MODEL).preprocessing)
        nearest_color_table()  # built once here rather than in the first request

    def predict(
        self, images: Sequence[np.ndarray], requests: Sequence[AttributesRequest]
    ) -> list[AttributesResponse]:
        return [
            AttributesResponse(items=self.read_items(pixels, r.items, r.top_k))
            for pixels, r in zip(images, requests, strict=True)
        ]

    def options(self) -> dict:
        return {"top_k": self.top_k, "multi_threshold": MULTI_THRESHOLD}

    def read_items(
        self, pixels: np.ndarray, items: Sequence[ItemBox], top_k: int | None = None
    ) -> list[ItemAttributes]:
        """The attributes of each item of one image, in order. All crops go through the model in one call."""
        if not items:
            return []
        k = top_k or self.top_k
        crops = np.stack([crop_box(pixels, item.box, self.aspect_power) for item in items])
        out = self.runtime.infer(MODEL, to_tensor(crops))
        regions = np.array([REGIONS.index(item.region) for item in items])
        probabilities = head_probabilities(out, regions)
        results = []
        for index, item in enumerate(items):
            attributes = {}
            for h in heads():
                if not region_mask(h.key, item.region).any():
                    continue
                p = probabilities[h.key][index]
                labels = h.attribute.labels
                order = np.argsort(-p)
                ranked = [int(i) for i in order[:k] if p[i] > 0]
                top = [
                    {"value": labels[i].ko, "value_en": labels[i].en, "score": _score(p[i])} for i in ranked
                ]
                if h.multi:
                    chosen = [i for i in order if p[i] >= MULTI_THRESHOLD]
                    attributes[h.key] = {
                        "values": [
                            {"value": labels[i].ko, "value_en": labels[i].en, "score": _score(p[i])}
                            for i in chosen
                        ],
                        "top_k": top,
                    }
                else:
                    attributes[h.key] = {**top[0], "top_k": top}
            x, y, w, h_ = (round(v) for v in item.box)
            color = attributes["color"]
            hex_value, share = color_share(pixels[max(0, y) : y + h_, max(0, x) : x + w], color["value"])
            results.append(
                ItemAttributes(
                    region=item.region,
                    box=[round(v, 1) for v in item.box],
                    attributes=attributes,
                    color={
                        "value": color["value"],
                        "value_en": color["value_en"],
                        "hex": hex_value,
                        "share": share,
                    },
                    embedding=[round(float(v), 6) for v in out[self.embedding_output][index]],
                )
            )
        return results


def _score(p: float) -> float:
    return round(float(p), 4)
