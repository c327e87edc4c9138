"""The one training loop every head uses: AdamW, a one-cycle learning rate, shuffled mini-batches."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

EpochHook = Callable[[int, float, nn.Module], None]


def fit(
    head: nn.Module,
    parameters: Iterable[nn.Parameter],
    rows: np.ndarray,
    epochs: int,
    seed: int,
    batch_loss: Callable[[np.ndarray], torch.Tensor],
    *,
    batch_size: int,
    lr: float,
    weight_decay: float,
    warmup: float = 0.1,
    min_batch: int = 1,
    on_epoch: EpochHook | None = None,
) -> nn.Module:
    """Train `head` for `epochs` over `rows` (indices into the caller's data); `batch_loss(batch_rows)`
    returns the loss of one mini-batch. `on_epoch(epoch, mean loss, head)` runs after each epoch."""
    optimizer = torch.optim.AdamW(list(parameters), lr=lr, weight_decay=weight_decay)
    steps = max(1, epochs * math.ceil(len(rows) / batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=warmup)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        head.train()
        total, count = 0.0, 0
        order = rows[rng.permutation(len(rows))]
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            if len(batch) < min_batch:  # batch norm needs two rows of a vector
                continue
            loss = batch_loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
            count += len(batch)
        if on_epoch:
            on_epoch(epoch, total / max(count, 1), head)
    return head.eval()


def positive_weights(targets: np.ndarray) -> np.ndarray:
    """Weights of the positives of multi-label targets (N, C): sqrt(negatives / positives) in [1, 10]."""
    positives = targets.sum(axis=0)
    negatives = len(targets) - positives
    return np.clip(np.sqrt(negatives / np.maximum(positives, 1.0)), 1.0, 10.0).astype(np.float32)
