"""Evaluation metrics with the seeds' definitions, so our figures stand beside theirs.

- Detection: COCO average precision (101-point interpolation, greedy matching by score) per region at
  IoU 0.5 and averaged over IoU 0.50:0.95 (checked against pycocotools in the tests).
- Attributes: top-1 and top-3 accuracy and per-class recall (seed 000 reports category top-3).
- Styles: mAP and ML-GCN's CP, CR, CF1, OP, OR, OF1 at threshold 0.5, and their top-3 variants (a label
  counts as predicted when it is among the image's 3 best and scores at least 0.5), seed 004
  (checked against scikit-learn).
- Retrieval: top-1 / top-5 accuracy (seed 002): each item of a split queries a gallery (the training
  split's items; train items search each other leave-one-out); it succeeds when one of its k nearest
  neighbours has the same key (same garment identity where the data has one, else the same category
  and colour).
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np

from shared.detection import iou_matrix, xywh_to_xyxy

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def _match(dt_boxes: np.ndarray, dt_scores: np.ndarray, gt_boxes: np.ndarray, threshold: float) -> np.ndarray:
    """Per detection (sorted by score), whether it matches a not yet matched truth box: COCO's rule."""
    order = np.argsort(-dt_scores, kind="mergesort")
    ious = iou_matrix(dt_boxes[order], gt_boxes)
    taken = np.zeros(len(gt_boxes), bool)
    matched = np.zeros(len(order), bool)
    for d in range(len(order)):
        best, best_iou = -1, min(threshold, 1 - 1e-10)
        for g in range(len(gt_boxes)):
            if taken[g] or ious[d, g] < best_iou:
                continue
            best, best_iou = g, ious[d, g]
        if best >= 0:
            taken[best] = matched[d] = True
    result = np.zeros(len(order), bool)
    result[order] = matched
    return result


def average_precision(
    gt_per_image: Sequence[np.ndarray],
    dt_per_image: Sequence[tuple[np.ndarray, np.ndarray]],
    threshold: float,
) -> float:
    """COCO AP of one class: gt boxes and (boxes, scores) of detections per image, corner format."""
    n_gt = sum(len(g) for g in gt_per_image)
    if n_gt == 0:
        return float("nan")
    scores, hits = [], []
    for gt, (boxes, dt_scores) in zip(gt_per_image, dt_per_image, strict=True):
        if len(boxes):
            order = np.argsort(-dt_scores, kind="mergesort")
            scores.append(dt_scores[order])
            hits.append(_match(boxes[order], dt_scores[order], gt, threshold))
    if not scores:
        return 0.0
    scores_all = np.concatenate(scores)
    order = np.argsort(-scores_all, kind="mergesort")
    tp = np.cumsum(np.concatenate(hits)[order])
    fp = np.cumsum(~np.concatenate(hits)[order])
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    q = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(q.mean())


def detection_metrics(
    truth: Sequence[tuple[np.ndarray, np.ndarray]],
    predictions: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    class_names: Sequence[str],
) -> dict:
    """AP50 and AP50:95 per class.

    truth: (boxes xyxy, classes) per image; predictions: (boxes, classes, scores) per image."""
    result: dict = {}
    for c, name in enumerate(class_names):
        gts = [boxes[classes == c] for boxes, classes in truth]
        dts = [(boxes[classes == c], scores[classes == c]) for boxes, classes, scores in predictions]
        aps = [average_precision(gts, dts, t) for t in IOU_THRESHOLDS]
        result[name] = {
            "AP50": aps[0],
            "AP50_95": float(np.mean(aps)),
            "objects": int(sum(len(g) for g in gts)),
        }
    valid = [v for v in result.values() if v["objects"]]
    result["mean"] = {
        "AP50": float(np.mean([v["AP50"] for v in valid])) if valid else float("nan"),
        "AP50_95": float(np.mean([v["AP50_95"] for v in valid])) if valid else float("nan"),
    }
    return result


def labelled_items_found(
    labelled: Sequence[tuple[str, Sequence[float]]], detected: Sequence[tuple[str, Sequence[float]]]
) -> int:
    """How many labelled (region, x-y-w-h box) items of one picture a detection of the same region overlaps
    at IoU >= 0.5: issue 4's "found", used by /tagging's test and the threshold benchmark alike."""
    found = 0
    for region, box in labelled:
        boxes = [b for r, b in detected if r == region]
        if boxes:
            ious = iou_matrix(xywh_to_xyxy(np.array([box])), xywh_to_xyxy(np.array(boxes)))
            found += bool(ious.max() >= 0.5)
    return found


def classification_metrics(
    probabilities: np.ndarray, targets: np.ndarray, class_names: Sequence[str]
) -> dict:
    """Top-1 / top-3 accuracy and per-class recall over the rows whose target is known (>= 0)."""
    known = targets >= 0
    probabilities, targets = probabilities[known], targets[known]
    if len(targets) == 0:
        return {"count": 0}
    ranked = np.argsort(-probabilities, axis=1, kind="stable")
    top1 = ranked[:, 0] == targets
    top3 = (ranked[:, :3] == targets[:, None]).any(axis=1)
    recall = {
        name: float(top1[targets == c].mean()) for c, name in enumerate(class_names) if (targets == c).any()
    }
    return {
        "count": len(targets),
        "top1": float(top1.mean()),
        "top3": float(top3.mean()),
        "per_class_recall": recall,
    }


def _rates(predicted: np.ndarray, targets: np.ndarray) -> dict:
    tp = (predicted & (targets > 0)).sum(axis=0).astype(float)
    fp = (predicted & (targets == 0)).sum(axis=0).astype(float)
    fn = (~predicted & (targets > 0)).sum(axis=0).astype(float)
    cp = float(np.mean(np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)))
    cr = float(np.mean(np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)))
    op = float(tp.sum() / max(tp.sum() + fp.sum(), 1e-12))
    o_r = float(tp.sum() / max(tp.sum() + fn.sum(), 1e-12))

    def f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    return {"CP": cp, "CR": cr, "CF1": f1(cp, cr), "OP": op, "OR": o_r, "OF1": f1(op, o_r)}


def class_average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Non-interpolated AP of one class (scikit-learn's average_precision_score)."""
    order = np.argsort(-scores, kind="mergesort")
    hits = positives[order] > 0
    if not hits.any():
        return float("nan")
    # ties: scikit-learn evaluates at distinct thresholds only
    distinct = np.r_[np.flatnonzero(np.diff(scores[order])), len(scores) - 1]
    tp = np.cumsum(hits)[distinct]
    fp = (distinct + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / hits.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def multilabel_metrics(
    scores: np.ndarray,
    targets: np.ndarray,
    class_names: Sequence[str],
    threshold: float = 0.5,
    top_k: int = 3,
) -> dict:
    """mAP, per-class AP, CP/CR/CF1/OP/OR/OF1 at `threshold` and their top-k variants."""
    per_class = {
        name: class_average_precision(scores[:, c], targets[:, c]) for c, name in enumerate(class_names)
    }
    valid = [v for v in per_class.values() if not np.isnan(v)]
    predicted = scores >= threshold
    ranks = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    in_top = np.zeros_like(predicted)
    np.put_along_axis(in_top, ranks, True, axis=1)
    result = {
        "count": len(scores),
        "mAP": float(np.mean(valid)) if valid else float("nan"),
        "per_class_AP": per_class,
        **_rates(predicted, targets),
    }
    result.update({f"{k}_top{top_k}": v for k, v in _rates(predicted & in_top, targets).items()})
    return result


def retrieval_metrics(
    query: np.ndarray,
    query_keys: Sequence[str],
    gallery: np.ndarray | None = None,
    gallery_keys: Sequence[str] | None = None,
    ks: Sequence[int] = (1, 5),
) -> dict:
    """Top-k accuracy of cosine nearest neighbours (embeddings L2-normalised). Without a gallery the
    queries search each other, leave-one-out (an item never finds itself). Exact search with FAISS, in
    blocks: memory stays bounded at millions of items (a full similarity matrix would not)."""
    own = gallery is None
    gallery = query if own else gallery
    gallery_keys = np.asarray(query_keys if own else gallery_keys)
    if len(query) == 0 or len(gallery) < (2 if own else 1):
        return {"count": 0}
    depth = max(ks)
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(np.ascontiguousarray(gallery, np.float32))
    _, nearest = index.search(np.ascontiguousarray(query, np.float32), depth + own)
    found = nearest >= 0  # FAISS pads with -1 when the gallery holds fewer than asked
    if own:
        found &= nearest != np.arange(len(query))[:, None]
        # Keep the first `depth` neighbours that are not the query itself, in rank order.
        order = np.argsort(~found, axis=1, kind="stable")[:, :depth]
        nearest, found = np.take_along_axis(nearest, order, 1), np.take_along_axis(found, order, 1)
    same = found & (gallery_keys[np.where(found, nearest, 0)] == np.asarray(query_keys)[:, None])
    return {"count": len(query), **{f"top{k}": float(same[:, :k].any(axis=1).mean()) for k in ks}}
