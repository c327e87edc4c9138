"""The attribute model's heads, derived from the taxonomy, and what each region allows.

One place says which outputs the attribute model has, in which order, and which labels of each are
valid for an item of a region; training, evaluation and serving all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from shared.taxonomy import ATTRIBUTES, REGIONS, Attribute

# Single-label (softmax) heads, then multi-label (sigmoid) heads. sub_color is not predicted.
SINGLE_HEADS: tuple[str, ...] = ("category", "color", "length", "sleeve", "neckline", "collar", "fit")
MULTI_HEADS: tuple[str, ...] = ("print", "material", "detail")
HEADS: tuple[str, ...] = (*SINGLE_HEADS, *MULTI_HEADS)
EMBEDDING_DIM = 128


@dataclass(frozen=True)
class Head:
    key: str
    attribute: Attribute
    multi: bool

    @property
    def size(self) -> int:
        return self.attribute.size


@cache
def heads() -> tuple[Head, ...]:
    return tuple(Head(key, ATTRIBUTES[key], key in MULTI_HEADS) for key in HEADS)


def head(key: str) -> Head:
    return heads()[HEADS.index(key)]


@cache
def region_mask(key: str, region: str) -> np.ndarray:
    """Boolean mask of the labels of head `key` valid for an item of `region` (all False if none apply)."""
    attribute = ATTRIBUTES[key]
    mask = np.zeros(attribute.size, bool)
    for label in attribute.labels_for(region):
        mask[label.id] = True
    return mask


def region_masks(key: str) -> np.ndarray:
    """(4, size) masks in REGIONS order."""
    return np.stack([region_mask(key, region) for region in REGIONS])


def masked_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Softmax over the valid labels only; invalid labels get probability 0 (all 0 where none is valid)."""
    mask = np.broadcast_to(mask, logits.shape)
    z = np.where(mask, logits, -np.inf)
    top = z.max(axis=-1, keepdims=True)
    e = np.where(mask, np.exp(z - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def head_probabilities(logits: dict[str, np.ndarray], region: np.ndarray) -> dict[str, np.ndarray]:
    """Per head, for items whose region indices (REGIONS order) are `region`: a softmax over the labels
    valid for each item's region, or sigmoids for multi-label heads."""
    return {
        h.key: sigmoid(logits[h.key])
        if h.multi
        else masked_softmax(logits[h.key], region_masks(h.key)[region])
        for h in heads()
    }
