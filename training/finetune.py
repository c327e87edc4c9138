"""Fine-tuning on real photos: the detector and the attribute model learn from pixels, backbone included.

The frozen-feature training of training/run.py cannot move the ImageNet features towards garments; on real
photos that is where the transfer comes from. Here the backbone's later blocks (stride 16 and 32) train
with the heads, on photos decoded and augmented every step; the stem and blocks up to stride 8 keep their
ImageNet weights (they carry colour and texture, and freezing them halves the cost on a CPU), and batch
norm statistics stay frozen (batches of 16 are too small to estimate them).

Data, mixed in every batch by fixed shares (`DETECTOR_MIX`, `ATTRIBUTE_MIX`):
- detector: CCP photos (boxes from the masks), clothing-dataset photos (one garment, its box from
  `garment_box`), generated K-Fashion pictures (regions and categories the real sets lack);
- attributes: CCP garments (category, derived colour), clothing-dataset garments (category sets), CAD's
  upper garments (colour, print, sleeve, neckline, category) on the box the fine-tuned detector finds,
  generated items (every attribute, the only source of materials and details).

A run folder gets what `kfashion export` reads: heads.pt (each model's head *and* its backbone),
config.json, metrics.json; checkpoints every `CHECKPOINT_STEPS` so a stopped run keeps its work.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    import onnx

from shared.heads import EMBEDDING_DIM, MULTI_HEADS, SINGLE_HEADS, heads, region_mask
from shared.heads import head as head_spec
from shared.imaging import decode_image
from shared.preprocess import CROP_ASPECT_POWER, DETECTOR_SIZE, crop_box, letterbox, to_tensor
from shared.settings import ImageLimits
from shared.taxonomy import REGIONS, TAXONOMY_VERSION
from training.attributes import EMBEDDING_SCALE, AttributeHead
from training.backbone import _C2_BLOCK, _C3_BLOCK, _C4_BLOCK, COLOR_GRID, Backbone, PooledBackbone, _pool
from training.data import Sample, region_index
from training.detector import DetectorHead, build_targets, detector_loss
from training.realdata import RealPhoto, Target, garment_box

FROZEN_BLOCKS = 5  # default: the stem and blocks 0-4 (strides 2 to 8) keep their ImageNet weights
CHECKPOINT_STEPS = 50
DETECTOR_MIX = {"ccp": 0.5, "clothing": 0.3, "generated": 0.2}
ATTRIBUTE_MIX = {"ccp": 0.3, "clothing": 0.25, "cad": 0.3, "generated": 0.15}
# With tag-only CCP photos (`--tagged-photos`), their share of CCP's part of each batch: they outnumber the
# masked photos, but their boxes are a detector's (86% right at IoU 0.5 on the masked validation photos).
TAGGED_SHARE = 0.4
# Boxes a detector found where labels give none: photo id -> [(region, (x, y, w, h)), ...].
FoundBoxes = dict[str, list[tuple[str, tuple[float, float, float, float]]]]
# What `balanced_chances` balances in each real set: the labels its photos are measured on.
BALANCED_HEADS = {"cad": ("print", "sleeve", "neckline")}
_LIMITS = ImageLimits()


# ------------------------------------------------------------------ the backbone, partly trainable


def with_tagged_share(mix: dict[str, float], share: float = TAGGED_SHARE) -> dict[str, float]:
    """`mix` with `share` of CCP's part drawn from its tag-only photos ("ccp_tags")."""
    return {**mix, "ccp": mix["ccp"] * (1 - share), "ccp_tags": mix["ccp"] * share}


def with_generated_share(mix: dict[str, float], share: float) -> dict[str, float]:
    """`mix` with the generated share set to `share`, the real sets scaled to the rest."""
    real = {k: v for k, v in mix.items() if k != "generated"}
    total = sum(real.values())
    return {**{k: v / total * (1 - share) for k, v in real.items()}, "generated": share}


def prepare_backbone(backbone: Backbone, frozen_blocks: int) -> list[nn.Parameter]:
    """Freeze the stem and the first `frozen_blocks` blocks; the parameters that train."""
    for module in (backbone.stem, *backbone.blocks[:frozen_blocks]):
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    return [p for p in backbone.parameters() if p.requires_grad]


def freeze_batch_norm(module: nn.Module) -> None:
    """Batch norm layers keep their running statistics (the backbone's ImageNet ones; a warm-started
    head's); called after every .train()."""
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.eval()


def backbone_maps(
    backbone: Backbone, x: torch.Tensor, want_head: bool, frozen_blocks: int
) -> tuple[torch.Tensor, ...]:
    """Backbone.forward's maps (stem, c2, c3, c4, c5, head), with the frozen layers run without gradients
    (the same numbers). Without `want_head` the 1280-channel head is skipped (the detector reads c3-c5)."""
    maps: dict[int, torch.Tensor] = {}

    def blocks(x: torch.Tensor, indices: range) -> torch.Tensor:
        for index in indices:
            x = backbone.blocks[index](x)
            maps[index] = x
        return x

    with torch.no_grad():
        x = stem = backbone.stem(x)
        x = blocks(x, range(min(frozen_blocks, len(backbone.blocks))))
    x = blocks(x, range(frozen_blocks, len(backbone.blocks)))
    head = backbone.head(x) if want_head else x
    return stem, maps[_C2_BLOCK], maps[_C3_BLOCK], maps[_C4_BLOCK], x, head


# ------------------------------------------------------------------ pictures and augmentation


@dataclass
class Picture:
    """One training picture of the detector: where it is, its items (boxes xywh and regions; None for a
    product photo whose one garment's box is found when it is decoded) and where it comes from."""

    path: Path
    source: str
    boxes: np.ndarray | None
    regions: np.ndarray


def detector_pictures(
    photos: dict[str, list[RealPhoto]], generated: list[Sample], tag_boxes: FoundBoxes | None = None
) -> dict[str, list[Picture]]:
    """Training pictures per source. `tag_boxes`: the boxes a detector found on CCP's tag-only photos
    (`real_run.find_tagged_garments`); those photos are left out without them."""
    out: dict[str, list[Picture]] = {"ccp": [], "ccp_tags": [], "clothing": [], "generated": []}
    for photo in photos.get("ccp", []):
        if photo.split == "train" and photo.items:
            boxes = np.array([it.box for it in photo.items], np.float32)
            regions = np.array([REGIONS.index(it.region) for it in photo.items], np.int64)
            out["ccp"].append(Picture(photo.path, "ccp", boxes, regions))
    for photo in photos.get("ccp_tags", []):
        found = (tag_boxes or {}).get(photo.id)
        if photo.split == "train" and found:
            boxes = np.array([box for _, box in found], np.float32)
            regions = np.array([REGIONS.index(region) for region, _ in found], np.int64)
            out["ccp_tags"].append(Picture(photo.path, "ccp_tags", boxes, regions))
    for photo in photos.get("clothing", []):
        if photo.split == "train" and photo.items[0].region:
            out["clothing"].append(
                Picture(photo.path, "clothing", None, np.array([REGIONS.index(photo.items[0].region)]))
            )
    for sample in generated:
        if sample.split == "train":
            items = [it for it in sample.record.items if it.box]
            out["generated"].append(
                Picture(
                    sample.image_path,
                    "generated",
                    np.array([it.box for it in items], np.float32).reshape(-1, 4),
                    np.array([region_index(it.region) for it in items], np.int64),
                )
            )
    return {k: v for k, v in out.items() if v}


def read_pixels(path: Path) -> np.ndarray:
    return decode_image(path.read_bytes(), _LIMITS, str(path)).pixels


def jitter_colour(pixels: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast and saturation changed by up to `strength` (hue kept: colour is a label)."""
    image = pixels.astype(np.float32)
    grey = image.mean(axis=2, keepdims=True)
    image = grey + (image - grey) * (1 + rng.uniform(-strength, strength))
    mean = image.mean()
    image = mean + (image - mean) * (1 + rng.uniform(-strength, strength))
    image = image * (1 + rng.uniform(-strength, strength))
    return np.clip(image, 0, 255).astype(np.uint8)


def augment_detector(
    pixels: np.ndarray, boxes: np.ndarray, regions: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """Mirror, a random window of 65-100% of each side (boxes clipped; a box losing over 75% dropped),
    colour jitter; letterboxed. Returns the model input, corner boxes in input pixels, regions, placement."""
    h, w = pixels.shape[:2]
    corners = np.column_stack(
        [boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]]
    )
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
        corners = np.column_stack([w - corners[:, 2], corners[:, 1], w - corners[:, 0], corners[:, 3]])
    if rng.random() < 0.6:
        cw, ch = int(w * rng.uniform(0.65, 1.0)), int(h * rng.uniform(0.65, 1.0))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        pixels = pixels[y0 : y0 + ch, x0 : x0 + cw]
        clipped = np.column_stack(
            [
                np.clip(corners[:, 0] - x0, 0, cw),
                np.clip(corners[:, 1] - y0, 0, ch),
                np.clip(corners[:, 2] - x0, 0, cw),
                np.clip(corners[:, 3] - y0, 0, ch),
            ]
        )
        before = np.maximum((corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1]), 1e-6)
        after = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        keep = after / before >= 0.25
        corners, regions = clipped[keep], regions[keep]
    pixels = jitter_colour(np.ascontiguousarray(pixels), rng, 0.25)
    model_input, placement = letterbox(pixels, DETECTOR_SIZE)
    return model_input, placement.to_input(corners.astype(np.float32)), regions, placement


def mixed_batches(
    pools: dict[str, list],
    mix: dict[str, float],
    batch_size: int,
    steps: int,
    seed: int,
    chances: dict[str, np.ndarray] | None = None,
) -> Iterator[list]:
    """`steps` batches, each drawn from the pools by their shares of `mix` (pools that are empty are left
    out and the others' shares grow). Within a pool every item is as likely, or as likely as `chances`
    gives for that pool (probabilities, one per item)."""
    rng = np.random.default_rng(seed)
    chances = chances or {}
    names = [n for n in mix if pools.get(n)]
    shares = np.array([mix[n] for n in names])
    shares = shares / shares.sum()
    for _ in range(steps):
        counts = rng.multinomial(batch_size, shares)
        batch = []
        for name, count in zip(names, counts, strict=True):
            pool = pools[name]
            if name in chances:
                drawn = rng.choice(len(pool), count, p=chances[name])
            else:
                drawn = rng.integers(0, len(pool), count)
            batch.extend(pool[int(i)] for i in drawn)
        yield batch


def prefetch(batches: Iterator[list], load: Callable[[list], object], workers: int = 2) -> Iterator[object]:
    """Batches loaded by a thread pool one step ahead of training (OpenCV decodes without the GIL)."""
    with ThreadPoolExecutor(workers) as pool:
        pending = None
        for batch in batches:
            future = pool.submit(load, batch)
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


def cosine_lr(step: int, steps: int, warmup: float = 0.05) -> float:
    warm = max(1, int(steps * warmup))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


@dataclass
class Progress:
    log: Callable[[str], None] = print
    every: int = 10
    history: list[dict] = field(default_factory=list)


def _optimizer(backbone_params: list, head_params: list, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        [{"params": backbone_params, "lr": lr * 0.25}, {"params": head_params, "lr": lr}], weight_decay=1e-4
    )


def _step_lr(optimizer: torch.optim.Optimizer, base: float, factor: float) -> None:
    for group, scale in zip(optimizer.param_groups, (0.25, 1.0), strict=True):
        group["lr"] = base * scale * factor


# ------------------------------------------------------------------ detector


def train_detector_images(
    pictures: dict[str, list[Picture]],
    steps: int,
    out: Path,
    seed: int = 0,
    batch_size: int = 16,
    lr: float = 2e-3,
    progress: Progress | None = None,
    frozen_blocks: int = FROZEN_BLOCKS,
    mix: dict[str, float] = DETECTOR_MIX,
    start_from: Path | None = None,
) -> tuple[Backbone, DetectorHead]:
    """`start_from`: a run folder or a models folder the training starts from (`starting_point`)."""
    torch.manual_seed(seed)
    backbone, head = Backbone(), DetectorHead()
    starting_point(start_from, "detector", backbone, head)
    rng_seed = np.random.SeedSequence(seed)

    def load(batch: list[Picture]) -> tuple:
        rng = np.random.default_rng(rng_seed.spawn(1)[0])
        inputs, targets = [], []
        for picture in batch:
            pixels = read_pixels(picture.path)
            boxes = picture.boxes
            if boxes is None:
                boxes = np.array([garment_box(pixels)], np.float32)
            model_input, corners, regions, _ = augment_detector(pixels, boxes, picture.regions, rng)
            inputs.append(model_input)
            targets.append(build_targets(corners, regions))
        return to_tensor(np.stack(inputs)), targets

    def step_loss(loaded: tuple) -> torch.Tensor:
        images, targets = loaded
        _, _, c3, c4, c5, _ = backbone_maps(backbone, torch.from_numpy(images), False, frozen_blocks)
        heat_logits, box = head(c3, c4, c5)
        heat_target = torch.from_numpy(np.stack([t[0] for t in targets]))
        return detector_loss(heat_logits, box, heat_target, [t[1] for t in targets])

    batches = prefetch(mixed_batches(pictures, mix, batch_size, steps, seed), load)
    run_steps(
        "detector",
        backbone,
        head,
        [],
        batches,
        steps,
        step_loss,
        out,
        lr,
        progress or Progress(),
        frozen_blocks,
    )
    return backbone.eval(), head.eval()


def run_steps(
    model: str,
    backbone: Backbone,
    head: nn.Module,
    extra: list[nn.Parameter],
    batches: Iterator[object],
    steps: int,
    step_loss: Callable[[object], torch.Tensor],
    out: Path,
    lr: float,
    progress: Progress,
    frozen_blocks: int,
) -> None:
    """The one fine-tuning loop: the backbone's later blocks at a quarter of the heads' learning rate, a
    cosine schedule, batch norm frozen in the backbone, progress every few steps and a checkpoint every
    CHECKPOINT_STEPS (and at the end) in `out`."""
    optimizer = _optimizer(prepare_backbone(backbone, frozen_blocks), [*head.parameters(), *extra], lr)
    started = time.perf_counter()
    running = 0.0
    for step, loaded in enumerate(batches):
        backbone.train()
        head.train()
        freeze_batch_norm(backbone)
        _step_lr(optimizer, lr, cosine_lr(step, steps))
        loss = step_loss(loaded)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running = 0.9 * running + 0.1 * loss.item() if step else loss.item()
        _report(progress, model, step, steps, running, started)
        if (step + 1) % CHECKPOINT_STEPS == 0 or step + 1 == steps:
            save_checkpoint(out, model, backbone, head, step + 1, steps)


def _report(progress: Progress, model: str, step: int, steps: int, loss: float, started: float) -> None:
    if (step + 1) % progress.every == 0 or step + 1 == steps:
        seconds = time.perf_counter() - started
        entry = {
            "model": model,
            "step": step + 1,
            "steps": steps,
            "loss": round(loss, 4),
            "seconds": round(seconds),
        }
        progress.history.append(entry)
        eta = seconds / (step + 1) * (steps - step - 1)
        progress.log(
            f"{model} step {step + 1}/{steps}: loss {loss:.4f}, {seconds:.0f} s, about {eta:.0f} s left"
        )


def save_checkpoint(
    out: Path, model: str, backbone: Backbone, head: nn.Module, step: int, steps: int
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    written = out / f"{model}.pt.writing"
    torch.save(
        {"head": head.state_dict(), "backbone": backbone.state_dict(), "step": step, "steps": steps}, written
    )
    written.replace(out / f"{model}.pt")


def load_checkpoint(path: Path, head: nn.Module) -> tuple[Backbone, nn.Module, dict]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    backbone = Backbone()
    backbone.load_state_dict(state["backbone"])
    head.load_state_dict(state["head"])
    return backbone.eval(), head.eval(), state


# ------------------------------------------------------------------ attributes


@dataclass
class Crop:
    """One garment to learn attributes from: a photo, the garment's box (None: found when decoded),
    its region (None: unknown) and what the labels say."""

    path: Path
    source: str
    box: tuple[float, float, float, float] | None
    region: str | None
    targets: dict[str, Target]


def generated_targets(attributes: dict) -> dict[str, Target]:
    """A generated item's exact labels as targets (every label of a multi-valued attribute known)."""
    targets = {}
    for key in SINGLE_HEADS:
        value = attributes.get(key)
        if isinstance(value, str) and head_spec(key).attribute.lookup(value):
            targets[key] = Target(allowed=(head_spec(key).attribute.lookup(value).ko,))
    for key in MULTI_HEADS:
        values = attributes.get(key)
        if isinstance(values, list) and values:
            known = {head_spec(key).attribute.lookup(v) for v in values} - {None}
            if known:
                names = {lb.ko for lb in known}
                targets[key] = Target(
                    present=tuple(sorted(names)),
                    absent=tuple(lb.ko for lb in head_spec(key).attribute.labels if lb.ko not in names),
                )
    return targets


def attribute_crops(
    photos: dict[str, list[RealPhoto]],
    generated: list[Sample],
    cad_boxes: dict[str, tuple[str, tuple[float, float, float, float]]],
    tag_boxes: FoundBoxes | None = None,
) -> dict[str, list[Crop]]:
    """Training crops per source. `cad_boxes`: CAD photo id -> (region, box) the detector found for its
    upper garment; CAD photos without one are left out. `tag_boxes`: as `detector_pictures`'."""
    out: dict[str, list[Crop]] = {"ccp": [], "ccp_tags": [], "clothing": [], "cad": [], "generated": []}
    for photo in photos.get("ccp", []):
        if photo.split == "train":
            out["ccp"].extend(Crop(photo.path, "ccp", it.box, it.region, it.targets) for it in photo.items)
    for photo in photos.get("ccp_tags", []):
        found = dict((tag_boxes or {}).get(photo.id, []))
        if photo.split == "train" and found:
            out["ccp_tags"].extend(
                Crop(photo.path, "ccp_tags", tuple(found[it.region]), it.region, it.targets)
                for it in photo.items
                if it.region in found
            )
    for photo in photos.get("clothing", []):
        item = photo.items[0]
        if photo.split == "train" and item.region:
            out["clothing"].append(Crop(photo.path, "clothing", None, item.region, item.targets))
    for photo in photos.get("cad", []):
        found = cad_boxes.get(photo.id)
        if photo.split == "train" and found:
            item = photo.items[0]
            out["cad"].append(Crop(photo.path, "cad", found[1], item.region or found[0], item.targets))
    for sample in generated:
        if sample.split == "train":
            out["generated"].extend(
                Crop(sample.image_path, "generated", it.box, it.region, generated_targets(it.attributes))
                for it in sample.record.items
                if it.box
            )
    return {k: v for k, v in out.items() if v}


def _label_mask(key: str, names: tuple[str, ...]) -> np.ndarray:
    attribute = head_spec(key).attribute
    mask = np.zeros(attribute.size, bool)
    for name in names:
        label = attribute.lookup(name)
        if label is not None:
            mask[label.id] = True
    return mask


@dataclass
class CropTargets:
    """A batch's targets as arrays: per single head the allowed labels (rows without a label all False),
    per multi head the known positives and the known entries."""

    region: np.ndarray
    allowed: dict[str, np.ndarray]
    positive: dict[str, np.ndarray]
    known: dict[str, np.ndarray]
    weight: dict[str, np.ndarray]
    pair: list[str | None]


def crop_targets(crops: list[Crop], set_weights: dict[tuple[str, tuple], float]) -> CropTargets:
    region = np.array([REGIONS.index(c.region) if c.region else REGIONS.index("top") for c in crops])
    allowed, weight = {}, {}
    for key in SINGLE_HEADS:
        size = head_spec(key).size
        rows = []
        for crop in crops:
            target = crop.targets.get(key)
            mask = _label_mask(key, target.allowed) if target else np.zeros(size, bool)
            if key == "category" and crop.region is None:
                pass  # a category target without a region (CAD) is valid as it is
            else:
                mask &= region_mask(key, crop.region or "top")
            rows.append(mask)
        allowed[key] = np.stack(rows)
        weight[key] = np.array(
            [set_weights.get((key, c.targets[key].allowed), 1.0) if key in c.targets else 0.0 for c in crops],
            np.float32,
        )
    positive, known = {}, {}
    for key in MULTI_HEADS:
        size = head_spec(key).size
        pos, kn = np.zeros((len(crops), size), np.float32), np.zeros((len(crops), size), bool)
        for row, crop in enumerate(crops):
            target = crop.targets.get(key)
            if target:
                pos[row] = _label_mask(key, target.present)
                kn[row] = pos[row].astype(bool) | _label_mask(key, target.absent)
        positive[key], known[key] = pos, kn
    return CropTargets(region, allowed, positive, known, weight, [pair_key(c) for c in crops])


def pair_key(crop: Crop) -> str | None:
    """What neighbours in the embedding should share: the category set and, when known exactly, the colour."""
    category = crop.targets.get("category")
    if not category:
        return None
    colour = crop.targets.get("color")
    return (
        "|".join(category.allowed) + "#" + (colour.allowed[0] if colour and len(colour.allowed) == 1 else "")
    )


def set_weights_of(pools: dict[str, list[Crop]]) -> dict[tuple[str, tuple], float]:
    """Imbalance weights per (head, allowed set): 1/sqrt(count), normalised to a mean of 1 over the rows."""
    weights = {}
    for key in SINGLE_HEADS:
        counts: dict[tuple, int] = {}
        for crops in pools.values():
            for crop in crops:
                if key in crop.targets:
                    counts[crop.targets[key].allowed] = counts.get(crop.targets[key].allowed, 0) + 1
        if not counts:
            continue
        raw = {k: 1 / math.sqrt(v) for k, v in counts.items()}
        mean = sum(raw[k] * counts[k] for k in counts) / sum(counts.values())
        weights.update({(key, k): v / mean for k, v in raw.items()})
    return weights


def balanced_chances(pools: dict[str, list[Crop]]) -> dict[str, np.ndarray]:
    """Sampling chances within the real pools that favour garments with rare labels: a crop's chance is
    1/sqrt(the count of its labels of `BALANCED_HEADS` in its pool). With the loss's own 1/sqrt(count)
    weights a rare label then counts about as much as a common one (a Blouse among clothing-dataset
    photos, a floral print among CAD's), where drawing every crop as likely left the small classes nearly
    unseen."""
    chances = {}
    for name, keys in BALANCED_HEADS.items():
        crops = pools.get(name)
        if not crops:
            continue
        labels = [
            tuple((t.allowed or t.present) if (t := c.targets.get(k)) else None for k in keys) for c in crops
        ]
        counts: dict[tuple, int] = {}
        for key in labels:
            counts[key] = counts.get(key, 0) + 1
        raw = np.array([1 / math.sqrt(counts[key]) for key in labels])
        chances[name] = raw / raw.sum()
    return chances


def set_loss(
    logits: torch.Tensor, allowed: torch.Tensor, valid: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """-log P(label in allowed) with the softmax over the valid labels; rows without a target weigh 0."""
    usable = (allowed & valid).any(dim=1) & (weight > 0)
    if not usable.any():
        return logits.sum() * 0
    logits, allowed, valid, weight = logits[usable], allowed[usable], valid[usable], weight[usable]
    everything = torch.logsumexp(logits.masked_fill(~valid, -1e4), dim=1)
    chosen = torch.logsumexp(logits.masked_fill(~(allowed & valid), -1e4), dim=1)
    return ((everything - chosen) * weight).sum() / weight.sum()


def attribute_loss(
    outputs: tuple[torch.Tensor, ...], targets: CropTargets, proxies: torch.Tensor, pair_ids: dict[str, int]
) -> torch.Tensor:
    from shared.heads import region_masks

    region = torch.from_numpy(targets.region)
    loss = outputs[0].sum() * 0
    for index, h in enumerate(heads()):
        logits = outputs[index]
        if h.multi:
            known = torch.from_numpy(targets.known[h.key])
            if known.any():
                loss = loss + F.binary_cross_entropy_with_logits(
                    logits[known], torch.from_numpy(targets.positive[h.key])[known]
                )
        else:
            valid = torch.from_numpy(region_masks(h.key))[region]
            if h.key == "category":
                # The region of a CAD garment is not labelled: its category set alone says what it may be.
                valid = valid | torch.from_numpy(targets.allowed[h.key])
            loss = loss + set_loss(
                logits,
                torch.from_numpy(targets.allowed[h.key]),
                valid,
                torch.from_numpy(targets.weight[h.key]),
            )
    rows = [i for i, p in enumerate(targets.pair) if p in pair_ids]
    if rows:
        embedding = outputs[-1][rows]
        target = torch.tensor([pair_ids[targets.pair[i]] for i in rows])
        cosine = embedding @ F.normalize(proxies, dim=1).T
        loss = loss + F.cross_entropy(EMBEDDING_SCALE * cosine, target)
    return loss


def jitter_box(
    box: tuple[float, float, float, float], rng: np.random.Generator, amount: float = 0.08
) -> tuple[float, float, float, float]:
    """The box moved and resized by up to `amount` of its size (the detector's boxes are not exact)."""
    x, y, w, h = box
    dx, dy, dw, dh = rng.uniform(-amount, amount, 4)
    return (x + dx * w, y + dy * h, w * (1 + dw), h * (1 + dh))


def load_crop(crop: Crop, rng: np.random.Generator) -> np.ndarray:
    pixels = read_pixels(crop.path)
    box = crop.box or garment_box(pixels)
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
        box = (pixels.shape[1] - box[0] - box[2], box[1], box[2], box[3])
    pixels = jitter_colour(np.ascontiguousarray(pixels), rng, 0.1)
    return crop_box(pixels, jitter_box(box, rng), CROP_ASPECT_POWER["item_crop"])


class AttributeNetwork(nn.Module):
    """The attribute model during fine-tuning: the served AttributeModel's computation with the frozen
    layers run without gradients."""

    def __init__(self, backbone: Backbone, head: AttributeHead, frozen_blocks: int):
        super().__init__()
        self.pooled = PooledBackbone(backbone)
        self.head = head
        self.frozen_blocks = frozen_blocks

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        stem, c2, c3, c4, _, top = backbone_maps(self.pooled.backbone, x, True, self.frozen_blocks)
        with torch.no_grad():
            early = torch.cat([_pool(stem), _pool(c2), _pool(c3)], dim=1)
            grid = F.adaptive_avg_pool2d(x, COLOR_GRID).flatten(1)
            histogram = self.pooled.histogram(x)
        pooled = torch.cat([early, _pool(c4), _pool(top), grid, histogram], dim=1)
        return self.head(pooled)


def train_attributes_images(
    pools: dict[str, list[Crop]],
    steps: int,
    out: Path,
    seed: int = 0,
    batch_size: int = 32,
    lr: float = 2e-3,
    progress: Progress | None = None,
    frozen_blocks: int = FROZEN_BLOCKS,
    mix: dict[str, float] = ATTRIBUTE_MIX,
    start_from: Path | None = None,
    balanced: bool = False,
) -> tuple[Backbone, AttributeHead]:
    """`start_from`: a run folder or a models folder the training starts from (`starting_point`): what only
    generated pictures teach is kept from the generated-data model. `balanced`: real garments drawn by
    `balanced_chances` rather than each as likely."""
    torch.manual_seed(seed)
    backbone, head = Backbone(), AttributeHead()
    starting_point(start_from, "attributes", backbone, head)
    network = AttributeNetwork(backbone, head, frozen_blocks)
    pairs = sorted({p for crops in pools.values() for c in crops if (p := pair_key(c))})
    pair_ids = {p: i for i, p in enumerate(pairs)}
    proxies = nn.Parameter(torch.randn(len(pairs), EMBEDDING_DIM) * 0.1)
    set_weights = set_weights_of(pools)
    rng_seed = np.random.SeedSequence(seed + 1)

    def load(batch: list[Crop]) -> tuple:
        rng = np.random.default_rng(rng_seed.spawn(1)[0])
        return to_tensor(np.stack([load_crop(c, rng) for c in batch])), crop_targets(batch, set_weights)

    def step_loss(loaded: tuple) -> torch.Tensor:
        images, targets = loaded
        return attribute_loss(network(torch.from_numpy(images)), targets, proxies, pair_ids)

    chances = balanced_chances(pools) if balanced else None
    batches = prefetch(mixed_batches(pools, mix, batch_size, steps, seed, chances), load)
    run_steps(
        "attributes",
        backbone,
        head,
        [proxies],
        batches,
        steps,
        step_loss,
        out,
        lr,
        progress or Progress(),
        frozen_blocks,
    )
    return backbone.eval(), head.eval()


# Where each served model ran its backbone (the module path in the exported graph), and what of the backbone
# a graph leaves out: the detector reads the feature maps only, not the 1280-channel head.
BACKBONE_SCOPES = {
    "detector": ("pyramid.backbone", ("head.",)),
    "attributes": ("pooled.backbone", ()),
    "style": ("pooled.backbone", ()),
}


def starting_point(start_from: Path | None, name: str, backbone: Backbone, head: nn.Module) -> None:
    """Set model `name`'s pretrained `backbone` and fresh `head` to where its training starts. None: as
    they are. A run folder (heads.pt): that run's head and, for a fine-tuned model, its own backbone. A
    models folder: the served model's head and backbone read back from its ONNX file
    (`load_weights_from_onnx`), so a committed model, fine-tuned or not, can be trained further."""
    if start_from is None:
        return
    start_from = Path(start_from)
    if (start_from / "heads.pt").is_file():
        state = torch.load(start_from / "heads.pt", map_location="cpu", weights_only=False)
        if name not in state:
            raise ValueError(f"{start_from}: the run did not train the {name} model")
        head.load_state_dict(state[name])
        if f"{name}_backbone" in state:
            backbone.load_state_dict(state[f"{name}_backbone"])
        return
    from shared.manifest import load_manifest

    entry = load_manifest(start_from).models.get(name)
    if entry is None or name not in BACKBONE_SCOPES:
        raise ValueError(f"{start_from}: no {name} model to start from")
    import onnx

    scope, left_out = BACKBONE_SCOPES[name]
    served = onnx.load(str(start_from / entry.file))  # read once for both parts
    load_weights_from_onnx(head, served, "head")
    load_weights_from_onnx(backbone, served, scope, left_out)


def load_weights_from_onnx(
    module: nn.Module, model: Path | onnx.ModelProto, scope: str, left_out: tuple[str, ...] = ()
) -> None:
    """Set `module`'s weights from a served model in which it ran as `scope` (its module path, "head" or
    "pyramid.backbone"): initializers named `<scope>.<key>` (`__fp16` when stored as float16), and
    convolutions that the export fused with the batch norm after them, read back by their node's module
    path: the convolution gets the fused weight and the batch norm becomes the identity plus the fused
    bias. The result answers as the served graph does in eval mode (and in fine-tuning, whose backbone
    norms are frozen); a head's norms learn on from there. Keys starting with one of `left_out` (parts the
    graph does not run) keep their values; any other weight missing from the graph is an error."""
    import onnx
    from onnx import numpy_helper

    graph = (onnx.load(str(model)) if isinstance(model, Path) else model).graph
    stored = {}
    for initializer in graph.initializer:
        stored[initializer.name.removesuffix("__fp16")] = numpy_helper.to_array(initializer).astype(
            np.float32
        )
    state = module.state_dict()
    values = {k: stored[f"{scope}.{k}"] for k in state if f"{scope}.{k}" in stored}
    norm_after: dict[str, tuple[str, float]] = {}  # convolution -> the batch norm right after it
    convolution = None
    for path, layer in module.named_modules():
        if isinstance(layer, nn.Conv2d):
            convolution = path
        elif isinstance(layer, nn.BatchNorm2d) and convolution is not None:
            norm_after[convolution] = (path, layer.eps)
            convolution = None
    node_prefix = "/" + scope.replace(".", "/") + "/"
    for node in graph.node:
        if node.op_type == "MatMul" and node.name.startswith(node_prefix) and node.input[1] in stored:
            # A linear layer without bias runs as x @ W^T with W^T an initializer the exporter names itself.
            linear = _module_path(node.name[len(node_prefix) :].split("/")[:-1])
            if f"{linear}.weight" in state and f"{linear}.weight" not in values:
                values[f"{linear}.weight"] = stored[node.input[1]].T
            continue
        if node.op_type != "Conv" or not node.name.startswith(node_prefix) or len(node.input) < 3:
            continue
        conv = _module_path(node.name[len(node_prefix) :].split("/")[:-1])
        if f"{conv}.weight" in values or conv not in norm_after:
            continue
        norm, eps = norm_after[conv]
        channels = state[f"{norm}.running_var"].shape[0]
        values[f"{conv}.weight"] = stored[node.input[1]]
        values[f"{norm}.weight"] = np.ones(channels, np.float32)
        values[f"{norm}.bias"] = stored[node.input[2]]
        values[f"{norm}.running_mean"] = np.zeros(channels, np.float32)
        values[f"{norm}.running_var"] = np.full(channels, 1 - eps, np.float32)  # 1 / sqrt(var + eps) = 1
    wanted = [k for k in state if not k.endswith("num_batches_tracked") and not k.startswith(left_out)]
    missing = [k for k in wanted if k not in values]
    if missing:
        source = model if isinstance(model, Path) else "the served model"
        raise ValueError(f"{source}: no stored weights for {scope} layers {missing[:4]}")
    for key in wanted:
        state[key] = torch.from_numpy(values[key]).to(state[key].dtype).reshape(state[key].shape)
    module.load_state_dict(state)


def _module_path(scopes: list[str]) -> str:
    """A module's path from the exporter's scope names, which repeat a container's path in its children's
    ("smooth", "smooth.1" -> "smooth.1"; "blocks.5", "_expand_conv" -> "blocks.5._expand_conv")."""
    parts: list[str] = []
    for name in scopes:
        joined = ".".join(parts)
        if joined and name.startswith(joined + "."):
            parts = [name]
        else:
            parts.append(name)
    return ".".join(parts)


# ------------------------------------------------------------------ a run folder for `kfashion export`


def write_run(out: Path, models: dict[str, tuple[Backbone, nn.Module]], config: dict, metrics: dict) -> None:
    """heads.pt, config.json and metrics.json as training/run.py writes them; each model also carries its
    own fine-tuned backbone (`<model>_backbone`)."""
    state: dict = {"taxonomy_version": TAXONOMY_VERSION, "config": config}
    for name, (backbone, head) in models.items():
        state[name] = head.state_dict()
        state[f"{name}_backbone"] = backbone.state_dict()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / "heads.pt")
    (out / "config.json").write_text(
        json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    (out / "metrics.json").write_text(
        json.dumps(metrics, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
