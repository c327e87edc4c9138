"""Attribute model: one forward pass per garment crop gives every attribute head and an embedding.

Single-label heads (softmax): category, colour, length, sleeve, neckline, collar, fit; multi-label
heads (sigmoid): print, material, detail (shared.heads). Category and length compete only among the
labels valid for the crop's region. Missing labels are masked out of the loss (never negatives).
Imbalance: class weights (inverse square root of frequency) for softmax heads, positive weights for
sigmoid heads; both are reported in the run's config.

The embedding (L2-normalised, 128-d) is trained with a cosine-softmax over (category, colour) pairs,
so neighbours share what shoppers search by; the proxy weights are dropped after training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shared.heads import EMBEDDING_DIM, MULTI_HEADS, SINGLE_HEADS, heads, region_masks
from shared.heads import head as head_spec
from shared.labels import Item
from training.backbone import COLOUR_FEATURES, POOLED_DIM, Backbone, PooledBackbone
from training.data import multi_target, region_index, retrieval_key, single_target
from training.loop import CPU, EpochHook, feature_chunks, feature_rows, fit, positive_weights

EMBEDDING_SCALE = 16.0


def _trunk(in_dim: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm1d(in_dim),
        nn.Dropout(dropout),
        nn.Linear(in_dim, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
    )


class AttributeHead(nn.Module):
    """A shared trunk for shape, print and material heads, and a colour trunk that reads only the
    colour-bearing features (early maps and the colour grid): on all features the colour head learns
    the training set's shapes instead of its colours."""

    def __init__(
        self, in_dim: int = POOLED_DIM, hidden: int = 512, colour_hidden: int = 128, dropout: float = 0.3
    ):
        super().__init__()
        self.register_buffer("colour_index", torch.tensor(COLOUR_FEATURES, dtype=torch.long))
        self.trunk = _trunk(in_dim, hidden, dropout)
        self.colour_trunk = _trunk(len(COLOUR_FEATURES), colour_hidden, dropout)
        self.outputs = nn.ModuleDict(
            {h.key: nn.Linear(colour_hidden if h.key == "color" else hidden, h.size) for h in heads()}
        )
        self.embedding = nn.Linear(hidden + colour_hidden, EMBEDDING_DIM)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.trunk(features)
        colour = self.colour_trunk(features.index_select(1, self.colour_index))
        logits = tuple(self.outputs[h.key](colour if h.key == "color" else hidden) for h in heads())
        return (*logits, F.normalize(self.embedding(torch.cat([hidden, colour], dim=1)), dim=1))


class AttributeModel(nn.Module):
    """The served model: crops (N, 3, 224, 224) -> one logits output per head, then the embedding."""

    def __init__(self, backbone: Backbone, head: AttributeHead):
        super().__init__()
        self.pooled = PooledBackbone(backbone)
        self.head = head

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.head(self.pooled(image))


OUTPUT_NAMES = [*(h.key for h in heads()), "embedding"]


@dataclass
class AttributeTargets:
    single: dict[str, np.ndarray]  # key -> (N,) label id or -1
    multi: dict[str, np.ndarray]  # key -> (N, C) multi-hot
    multi_present: dict[str, np.ndarray]  # key -> (N,) bool
    region: np.ndarray  # (N,) region index
    pair_key: list[str]  # "category|color" for retrieval

    def take(self, rows: np.ndarray) -> AttributeTargets:
        """The targets of the given rows, in that order."""
        return AttributeTargets(
            {k: v[rows] for k, v in self.single.items()},
            {k: v[rows] for k, v in self.multi.items()},
            {k: v[rows] for k, v in self.multi_present.items()},
            self.region[rows],
            [self.pair_key[r] for r in rows],
        )


def build_targets(items: list[Item]) -> AttributeTargets:
    single = {
        k: np.array([single_target(k, it.region, it.attributes.get(k)) for it in items], np.int64)
        for k in SINGLE_HEADS
    }
    multi, present = {}, {}
    for key in MULTI_HEADS:
        size = head_spec(key).size
        vectors = [multi_target(key, it.attributes.get(key)) for it in items]
        present[key] = np.array([v is not None for v in vectors])
        multi[key] = (
            np.stack([v if v is not None else np.zeros(size, np.float32) for v in vectors])
            if vectors
            else np.zeros((0, size), np.float32)
        )
    region = np.array([region_index(it.region) for it in items], np.int64)
    return AttributeTargets(single, multi, present, region, [retrieval_key(it) for it in items])


def class_weights(targets: np.ndarray, size: int) -> np.ndarray:
    counts = np.bincount(targets[targets >= 0], minlength=size).astype(np.float64)
    weights = np.where(counts > 0, 1.0 / np.sqrt(counts + 1.0), 0.0)
    return (
        (weights / weights[counts > 0].mean()).astype(np.float32)
        if counts.any()
        else np.ones(size, np.float32)
    )


def masked_logits(key: str, logits: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Labels not valid for the item's region cannot win (category, length, ...)."""
    valid = torch.from_numpy(region_masks(key)).to(logits.device)[region]
    return logits.masked_fill(~valid, -1e4)


@dataclass
class TrainedAttributes:
    head: AttributeHead
    weights: dict[str, list[float]]  # the imbalance weights used, for the report


def train_attributes(
    features: np.ndarray,
    targets: AttributeTargets,
    rows: np.ndarray,
    epochs: int,
    seed: int,
    on_epoch: EpochHook | None = None,
    batch_size: int = 256,
    lr: float = 2e-3,
    device: torch.device = CPU,
) -> TrainedAttributes:
    torch.manual_seed(seed)
    head = AttributeHead()
    pairs = sorted(set(targets.pair_key[r] for r in rows))
    pair_id = {p: i for i, p in enumerate(pairs)}
    proxies = nn.Parameter((torch.randn(len(pairs), EMBEDDING_DIM) * 0.1).to(device))
    single_w = {k: class_weights(targets.single[k][rows], head_spec(k).size) for k in SINGLE_HEADS}
    multi_w = {
        k: positive_weights(targets.multi[k][rows][targets.multi_present[k][rows]]) for k in MULTI_HEADS
    }

    def on(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device)

    def batch_loss(batch: np.ndarray) -> torch.Tensor:
        outputs = head(feature_rows(features, batch).to(device))
        region = on(targets.region[batch])
        loss = torch.zeros((), device=device)
        for index, h in enumerate(heads()):
            logits = outputs[index]
            if h.multi:
                present = on(targets.multi_present[h.key][batch])
                if present.any():
                    loss = loss + F.binary_cross_entropy_with_logits(
                        logits[present],
                        on(targets.multi[h.key][batch])[present],
                        pos_weight=on(multi_w[h.key]),
                    )
            else:
                target = on(targets.single[h.key][batch])
                if (target >= 0).any():
                    loss = loss + F.cross_entropy(
                        masked_logits(h.key, logits, region),
                        target,
                        ignore_index=-1,
                        weight=on(single_w[h.key]),
                    )
        pair_target = torch.tensor([pair_id[targets.pair_key[r]] for r in batch], device=device)
        cosine = outputs[-1] @ F.normalize(proxies, dim=1).T
        return loss + F.cross_entropy(EMBEDDING_SCALE * cosine, pair_target)

    fit(
        head,
        [*head.parameters(), proxies],
        rows,
        epochs,
        seed,
        batch_loss,
        batch_size=batch_size,
        lr=lr,
        weight_decay=1e-4,
        min_batch=2,
        on_epoch=on_epoch,
        device=device,
    )
    weights = {k: v.round(3).tolist() for k, v in {**single_w, **multi_w}.items()}
    return TrainedAttributes(head.eval(), weights)


@torch.no_grad()
def predict_attributes(
    head: AttributeHead, features: np.ndarray, rows: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Raw logits per head and embeddings for the given rows of pooled features, in order."""
    head.eval()
    if not len(rows):
        return {h.key: np.zeros((0, h.size), np.float32) for h in heads()}, np.zeros((0, EMBEDDING_DIM))
    outputs = [head(chunk) for chunk in feature_chunks(features, rows)]
    logits = {h.key: torch.cat([o[i] for o in outputs]).numpy() for i, h in enumerate(heads())}
    return logits, torch.cat([o[-1] for o in outputs]).numpy()
