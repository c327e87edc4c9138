"""Tagged results as the gateway sends them to the catalog (attributes with scores, 128-d embeddings),
built by hand for tests that need no model."""

from __future__ import annotations

import numpy as np

VERSIONS = {"taxonomy": "kfashion-1+test", "attributes": "1"}


def attribute(value: str) -> dict:
    return {"value": value, "value_en": "", "score": 0.9, "top_k": []}


def item(region: str, category: str, color: str, prints: list[str], seed: int) -> dict:
    vector = np.random.default_rng(seed).normal(size=128)
    return {
        "region": region,
        "box": [10, 20, 30, 40],
        "score": 0.8,
        "attributes": {
            "category": attribute(category),
            "color": attribute(color),
            "print": {"values": [{"value": p, "value_en": "", "score": 0.7} for p in prints], "top_k": []},
        },
        "embedding": list(vector / np.linalg.norm(vector)),
    }


def look(style: str, items: list[dict]) -> dict:
    return {"width": 800, "height": 1000, "style": style, "sub_style": None, "styles": [], "items": items}
