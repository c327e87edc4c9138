"""Item attributes: crops of an image's items in, per item every attribute its region has (top-k labels
with probabilities, Korean and English), its colour as hex and share, and its search embedding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.colors import color_share, nearest_color_table
from shared.heads import head_probabilities, heads, region_mask
from shared.preprocess import crop_aspect_power, crop_box, to_tensor
from shared.runtime import ModelRuntime
from shared.taxonomy import REGIONS

MODEL = "attributes"
MULTI_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class ItemBox:
    region: str
    box: tuple[float, float, float, float]  # x, y, width, height in original pixels


class AttributeClassifier:
    def __init__(self, runtime: ModelRuntime, top_k: int = 3):
        self.runtime = runtime
        self.top_k = top_k
        self.embedding_output = runtime.entry(MODEL).postprocessing.get("embedding", "embedding")
        self.aspect_power = crop_aspect_power(runtime.entry(MODEL).preprocessing)
        nearest_color_table()  # built once here rather than in the first request

    def describe(self, pixels: np.ndarray, items: Sequence[ItemBox], top_k: int | None = None) -> list[dict]:
        """One dict per item, in order. All crops go through the model in one call."""
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
                {
                    "region": item.region,
                    "box": [round(v, 1) for v in item.box],
                    "attributes": attributes,
                    "color": {
                        "value": color["value"],
                        "value_en": color["value_en"],
                        "hex": hex_value,
                        "share": share,
                    },
                    "embedding": [round(float(v), 6) for v in out[self.embedding_output][index]],
                }
            )
        return results


def _score(p: float) -> float:
    return round(float(p), 4)


def label_values(attributes: dict) -> dict[str, str | list[str]]:
    """An item's attributes as the label JSON writes them: Korean names, lists for multi-valued ones."""
    values: dict[str, str | list[str]] = {}
    for key, attribute in attributes.items():
        if "values" in attribute:
            if attribute["values"]:
                values[key] = [v["value"] for v in attribute["values"]]
        else:
            values[key] = attribute["value"]
    return values
