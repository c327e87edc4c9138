"""The style model on photographs (`kfashion train-real --stages style`): no real set labels styles, so
what the style model says of a photograph is unmeasured; it should say so with low scores instead of the
confident ones it learned on generated pictures (issue 34, calibration).

The served style head is trained further on two kinds of person crops, its backbone frozen as before:
- generated pictures with their style labels, so that what it learned there holds;
- real photographs (CCP's people, clothing-dataset's product photos; training splits only), whose target
  per style is the served model's own score shrunk toward that style's base rate in the generated labels:
  PHOTO_PRIOR_WEIGHT * base rate + (1 - PHOTO_PRIOR_WEIGHT) * served score. The ranking it gave stays, its
  confidence falls under the 0.5 at which a style is stated (at most 0.4 + 0.6 * the base rate).
The two kinds weigh the same in the loss, however many crops each has.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from shared.manifest import load_manifest
from shared.preprocess import crop_aspect_power, crop_box, to_tensor, union_box
from training.backbone import Backbone, PooledBackbone
from training.data import Sample, style_target
from training.finetune import FoundBoxes, read_pixels, starting_point
from training.loop import fit, positive_weights
from training.realdata import RealPhoto, garment_box
from training.style import StyleHead, StyleModel

PHOTO_PRIOR_WEIGHT = 0.6
EPOCHS = 30
LR = 5e-4  # a quarter of the style head's first training: it starts from the served head


@dataclass
class PersonCrop:
    path: Path
    box: tuple[float, float, float, float] | None  # None: the garment of a product photo (garment_box)
    styles: np.ndarray | None  # multi-hot style labels of a generated picture; None for a photograph


def person_crops(
    photos: dict[str, list[RealPhoto]], generated: Sequence[Sample], tag_boxes: FoundBoxes | None = None
) -> list[PersonCrop]:
    """The person crop of every training photo and labelled generated picture, as serving makes it: the
    box around the garments (the labelled ones; a detector's for CCP's tag-only photos), a product
    photo's garment."""
    crops = []
    for photo in photos.get("ccp", []):
        if photo.split == "train" and photo.items:
            crops.append(PersonCrop(photo.path, _around([it.box for it in photo.items]), None))
    for photo in photos.get("ccp_tags", []):
        found = (tag_boxes or {}).get(photo.id)
        if photo.split == "train" and found:
            crops.append(PersonCrop(photo.path, _around([box for _, box in found]), None))
    for photo in photos.get("clothing", []):
        if photo.split == "train":
            crops.append(PersonCrop(photo.path, None, None))
    for sample in generated:
        target = style_target(sample.record)
        boxes = [it.box for it in sample.record.items if it.box]
        if sample.split == "train" and target is not None and boxes:
            crops.append(PersonCrop(sample.image_path, _around(boxes), target))
    return crops


def _around(boxes: list) -> tuple[float, float, float, float]:
    """The box around `boxes` (never empty here: union_box's whole-image case and size never apply)."""
    return tuple(float(v) for v in union_box([tuple(b) for b in boxes], 0, 0))


@torch.no_grad()
def crop_features(
    pooled: PooledBackbone,
    crops: Sequence[PersonCrop],
    aspect_power: float,
    log: Callable[[str], None],
    batch: int = 32,
) -> np.ndarray:
    """The frozen backbone's pooled features of every crop (what the style head reads), the crops made
    with the served model's aspect power, as the style service makes them."""
    pooled.eval()
    rows, started = [], time.perf_counter()
    for start in range(0, len(crops), batch):
        images = []
        for crop in crops[start : start + batch]:
            pixels = read_pixels(crop.path)
            box = crop.box or garment_box(pixels)
            images.append(crop_box(pixels, box, aspect_power))
        rows.append(pooled(torch.from_numpy(to_tensor(np.stack(images)))).numpy())
        done = min(start + batch, len(crops))
        if done % (batch * 20) < batch or done == len(crops):
            log(f"style crops {done}/{len(crops)}, {time.perf_counter() - started:.0f} s")
    return np.concatenate(rows)


def photo_targets(served: np.ndarray, base_rate: np.ndarray) -> np.ndarray:
    """What a photograph's style scores are trained toward: the served scores shrunk to the base rates."""
    return (PHOTO_PRIOR_WEIGHT * base_rate[None, :] + (1 - PHOTO_PRIOR_WEIGHT) * served).astype(np.float32)


def calibrate_style(
    models: Path,
    photos: dict[str, list[RealPhoto]],
    generated: Sequence[Sample],
    tag_boxes: FoundBoxes | None = None,
    seed: int = 0,
    epochs: int = EPOCHS,
    log: Callable[[str], None] = print,
) -> tuple[Backbone, StyleHead, dict]:
    """The style model of `models` (read back from its ONNX file) trained further as the module says; its
    backbone (unchanged) and head, and figures on the stage's own crops (the share of photographs and of
    generated pictures whose best style is at or over 0.5, served and trained)."""
    backbone, head = Backbone(), StyleHead(np.eye(23))  # the adjacency is read back too
    starting_point(models, "style", backbone, head)
    model = StyleModel(backbone, head)
    crops = person_crops(photos, generated, tag_boxes)
    is_photo = np.array([c.styles is None for c in crops])
    if not is_photo.any() or is_photo.all():
        raise ValueError("the style stage needs both photographs and labelled generated pictures")
    aspect_power = crop_aspect_power(load_manifest(models).models["style"].preprocessing)
    features = crop_features(model.pooled, crops, aspect_power, log)
    head = model.head.eval()
    with torch.no_grad():
        served_scores = torch.sigmoid(head(torch.from_numpy(features))).numpy()
    labels = np.stack([c.styles if c.styles is not None else np.zeros(23, np.float32) for c in crops])
    base_rate = labels[~is_photo].mean(axis=0)
    targets = np.where(is_photo[:, None], photo_targets(served_scores, base_rate), labels).astype(np.float32)
    pos_weight = torch.from_numpy(positive_weights(labels[~is_photo]))
    photo_rows = torch.from_numpy(is_photo)

    def batch_loss(rows: np.ndarray) -> torch.Tensor:
        head.project[0].eval()  # the norm keeps the statistics the served head was trained with
        logits = head(torch.from_numpy(features[rows]))
        target = torch.from_numpy(targets[rows])
        photo = photo_rows[rows]
        losses = []
        if (~photo).any():
            losses.append(
                F.binary_cross_entropy_with_logits(logits[~photo], target[~photo], pos_weight=pos_weight)
            )
        if photo.any():
            losses.append(F.binary_cross_entropy_with_logits(logits[photo], target[photo]))
        return torch.stack(losses).mean()

    started = time.perf_counter()
    fit(
        head,
        head.parameters(),
        np.arange(len(crops)),
        epochs,
        seed,
        batch_loss,
        batch_size=128,
        lr=LR,
        weight_decay=5e-4,
        min_batch=2,
        on_epoch=lambda epoch, loss, _: log(f"style epoch {epoch + 1}/{epochs}: loss {loss:.4f}"),
    )
    with torch.no_grad():
        after = torch.sigmoid(head.eval()(torch.from_numpy(features))).numpy()
    figures = {
        "crops": {"photographs": int(is_photo.sum()), "generated": int((~is_photo).sum())},
        "photographs_best_style_over_0.5": {
            "served": round(float((served_scores[is_photo].max(1) >= 0.5).mean()), 3),
            "trained": round(float((after[is_photo].max(1) >= 0.5).mean()), 3),
        },
        "generated_best_style_over_0.5": {
            "served": round(float((served_scores[~is_photo].max(1) >= 0.5).mean()), 3),
            "trained": round(float((after[~is_photo].max(1) >= 0.5).mean()), 3),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    log(f"style: {figures}")
    return model.pooled.backbone, head, figures
