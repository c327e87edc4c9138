"""Style model: multi-label over the 23 styles of the whole look, with ML-GCN's label correlation
(seed 004): a graph convolution over the styles' co-occurrence graph (from the training labels) turns
learned label embeddings into one classifier per style, applied to the person crop's features.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shared.taxonomy import STYLE
from training.backbone import POOLED_DIM, Backbone, PooledBackbone
from training.loop import CPU, EpochHook, feature_chunks, feature_rows, fit, positive_weights

CO_OCCURRENCE_THRESHOLD = 0.4  # ML-GCN's tau: keep an edge i->j when P(j | i) >= tau
SELF_WEIGHT = 0.8  # ML-GCN's re-weighting (p = 0.2 to the neighbours)


def correlation_matrix(targets: np.ndarray) -> np.ndarray:
    """ML-GCN's normalised adjacency from multi-hot training labels (N, C)."""
    counts = targets.sum(axis=0)
    together = targets.T @ targets
    np.fill_diagonal(together, 0)
    conditional = together / np.maximum(counts[:, None], 1)
    binary = (conditional >= CO_OCCURRENCE_THRESHOLD).astype(np.float64)
    neighbours = binary.sum(axis=1, keepdims=True)
    reweighted = np.where(neighbours > 0, binary * (1 - SELF_WEIGHT) / np.maximum(neighbours, 1), 0.0)
    reweighted += np.eye(len(counts)) * np.where(neighbours[:, 0] > 0, SELF_WEIGHT, 1.0)[:, None]
    degree = reweighted.sum(axis=1)
    d = np.diag(degree**-0.5)
    return (d @ reweighted.T @ d).astype(np.float32)


class StyleHead(nn.Module):
    def __init__(
        self,
        adjacency: np.ndarray,
        in_dim: int = POOLED_DIM,
        label_dim: int = 64,
        hidden: int = 256,
        out_dim: int = 256,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.register_buffer("adjacency", torch.from_numpy(np.asarray(adjacency, np.float32)))
        self.label_embedding = nn.Parameter(torch.randn(STYLE.size, label_dim) * 0.1)
        self.gc1 = nn.Linear(label_dim, hidden, bias=False)
        self.gc2 = nn.Linear(hidden, out_dim, bias=False)
        self.project = nn.Sequential(nn.BatchNorm1d(in_dim), nn.Dropout(dropout), nn.Linear(in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(STYLE.size))

    def classifiers(self) -> torch.Tensor:
        h = F.leaky_relu(self.adjacency @ self.gc1(self.label_embedding), 0.2)
        return self.adjacency @ self.gc2(h)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.project(features) @ self.classifiers().T + self.bias


class StyleModel(nn.Module):
    """The served model: person crops (N, 3, 224, 224) -> style logits (N, 23)."""

    def __init__(self, backbone: Backbone, head: StyleHead):
        super().__init__()
        self.pooled = PooledBackbone(backbone)
        self.head = head

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(image))


def train_style(
    features: np.ndarray,
    targets: np.ndarray,
    present: np.ndarray,
    rows: np.ndarray,
    epochs: int,
    seed: int,
    on_epoch: EpochHook | None = None,
    batch_size: int = 128,
    lr: float = 2e-3,
    device: torch.device = CPU,
) -> StyleHead:
    torch.manual_seed(seed)
    rows = rows[present[rows]]
    head = StyleHead(correlation_matrix(targets[rows]))
    pos_weight = torch.from_numpy(positive_weights(targets[rows])).to(device)

    def batch_loss(batch: np.ndarray) -> torch.Tensor:
        logits = head(feature_rows(features, batch).to(device))
        labels = torch.from_numpy(targets[batch]).to(device)
        return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=pos_weight)

    return fit(
        head,
        head.parameters(),
        rows,
        epochs,
        seed,
        batch_loss,
        batch_size=batch_size,
        lr=lr,
        weight_decay=5e-4,
        min_batch=2,
        on_epoch=on_epoch,
        device=device,
    )


@torch.no_grad()
def predict_styles(head: StyleHead, features: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Style probabilities of the given rows of pooled features, in order."""
    head.eval()
    chunks = [torch.sigmoid(head(chunk)).numpy() for chunk in feature_chunks(features, rows)]
    return np.concatenate(chunks) if chunks else np.zeros((0, STYLE.size), np.float32)
