"""Metrics of trained heads on every split, side by side (seed 004's quality monitoring), and the report."""

from __future__ import annotations

import numpy as np

from shared.detection import Detection, xywh_to_xyxy
from shared.heads import MULTI_HEADS, SINGLE_HEADS, head_probabilities, heads
from shared.labels import Item
from shared.taxonomy import REGIONS, STYLE
from training.attributes import AttributeHead, AttributeTargets, predict_attributes
from training.data import SPLITS, Sample, style_target
from training.detector import DetectorHead
from training.detector import predict as predict_detections
from training.features import FeatureCache
from training.metrics import classification_metrics, detection_metrics, multilabel_metrics, retrieval_metrics
from training.style import StyleHead, predict_styles

# The training split's figures and the per-epoch validation read at most this many rows (evenly spaced):
# enough for a figure to +-1 point, and bounded on the full K-Fashion (960 k training images).
SUBSET_ROWS = 20_000


def evenly_spaced(count: int, limit: int | None) -> np.ndarray:
    """Indices into `count` things: all of them, or with `limit` at most that many, evenly spaced."""
    if limit is None or count <= limit:
        return np.arange(count, dtype=np.int64)
    return np.linspace(0, count - 1, limit).round().astype(np.int64)


def _rows(split_of_row: list[str], flipped: list[bool], split: str, limit: int | None = None) -> np.ndarray:
    """The unmirrored rows of a split; with `limit`, at most that many of them, evenly spaced."""
    rows = np.array(
        [i for i, (s, f) in enumerate(zip(split_of_row, flipped, strict=True)) if s == split and not f],
        np.int64,
    )
    return rows[evenly_spaced(len(rows), limit)]


def _splits(validation: bool) -> tuple[str, ...]:
    """The per-epoch validation reads the val split alone; the final figures every split."""
    return ("val",) if validation else SPLITS


def _limit(split: str, validation: bool) -> int | None:
    """Whole val and test splits for the final figures; a subset for the training split and for the
    per-epoch validation."""
    return SUBSET_ROWS if split == "train" or validation else None


def evaluate_detector(
    head: DetectorHead, samples: list[Sample], cache: FeatureCache, validation: bool = False
) -> dict:
    features = cache.detector
    splits = [samples[s].split for s in features.sample]
    result = {}
    for split in _splits(validation):
        rows = _rows(splits, features.flipped, split, _limit(split, validation))
        if not len(rows):
            continue
        sizes = [_image_size(samples[features.sample[r]]) for r in rows]
        predictions = predict_detections(head, features, rows, sizes)
        truth = [detection_truth(samples[features.sample[r]].record.items) for r in rows]
        predicted = [detection_arrays(dets) for dets in predictions]
        result[split] = detection_metrics(truth, predicted, REGIONS)
    return result


def detection_truth(items: list[Item]) -> tuple[np.ndarray, np.ndarray]:
    """Labelled boxes (corner format) and region indices of an image, as detection_metrics takes them."""
    boxed = [it for it in items if it.box]
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (it.box for it in boxed)], np.float64)
    return boxes.reshape(-1, 4), np.array([REGIONS.index(it.region) for it in boxed], np.int64)


def detection_arrays(detections: list[Detection]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted boxes (corner format), region indices and scores of an image."""
    boxes = xywh_to_xyxy(np.array([d.box for d in detections], np.float64))
    return (
        boxes.astype(np.float64),
        np.array([REGIONS.index(d.region) for d in detections], np.int64),
        np.array([d.score for d in detections], np.float64),
    )


def _image_size(sample: Sample) -> tuple[int, int]:
    """(width, height) for clipping boxes; a label without a size clips nothing."""
    image = sample.record.image
    return (image.width or 10**6, image.height or 10**6)


def attribute_metrics(
    probabilities: dict[str, np.ndarray], targets: AttributeTargets, rows: np.ndarray
) -> dict:
    """Per head, on the given rows: top-1/top-3 for single-label heads, multi-label metrics over the rows
    that carry a multi-label attribute."""
    result: dict = {}
    for h in heads():
        names = [lb.ko for lb in h.attribute.labels]
        if h.multi:
            present = rows[targets.multi_present[h.key][rows]]
            result[h.key] = multilabel_metrics(
                probabilities[h.key][present], targets.multi[h.key][present], names
            )
        else:
            result[h.key] = classification_metrics(
                probabilities[h.key][rows], targets.single[h.key][rows], names
            )
    return result


def evaluate_attributes(
    head: AttributeHead,
    samples: list[Sample],
    cache: FeatureCache,
    targets: AttributeTargets,
    validation: bool = False,
) -> dict:
    """Every head's figures per split and, except in the per-epoch validation, the embedding's: each
    split's items search the whole training split (training items search each other, leave-one-out)."""
    crops = cache.crops
    splits = [samples[s].split for s in crops.sample]
    retrieval = not validation
    wanted = {
        split: _rows(splits, crops.flipped, split, _limit(split, validation)) for split in _splits(validation)
    }
    gallery_rows = _rows(splits, crops.flipped, "train") if retrieval else np.zeros(0, np.int64)
    needed = np.unique(np.concatenate([*wanted.values(), gallery_rows]))
    logits, embeddings = predict_attributes(head, crops.values, needed)
    local_targets = targets.take(needed)
    probabilities = head_probabilities(logits, local_targets.region)
    position = np.full(len(splits), -1, np.int64)
    position[needed] = np.arange(len(needed))  # row of the cache -> row of the predictions
    result: dict = {}
    for split, rows in wanted.items():
        if not len(rows):
            continue
        split_result = attribute_metrics(probabilities, local_targets, position[rows])
        if retrieval:
            keys = [targets.pair_key[r] for r in rows]
            if split == "train":
                split_result["retrieval"] = retrieval_metrics(embeddings[position[rows]], keys)
            else:
                split_result["retrieval"] = retrieval_metrics(
                    embeddings[position[rows]],
                    keys,
                    embeddings[position[gallery_rows]],
                    [targets.pair_key[r] for r in gallery_rows],
                )
        result[split] = split_result
    return result


def evaluate_style(
    head: StyleHead, samples: list[Sample], cache: FeatureCache, validation: bool = False
) -> dict:
    person = cache.person
    splits = [samples[s].split for s in person.sample]
    result = {}
    for split in _splits(validation):
        rows = _rows(splits, person.flipped, split, _limit(split, validation))
        labelled = [(r, t) for r in rows if (t := style_target(samples[person.sample[r]].record)) is not None]
        if not labelled:
            continue
        scores = predict_styles(head, person.values, np.array([r for r, _ in labelled]))
        result[split] = multilabel_metrics(
            scores, np.stack([t for _, t in labelled]), [lb.ko for lb in STYLE.labels]
        )
    return result


# ------------------------------------------------------------------ the report

HEADLINE = (
    ("detector", "mean", "AP50", "detection AP50 (mean of regions)"),
    ("attributes", "category", "top3", "category top-3"),
    ("attributes", "color", "top1", "colour top-1"),
    ("style", None, "mAP", "style mAP"),
    ("attributes", "retrieval", "top5", "embedding retrieval top-5"),
)


def headline(metrics: dict) -> dict[str, dict[str, float]]:
    """The figures the issue's thresholds speak of, per split."""
    out: dict[str, dict[str, float]] = {}
    for model, section, key, label in HEADLINE:
        for split, values in metrics.get(model, {}).items():
            value = (values[section] if section else values).get(key)
            if value is not None:
                out.setdefault(label, {})[split] = float(value)
    for region in REGIONS:
        for split, values in metrics.get("detector", {}).items():
            if values.get(region, {}).get("objects"):
                out.setdefault(f"detection AP50 {region}", {})[split] = float(values[region]["AP50"])
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


def _section(title: str, columns: list[str]) -> list[str]:
    """A report section's heading and its table's header rows."""
    return ["", f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def markdown_report(metrics: dict, title: str) -> str:
    lines = [f"# {title}", *_section("Headline (train / val / test)", ["metric", *SPLITS])]
    for label, values in headline(metrics).items():
        lines.append(f"| {label} | " + " | ".join(_fmt(values.get(s)) for s in SPLITS) + " |")
    if "detector" in metrics:
        lines += _section("Detection per region", ["region", "split", "AP50", "AP50:95", "objects"])
        for split, values in metrics["detector"].items():
            for region in REGIONS:
                v = values[region]
                lines.append(
                    f"| {region} | {split} | {_fmt(v['AP50'])} | {_fmt(v['AP50_95'])} | {v['objects']} |"
                )
    if "attributes" in metrics:
        lines += _section("Attributes", ["head", "split", "count", "top-1 / mAP", "top-3 / CF1"])
        for split, values in metrics["attributes"].items():
            for key in SINGLE_HEADS:
                v = values[key]
                lines.append(
                    f"| {key} | {split} | {v.get('count', 0)} | {_fmt(v.get('top1'))} "
                    f"| {_fmt(v.get('top3'))} |"
                )
            for key in MULTI_HEADS:
                v = values[key]
                lines.append(
                    f"| {key} | {split} | {v.get('count', 0)} | {_fmt(v.get('mAP'))} | {_fmt(v.get('CF1'))} |"
                )
    if "style" in metrics:
        lines += _section(
            "Styles", ["split", "mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "CF1 top-3", "OF1 top-3"]
        )
        for split, v in metrics["style"].items():
            cells = [
                v["mAP"],
                v["CP"],
                v["CR"],
                v["CF1"],
                v["OP"],
                v["OR"],
                v["OF1"],
                v["CF1_top3"],
                v["OF1_top3"],
            ]
            lines.append(f"| {split} | " + " | ".join(_fmt(c) for c in cells) + " |")
        test = metrics["style"].get("test") or next(iter(metrics["style"].values()))
        lines += ["", "Per-style AP (test):", "", "| style | AP |", "|---|---|"]
        lines += [f"| {name} | {_fmt(ap)} |" for name, ap in test["per_class_AP"].items()]
    return "\n".join(lines) + "\n"
