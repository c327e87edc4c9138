"""The one training loop every head uses: AdamW, a one-cycle learning rate, shuffled mini-batches; on a GPU
with mixed precision (float16 autocast and loss scaling), on the CPU in float32."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

EpochHook = Callable[[int, float, nn.Module], None]
CPU = torch.device("cpu")


def training_device(name: str = "auto") -> torch.device:
    """Where the heads train: "auto" is CUDA when torch sees a GPU, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown training device {name!r}: auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for but torch sees no GPU (the CUDA build of torch and a driver)")
    return torch.device(name)


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
    device: torch.device = CPU,
) -> nn.Module:
    """Train `head` for `epochs` over `rows` (indices into the caller's data) on `device`;
    `batch_loss(batch_rows)` returns the loss of one mini-batch, computed on `device`. `on_epoch(epoch,
    mean loss, head)` runs after each epoch with the head on the CPU (validation reads cached features
    there). The trained head comes back on the CPU."""
    head.to(device)
    mixed = device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=mixed)
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
            with torch.autocast(device.type, dtype=torch.float16, enabled=mixed):
                loss = batch_loss(batch)
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            total += loss.item() * len(batch)
            count += len(batch)
        if on_epoch:
            head.cpu()
            on_epoch(epoch, total / max(count, 1), head)
            head.to(device)
    return head.cpu().eval()


def positive_weights(targets: np.ndarray) -> np.ndarray:
    """Weights of the positives of multi-label targets (N, C): sqrt(negatives / positives) in [1, 10]."""
    positives = targets.sum(axis=0)
    negatives = len(targets) - positives
    return np.clip(np.sqrt(negatives / np.maximum(positives, 1.0)), 1.0, 10.0).astype(np.float32)


def feature_rows(features: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """Rows of a cached feature array (in memory or a memory-mapped file) as a float32 tensor."""
    return torch.from_numpy(np.asarray(features[rows], np.float32))


def feature_chunks(features: np.ndarray, rows: np.ndarray, size: int = 1024) -> Iterator[torch.Tensor]:
    """The given rows in order, `size` at a time: predicting over a file larger than memory stays bounded."""
    for start in range(0, len(rows), size):
        yield feature_rows(features, rows[start : start + size])
