"""Training samples from a K-Fashion-format dataset (real or generated), with their split and targets."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.heads import head, region_mask
from shared.labels import Item, LabelError, LabelRecord, iter_records
from shared.taxonomy import REGIONS, STYLE

SPLITS = ("train", "val", "test")


@dataclass
class Sample:
    label_path: Path
    image_path: Path
    record: LabelRecord
    split: str


def _hash_split(name: str) -> str:
    """8:1:1 by a hash of the file name, for datasets without split.json (the real K-Fashion)."""
    bucket = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def load_samples(root: str | Path, limit: int | None = None) -> tuple[list[Sample], dict]:
    """Every readable, image-backed label file under `root` with its split, and what was skipped."""
    root = Path(root)
    split_of: dict[str, str] = {}
    split_file = root / "split.json"
    if split_file.is_file():
        for split, paths in json.loads(split_file.read_text(encoding="utf-8")).items():
            split_of.update(dict.fromkeys(paths, split))
    samples: list[Sample] = []
    skipped = {"unreadable": 0, "no_image": 0, "no_items": 0}
    for found, result in iter_records([root]):
        if isinstance(result, LabelError):
            skipped["unreadable"] += 1
            continue
        if found.image_path is None:
            skipped["no_image"] += 1
            continue
        if not any(item.box for item in result.items):
            skipped["no_items"] += 1
            continue
        relative = found.label_path.relative_to(root).as_posix()
        split = split_of.get(relative) or _hash_split(found.label_path.name)
        samples.append(Sample(found.label_path, found.image_path, result, split))
        if limit and len(samples) >= limit:
            break
    summary = {
        "root": str(root),
        "images": len(samples),
        "skipped": skipped,
        "splits": {s: sum(x.split == s for x in samples) for s in SPLITS},
    }
    made_by = root / "dataset.json"  # written by `kfashion synth`: generator versions label differently
    if made_by.is_file():
        summary["generator"] = json.loads(made_by.read_text(encoding="utf-8")).get("generator")
    return samples, summary


# ------------------------------------------------------------------ targets


def single_target(key: str, region: str, value: object) -> int:
    """Label id of a single-valued attribute, or -1 (missing, unknown, or not valid for the region)."""
    if not isinstance(value, str):
        return -1
    label = head(key).attribute.lookup(value)
    if label is None or not region_mask(key, region)[label.id]:
        return -1
    return label.id


def multi_target(key: str, values: object) -> np.ndarray | None:
    """Multi-hot vector of a list-valued attribute, or None when the attribute is missing."""
    spec = head(key)
    if not isinstance(values, list) or not values:
        return None
    vector = np.zeros(spec.size, np.float32)
    known = False
    for value in values:
        label = spec.attribute.lookup(value)
        if label is not None:
            vector[label.id] = 1.0
            known = True
    return vector if known else None


def style_target(record: LabelRecord) -> np.ndarray | None:
    """Multi-hot over the 23 styles (main and sub-style), or None if the image has no known style."""
    vector = np.zeros(STYLE.size, np.float32)
    for style in record.styles:
        for name in (style.style, style.sub_style):
            label = STYLE.lookup(name) if name else None
            if label is not None:
                vector[label.id] = 1.0
    return vector if vector.any() else None


def retrieval_key(item: Item) -> str:
    """What a retrieval hit must share with its query: category and colour (the generated data has no
    garment identities)."""
    return f"{item.attributes.get('category')}|{item.attributes.get('color')}"


LAYERED_REGIONS = ("top", "onepiece")  # what an outer can cover


def shows_outer(items: list[Item]) -> bool:
    """Whether a picture's labelled garments include a boxed outer: its tops and onepieces are then partly
    hidden (only what shows is boxed), the hardest case for both their boxes and their colour."""
    return any(item.region == "outer" for item in items if item.box)


def region_index(region: str) -> int:
    return REGIONS.index(region)
