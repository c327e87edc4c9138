"""Figures on real photos, through the public API: every photo of a set's validation split is sent to
POST /tagging of a running gateway and its answer scored against the set's labels (issue 34's targets):

- CCP: AP50 per region (boxes as the README says), category top-1 / top-3 of the garments found (a found
  garment is the best-scoring detection of its region at IoU >= 0.5 with the labelled box);
- clothing-dataset: a garment found, the best garment's region and category right (README mapping);
- CAD: colour of the upper garment (the best-scoring outer, top or onepiece) in the labelled coarse colour,
  balanced accuracy (mean recall over classes) of print (6 patterns), sleeve (3 lengths),
  neckline (V / round);
- search: a catalog of clothing-dataset validation photos added through /catalog/images, each query a
  re-encoded copy (90% scale, JPEG quality 70) through /search: rank of its own photo, precision@5 of the
  same class;
- styles (no set labels them): how sure the style model is on each set's photos (`style_confidence`).

The scoring functions take plain results, so tests check them without a server.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx2
import numpy as np
from PIL import Image

from shared.detection import iou_matrix, xywh_to_xyxy
from shared.taxonomy import REGIONS
from training.metrics import detection_metrics
from training.realdata import CAD_COLOUR_OF, CAD_PRINT, RealItem, RealPhoto, read_all

UPPER = ("outer", "top", "onepiece")
TOP_K = 30  # labels asked per attribute: enough to rank every print and category
SLEEVE_CLASS = {"민소매": "none", "반팔": "short", "캡": "short", "7부소매": "long", "긴팔": "long"}
NECKLINE_CLASS = {"브이넥": "V", "라운드넥": "round"}


def _top(attribute: dict | None) -> list[str]:
    """Labels of one attribute of a /tagging item, best first."""
    if not attribute:
        return []
    return [v["value"] for v in attribute.get("top_k", [])]


# ------------------------------------------------------------------ CCP


def score_ccp(photos: Sequence[RealPhoto], results: Sequence[dict]) -> dict:
    truth, predictions = [], []
    top1 = top3 = matched = labelled = 0
    for photo, result in zip(photos, results, strict=True):
        items = result.get("items", [])
        truth.append(
            (
                xywh_to_xyxy([it.box for it in photo.items]),
                np.array([REGIONS.index(it.region) for it in photo.items], np.int64),
            )
        )
        predictions.append(
            (
                xywh_to_xyxy([it["box"] for it in items]),
                np.array([REGIONS.index(it["region"]) for it in items], np.int64),
                np.array([it["score"] for it in items], np.float32),
            )
        )
        for item in photo.items:
            labelled += 1
            match = best_match(item, items)
            if match is None:
                continue
            matched += 1
            ranked = _top(match["attributes"].get("category"))
            wanted = set(item.targets["category"].allowed)
            top1 += bool(ranked[:1] and ranked[0] in wanted)
            top3 += bool(wanted & set(ranked[:3]))
    detection = detection_metrics(truth, predictions, REGIONS)
    return {
        "photos": len(photos),
        "AP50": {r: round(detection[r]["AP50"], 4) for r in (*REGIONS, "mean")},
        "AP50_95": round(detection["mean"]["AP50_95"], 4),
        "garments": labelled,
        "found": matched,
        "category_top1": round(top1 / max(matched, 1), 4),
        "category_top3": round(top3 / max(matched, 1), 4),
    }


def best_match(item: RealItem, detected: Sequence[dict]) -> dict | None:
    """The best-scoring detection of the item's region overlapping its box at IoU >= 0.5."""
    same = [d for d in detected if d["region"] == item.region]
    if not same or item.box is None:
        return None
    ious = iou_matrix(xywh_to_xyxy([item.box]), xywh_to_xyxy([d["box"] for d in same]))[0]
    hits = [d for d, iou in zip(same, ious, strict=True) if iou >= 0.5]
    return max(hits, key=lambda d: d["score"]) if hits else None


# ------------------------------------------------------------------ clothing-dataset


def score_clothing(photos: Sequence[RealPhoto], results: Sequence[dict]) -> dict:
    found = region = category = 0
    per_class: dict[str, list[int]] = {}
    for photo, result in zip(photos, results, strict=True):
        items = result.get("items", [])
        item = photo.items[0]
        hit = [0, 0]
        if items:
            found += 1
            best = max(items, key=lambda d: d["score"])
            if best["region"] == item.region:
                region += 1
            ranked = _top(best["attributes"].get("category"))
            if ranked and ranked[0] in item.targets["category"].allowed:
                category += 1
                hit[1] = 1
        counts = per_class.setdefault(photo.label, [0, 0])
        counts[0] += 1
        counts[1] += hit[1]
    n = max(len(photos), 1)
    return {
        "photos": len(photos),
        "found": round(found / n, 4),
        "region": round(region / n, 4),
        "category": round(category / n, 4),
        "category_per_class": {k: round(v[1] / v[0], 3) for k, v in sorted(per_class.items())},
    }


# ------------------------------------------------------------------ CAD


def upper_garment(items: Sequence[dict]) -> dict | None:
    upper = [d for d in items if d["region"] in UPPER]
    return max(upper, key=lambda d: d["score"]) if upper else None


def balanced_accuracy(pairs: Sequence[tuple[str, str | None]]) -> float:
    """Mean over the true classes of the share predicted right (a missing prediction is wrong)."""
    classes = sorted({t for t, _ in pairs})
    if not classes:
        return float("nan")
    return float(np.mean([np.mean([p == c for t, p in pairs if t == c]) for c in classes]))


def score_cad(photos: Sequence[RealPhoto], results: Sequence[dict]) -> dict:
    colour_right = colour_asked = 0
    prints, sleeves, necklines = [], [], []
    no_garment = 0
    for photo, result in zip(photos, results, strict=True):
        targets = photo.items[0].targets
        garment = upper_garment(result.get("items", []))
        no_garment += garment is None
        attributes = garment["attributes"] if garment else {}
        if "color" in targets:
            colour_asked += 1
            wanted = {CAD_COLOUR_OF[c] for c in targets["color"].allowed}
            predicted = _top(attributes.get("color"))
            colour_right += bool(predicted and CAD_COLOUR_OF.get(predicted[0]) in wanted)
        if "print" in targets and len(targets["print"].present) == 1:
            ranked = [v for v in _top(attributes.get("print")) if v in CAD_PRINT.values()]
            prints.append((targets["print"].present[0], ranked[0] if ranked else None))
        if "sleeve" in targets:
            truth = SLEEVE_CLASS[targets["sleeve"].allowed[0]]
            predicted = _top(attributes.get("sleeve"))
            sleeves.append((truth, SLEEVE_CLASS.get(predicted[0]) if predicted else None))
        if (
            "neckline" in targets
            and targets["neckline"].allowed[0] in NECKLINE_CLASS
            and len(targets["neckline"].allowed) == 1
        ):
            truth = NECKLINE_CLASS[targets["neckline"].allowed[0]]
            predicted = _top(attributes.get("neckline"))
            necklines.append((truth, NECKLINE_CLASS.get(predicted[0]) if predicted else None))
    return {
        "photos": len(photos),
        "no_upper_garment": no_garment,
        "colour": round(colour_right / max(colour_asked, 1), 4),
        "colour_photos": colour_asked,
        "print_balanced": round(balanced_accuracy(prints), 4),
        "sleeve_balanced": round(balanced_accuracy(sleeves), 4),
        "neckline_balanced": round(balanced_accuracy(necklines), 4),
        "print_plain": round(float(np.mean([t == p for t, p in prints])), 4) if prints else None,
        "sleeve_plain": round(float(np.mean([t == p for t, p in sleeves])), 4) if sleeves else None,
        "neckline_plain": round(float(np.mean([t == p for t, p in necklines])), 4) if necklines else None,
    }


# ------------------------------------------------------------------ through the API


def same_category(a: RealPhoto, b: RealPhoto) -> bool:
    """Whether two single-garment photos show the same K-Fashion category by the README's mapping: their
    categories' label sets meet (a Longsleeve, {T-shirt, knitwear}, and a T-Shirt do; a Shirt does not)."""
    first, second = a.items[0].targets.get("category"), b.items[0].targets.get("category")
    return bool(first and second and set(first.allowed) & set(second.allowed))


def reencoded(data: bytes) -> bytes:
    """The same photo as another file: scaled to 90% and saved again at JPEG quality 70."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image = image.resize((int(image.width * 0.9), int(image.height * 0.9)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=70)
    return out.getvalue()


def style_confidence(results: Sequence[dict], threshold: float = 0.5) -> dict:
    """How sure the style model is on photos no person labelled a style for: the best style's mean score
    and the share of photos with a style at or over the served threshold (stated as the look's style)."""
    best = [r["styles"][0]["score"] for r in results if r.get("styles")]
    return {
        "photos": len(best),
        "best_style_mean": round(float(np.mean(best)), 3) if best else None,
        "share_over_threshold": round(float(np.mean(np.array(best) >= threshold)), 3) if best else None,
    }


@dataclass
class Client:
    url: str
    timeout: float = 120

    def tag(
        self, photos: Sequence[RealPhoto], batch: int = 8, on_progress: Callable[[int], None] | None = None
    ) -> list[dict]:
        results = []
        with httpx2.Client(timeout=self.timeout) as client:
            for start in range(0, len(photos), batch):
                chunk = photos[start : start + batch]
                response = client.post(
                    f"{self.url}/tagging",
                    params={"top_k": TOP_K},
                    files=[("files", (p.path.name, p.path.read_bytes(), "image/jpeg")) for p in chunk],
                )
                response.raise_for_status()
                results.extend(response.json()["body"]["results"])
                if on_progress:
                    on_progress(len(chunk))
        return results

    def search_quality(self, catalog: Sequence[RealPhoto], queries: int) -> dict:
        """Catalog of `catalog`'s photos; every len/queries-th of them asked again re-encoded."""
        with httpx2.Client(timeout=self.timeout) as client:
            image_of: dict[str, RealPhoto] = {}
            for start in range(0, len(catalog), 16):
                chunk = catalog[start : start + 16]
                body = client.post(
                    f"{self.url}/catalog/images",
                    files=[("files", (p.path.name, p.path.read_bytes(), "image/jpeg")) for p in chunk],
                ).json()["body"]
                for photo, result in zip(chunk, body["results"], strict=True):
                    if result.get("image_id") is not None:
                        image_of[photo.path.name] = photo
            asked = catalog[:: max(1, len(catalog) // queries)][:queries]
            ranks, precision, precision_category, no_answer = [], [], [], 0
            for photo in asked:
                response = client.post(
                    f"{self.url}/search",
                    files=[("files", ("query.jpg", reencoded(photo.path.read_bytes()), "image/jpeg"))],
                    data={"top_k": "20"},
                )
                if response.status_code != 200:
                    no_answer += 1
                    ranks.append(None)
                    continue
                results = response.json()["body"]["results"]
                files = [r["file_name"] for r in results]
                ranks.append(files.index(photo.path.name) + 1 if photo.path.name in files else None)
                distinct = list(dict.fromkeys(files))[:5]
                found = [image_of.get(f) for f in distinct]
                precision.append(
                    np.mean([f is not None and f.label == photo.label for f in found]) if found else 0.0
                )
                precision_category.append(
                    np.mean([f is not None and same_category(f, photo) for f in found]) if found else 0.0
                )
        return {
            "catalog": len(image_of),
            "queries": len(asked),
            "own_first": sum(r == 1 for r in ranks),
            "own_in_5": sum(r is not None and r <= 5 for r in ranks),
            "no_answer": no_answer,
            "precision_at_5_same_class": round(float(np.mean(precision)) if precision else 0.0, 4),
            "precision_at_5_same_category": round(
                float(np.mean(precision_category)) if precision_category else 0.0, 4
            ),
        }


@contextlib.contextmanager
def embedded_server(models: Path, timeout: float = 180) -> Iterator[str]:
    """`kfashion serve` (the embedded server) on a free loopback port over `models`, with an empty data
    folder of its own; yields its URL."""
    from kfashion.stack import free_port, spawn, wait_ready

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            "KFASHION_DATA_DIR": str(Path(tmp) / "data"),
            "KFASHION_MODELS_DIR": str(Path(models).resolve()),
            "KFASHION_GATEWAY__SYNC_MAX_IMAGES": "32",
        }
        command = [sys.executable, "-m", "kfashion", "serve", "--port", str(port), "--log-level", "warning"]
        url = f"http://127.0.0.1:{port}"
        process = spawn("gateway", command, env, Path(tmp), url)
        try:
            wait_ready(f"{url}/readyz", process, timeout)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(process.pid, 0)


def measure(
    models: Path,
    realdata: str | Path | None = None,
    limit: int | None = None,
    catalog: int = 300,
    queries: int = 60,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Every figure above for one models folder, on each set's validation split, through a fresh embedded
    server (an empty catalog of its own)."""
    photos = {
        name: [p for p in items if p.split == "val"][:limit] for name, items in read_all(realdata).items()
    }
    figures: dict = {"models": str(models)}
    with embedded_server(models) as url:
        client = Client(url)
        for name, score in (("ccp", score_ccp), ("clothing", score_clothing), ("cad", score_cad)):
            started = time.perf_counter()
            results = client.tag(photos[name])
            figures[name] = score(photos[name], results)
            figures[name]["style"] = style_confidence(results)
            figures[name]["seconds"] = round(time.perf_counter() - started, 1)
            log(f"{name}: {figures[name]}")
        started = time.perf_counter()
        figures["search"] = client.search_quality(photos["clothing"][:catalog], queries)
        figures["search"]["seconds"] = round(time.perf_counter() - started, 1)
        log(f"search: {figures['search']}")
    return figures


def record(models: Path, figures: dict) -> None:
    """Write the real-photo figures into the models folder's manifest: the detector's (CCP detection,
    clothing-dataset garments found), the attribute model's (categories, CAD, search) and the style
    model's (how sure it is on each set's photos)."""
    from shared.manifest import load_manifest, write_manifest

    manifest = load_manifest(models)
    parts = {
        "detector": {
            "ccp": {k: figures["ccp"][k] for k in ("photos", "AP50", "AP50_95")},
            "clothing": {k: figures["clothing"][k] for k in ("photos", "found", "region")},
        },
        "attributes": {
            "ccp": {k: figures["ccp"][k] for k in ("found", "category_top1", "category_top3")},
            "clothing": {k: figures["clothing"][k] for k in ("photos", "category")},
            "cad": {k: v for k, v in figures["cad"].items() if k != "seconds"},
            "search": {k: v for k, v in figures["search"].items() if k != "seconds"},
        },
        "style": {
            name: figures[name]["style"] for name in ("ccp", "clothing", "cad") if "style" in figures[name]
        },
    }
    for name, values in parts.items():
        if name in manifest.models:
            manifest.models[name].metrics["real_val"] = values
    write_manifest(models, manifest)
