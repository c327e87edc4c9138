"""Our metric code against the reference implementations, on the same random predictions."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from training.metrics import (
    classification_metrics,
    detection_metrics,
    multilabel_metrics,
    retrieval_metrics,
)

CLASSES = ["outer", "top", "bottom", "onepiece"]


def _random_detection_set(seed: int) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    truth, predictions = [], []
    for _ in range(25):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 300, (n, 2))
        wh = rng.uniform(20, 200, (n, 2))
        gt = np.concatenate([xy, xy + wh], 1)
        classes = rng.integers(0, 4, n)
        truth.append((gt, classes))
        # detections: jittered copies of the truth (some wrong class, some missing) plus false positives
        keep = rng.random(n) < 0.85
        dt = gt[keep] + rng.normal(0, 12, (keep.sum(), 4))
        dt_classes = np.where(rng.random(keep.sum()) < 0.1, rng.integers(0, 4, keep.sum()), classes[keep])
        extra = int(rng.integers(0, 3))
        fxy = rng.uniform(0, 300, (extra, 2))
        dt = np.concatenate([dt, np.concatenate([fxy, fxy + rng.uniform(20, 150, (extra, 2))], 1)])
        dt_classes = np.concatenate([dt_classes, rng.integers(0, 4, extra)])
        predictions.append((dt, dt_classes.astype(int), rng.random(len(dt))))
    return truth, predictions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detection_ap_equals_pycocotools(seed: int) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth, predictions = _random_detection_set(seed)
    images, annotations, results = [], [], []
    for image_id, ((gt, classes), (dt, dt_classes, scores)) in enumerate(
        zip(truth, predictions, strict=True)
    ):
        images.append({"id": image_id, "width": 600, "height": 600})
        for box, c in zip(gt, classes, strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(c),
                    "bbox": [float(box[0]), float(box[1]), float(w), float(h)],
                    "area": float(w * h),
                    "iscrowd": 0,
                }
            )
        for box, c, s in zip(dt, dt_classes, scores, strict=True):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(c),
                    "score": float(s),
                    "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": i, "name": n} for i, n in enumerate(CLASSES)],
        }
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"]  # [iou, recall, class, area, max dets]
    ours = detection_metrics(truth, predictions, CLASSES)
    for c, name in enumerate(CLASSES):
        reference = precision[:, :, c, 0, 2]
        ap50 = reference[0][reference[0] > -1].mean()
        ap = np.mean([row[row > -1].mean() for row in reference])
        assert ours[name]["AP50"] == pytest.approx(ap50, abs=1e-9)
        assert ours[name]["AP50_95"] == pytest.approx(ap, abs=1e-9)


def test_detection_perfect_and_empty() -> None:
    boxes = np.array([[0, 0, 10, 10], [20, 20, 40, 50]], float)
    classes = np.array([0, 2])
    perfect = detection_metrics([(boxes, classes)], [(boxes, classes, np.array([0.9, 0.8]))], CLASSES)
    assert perfect["outer"]["AP50"] == 1.0 and perfect["bottom"]["AP50_95"] == 1.0
    assert np.isnan(perfect["top"]["AP50"])  # no object of that class: not a zero
    missed = detection_metrics(
        [(boxes, classes)], [(np.zeros((0, 4)), np.zeros(0, int), np.zeros(0))], CLASSES
    )
    assert missed["outer"]["AP50"] == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_multilabel_metrics_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    targets = (rng.random((300, 23)) < 0.12).astype(float)
    scores = np.clip(
        targets * rng.uniform(0.2, 1.0, targets.shape) + rng.uniform(0, 0.6, targets.shape), 0, 1
    )
    scores = np.round(scores, 2)  # ties, as real scores have
    ours = multilabel_metrics(scores, targets, [str(i) for i in range(23)])
    reference_ap = [
        average_precision_score(targets[:, c], scores[:, c]) for c in range(23) if targets[:, c].any()
    ]
    assert ours["mAP"] == pytest.approx(np.mean(reference_ap), abs=1e-9)
    predicted = scores >= 0.5
    assert ours["CP"] == pytest.approx(precision_score(targets, predicted, average="macro", zero_division=0))
    assert ours["CR"] == pytest.approx(recall_score(targets, predicted, average="macro", zero_division=0))
    assert ours["OP"] == pytest.approx(precision_score(targets, predicted, average="micro", zero_division=0))
    assert ours["OR"] == pytest.approx(recall_score(targets, predicted, average="micro", zero_division=0))
    assert ours["OF1"] == pytest.approx(f1_score(targets, predicted, average="micro", zero_division=0))
    assert ours["CF1"] == pytest.approx(2 * ours["CP"] * ours["CR"] / (ours["CP"] + ours["CR"]))
    top3 = np.zeros_like(predicted)
    np.put_along_axis(top3, np.argsort(-scores, axis=1, kind="stable")[:, :3], True, axis=1)
    top3 &= predicted
    assert ours["OP_top3"] == pytest.approx(precision_score(targets, top3, average="micro", zero_division=0))
    assert ours["CR_top3"] == pytest.approx(recall_score(targets, top3, average="macro", zero_division=0))


def test_classification_top_k() -> None:
    probabilities = np.array(
        [[0.7, 0.2, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4], [0.5, 0.4, 0.1, 0.0], [0.2, 0.3, 0.5, 0.0]]
    )
    targets = np.array([0, 0, 1, -1])  # the last is unlabelled: not counted
    result = classification_metrics(probabilities, targets, ["a", "b", "c", "d"])
    assert result["count"] == 3
    assert result["top1"] == pytest.approx(1 / 3)
    assert result["top3"] == pytest.approx(2 / 3)
    assert result["per_class_recall"] == {"a": 0.5, "b": 0.0}


def test_retrieval_top_k_leave_one_out() -> None:
    embeddings = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])
    keys = ["a", "b", "a", "b"]
    # nearest of 0 is 1 (b), then 3 (b), then 2 (a); an item never finds itself
    result = retrieval_metrics(embeddings, keys, ks=(1, 3))
    assert result["count"] == 4
    assert result["top1"] == 0.5  # items 1 and 3 find each other; 0 and 2 find a "b" first
    assert result["top3"] == 1.0


def test_retrieval_against_a_gallery() -> None:
    gallery = np.eye(4)
    query = np.array([[1.0, 0, 0, 0], [0.6, 0.8, 0, 0]])
    result = retrieval_metrics(query, ["a", "a"], gallery, ["a", "b", "c", "d"], ks=(1, 2))
    assert result == {"count": 2, "top1": 0.5, "top2": 1.0}


def test_training_split_figures_read_an_evenly_spaced_subset() -> None:
    from training.evaluate import _rows

    splits = ["train"] * 10 + ["val"] * 3
    flipped = [False] * 13
    flipped[2] = True  # a mirrored copy is never evaluated
    assert _rows(splits, flipped, "val").tolist() == [10, 11, 12]
    assert _rows(splits, flipped, "train").tolist() == [0, 1, 3, 4, 5, 6, 7, 8, 9]
    assert _rows(splits, flipped, "train", limit=3).tolist() == [0, 5, 9]
