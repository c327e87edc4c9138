"""The real-photo training run (`kfashion train-real`), stage by stage:

1. detector: fine-tuned on CCP, clothing-dataset and generated pictures (training/finetune.py);
2. boxes: the fine-tuned detector finds the upper garment of every CAD training photo (CAD has no boxes);
3. attributes: fine-tuned on the garments of all three sets and generated items;
4. the run folder `kfashion export` reads (heads.pt with each model's own backbone, config.json,
   metrics.json: figures on the real validation photos, computed in torch).

Each stage checkpoints into the run folder and the next reads it, so a stage can be run again alone. The
style model is not trained here (no real set labels styles): export keeps the models folder's one.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from shared.detection import decode_detections, xywh_to_xyxy
from shared.heads import head_probabilities, heads
from shared.preprocess import CROP_ASPECT_POWER, DETECTOR_SIZE, crop_box, letterbox, to_tensor
from shared.taxonomy import REGIONS
from training.attributes import AttributeHead, AttributeModel
from training.backbone import Backbone
from training.data import load_samples
from training.detector import STRIDE, Detector, DetectorHead
from training.finetune import (
    ATTRIBUTE_MIX,
    DETECTOR_MIX,
    FROZEN_BLOCKS,
    FoundBoxes,
    Progress,
    attribute_crops,
    detector_pictures,
    load_checkpoint,
    read_pixels,
    save_checkpoint,
    starting_point,
    train_attributes_images,
    train_detector_images,
    with_generated_share,
    with_tagged_share,
)
from training.metrics import detection_metrics
from training.realdata import RealPhoto, garment_box, read_all, read_ccp_tagged, realdata_root, summary
from training.style import StyleHead
from training.style_photos import calibrate_style

STAGES = ("detector", "boxes", "attributes", "style")
DEFAULT_STAGES = STAGES[:3]  # the style stage is asked for by name (training/style_photos.py)
# What each output learned from (the manifest's training_data.learned_from; docs/models.md): "real" labels
# given by people, "derived" labels computed from real pixels (CCP garments' colours), "generated" pictures.
LEARNED_FROM = {
    "detector": {"boxes": ["real: CCP masks", "real: clothing-dataset (box from the photo)", "generated"]},
    "attributes": {
        "category": ["real: CCP, CAD, clothing-dataset", "generated"],
        "color": ["real: CAD (10 coarse colours)", "derived: CCP garment pixels", "generated"],
        "print": ["real: CAD (solid, floral, dot, graphic, check, stripe)", "generated"],
        "sleeve": ["real: CAD (none / short / long)", "real: clothing-dataset Longsleeve", "generated"],
        "neckline": ["real: CAD (V / round / other)", "generated"],
        "length": ["real: CCP and clothing-dataset shorts", "generated"],
        "collar": ["real: clothing-dataset Polo", "generated"],
        "fit": ["generated"],
        "material": ["generated"],
        "detail": ["generated"],
        "embedding": ["real: category (and derived colour) pairs", "generated"],
    },
    "style": {"logits": ["generated"]},
}


def learned_from(config: RealRunConfig) -> dict:
    """LEARNED_FROM as a run's settings make it (tag-only photos, the style stage)."""
    sources = copy.deepcopy(LEARNED_FROM)
    if config.tagged_photos:
        sources["detector"]["boxes"].insert(
            1, "real: CCP image-level tags (boxes from the starting detector)"
        )
        sources["attributes"]["category"][0] = "real: CCP (masks and image-level tags), CAD, clothing-dataset"
    if "style" in config.stages:
        sources["style"]["logits"].append("real photos without style labels: scores shrunk to base rates")
    return sources


UPPER = ("outer", "top", "onepiece")
SCORE_THRESHOLD = 0.2  # the served detector's (export.DETECTOR_SCORE_THRESHOLD)


@dataclass
class RealRunConfig:
    out: str
    realdata: str | None = None  # default: KFASHION_REALDATA or ../shared/realdata
    generated: str | None = None  # a K-Fashion-format folder (`kfashion synth`) for what real sets lack
    stages: tuple[str, ...] = DEFAULT_STAGES
    detector_steps: int = 900
    attribute_steps: int = 700
    detector_batch: int = 16
    attribute_batch: int = 32
    lr: float = 2e-3
    frozen_blocks: int = FROZEN_BLOCKS  # backbone blocks that keep their ImageNet weights (16: heads only)
    generated_share: float | None = None  # of each batch; None: DETECTOR_MIX's and ATTRIBUTE_MIX's own
    start_from: str | None = None  # a run or models folder the models start from (finetune.starting_point)
    balanced: bool = False  # attribute crops drawn favouring rare labels (finetune.balanced_chances)
    tagged_photos: bool = False  # CCP's tag-only photos too, boxed by a detector (find_tagged_garments)
    seed: int = 0
    limit: int | None = None  # at most this many photos of each set and split (quick runs, tests)
    shuffle_labels: bool = False  # the control: every photo gets another photo's labels
    threads: int = 0


@dataclass
class RealRunResult:
    timings: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


def load_photos(config: RealRunConfig) -> dict[str, list[RealPhoto]]:
    photos = read_all(config.realdata)
    if config.tagged_photos:
        photos["ccp_tags"] = read_ccp_tagged(realdata_root(config.realdata) / "ccp")
    if config.limit:
        photos = {
            name: [p for p in items if p.split == "train"][: config.limit]
            + [p for p in items if p.split == "val"][: config.limit]
            for name, items in photos.items()
        }
    if config.shuffle_labels:
        rng = np.random.default_rng(config.seed + 99)
        for items in photos.values():
            train = [p for p in items if p.split == "train"]
            labels = [p.items for p in train]
            for photo, k in zip(train, rng.permutation(len(train)), strict=True):
                photo.items = labels[k]
    return photos


def train_real(config: RealRunConfig, log: Callable[[str], None] = print) -> RealRunResult:
    start_from = Path(config.start_from) if config.start_from else None
    if "style" in config.stages and (start_from is None or (start_from / "heads.pt").is_file()):
        # checked before any stage trains, not after an hour of them
        raise ValueError("the style stage starts from a models folder's style model (--start-from models)")
    if config.threads:
        torch.set_num_threads(config.threads)
    detector_mix, attribute_mix = DETECTOR_MIX, ATTRIBUTE_MIX
    if config.generated_share is not None:
        detector_mix = with_generated_share(DETECTOR_MIX, config.generated_share)
        attribute_mix = with_generated_share(ATTRIBUTE_MIX, config.generated_share)
    if config.tagged_photos:
        detector_mix, attribute_mix = with_tagged_share(detector_mix), with_tagged_share(attribute_mix)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    photos = load_photos(config)
    generated = load_samples(config.generated)[0] if config.generated else []
    result = RealRunResult()
    progress = Progress(log)
    tag_photos = [p for p in photos.get("ccp_tags", []) if p.split == "train"]
    if "detector" in config.stages:
        started = time.perf_counter()
        # Tag-only photos are boxed by the detector the run starts from (self-training).
        teacher = _teacher(None, start_from) if tag_photos else None
        tag_boxes = find_tagged_garments(teacher, tag_photos, log) if teacher else {}
        pictures = detector_pictures(photos, generated, tag_boxes)
        log("detector pictures: " + ", ".join(f"{k} {len(v)}" for k, v in pictures.items()))
        train_detector_images(
            pictures,
            config.detector_steps,
            out,
            config.seed,
            config.detector_batch,
            config.lr,
            progress,
            config.frozen_blocks,
            detector_mix,
            start_from,
        )
        result.timings["detector_s"] = round(time.perf_counter() - started)
    if "boxes" in config.stages:
        started = time.perf_counter()
        teacher = _teacher(out, start_from)
        found = find_upper_garments(teacher, [p for p in photos.get("cad", []) if p.split == "train"], log)
        (out / "cad_boxes.json").write_text(json.dumps(found) + "\n")
        if tag_photos and teacher:
            tagged = find_tagged_garments(teacher, tag_photos, log)
            (out / "ccp_tag_boxes.json").write_text(json.dumps(tagged) + "\n")
        result.timings["boxes_s"] = round(time.perf_counter() - started)
    if "attributes" in config.stages:
        started = time.perf_counter()
        boxes_file = out / "cad_boxes.json"
        cad_boxes = (
            {k: (v[0], tuple(v[1])) for k, v in json.loads(boxes_file.read_text()).items()}
            if boxes_file.is_file()
            else {}
        )
        pools = attribute_crops(photos, generated, cad_boxes, _tag_boxes(out, tag_photos, start_from, log))
        log("attribute crops: " + ", ".join(f"{k} {len(v)}" for k, v in pools.items()))
        train_attributes_images(
            pools,
            config.attribute_steps,
            out,
            config.seed,
            config.attribute_batch,
            config.lr,
            progress,
            config.frozen_blocks,
            attribute_mix,
            start_from,
            config.balanced,
        )
        result.timings["attributes_s"] = round(time.perf_counter() - started)
    if "style" in config.stages:
        started = time.perf_counter()
        tag_boxes = _tag_boxes(out, tag_photos, start_from, log)
        backbone, head, figures = calibrate_style(
            start_from, photos, generated, tag_boxes, config.seed, log=log
        )
        save_checkpoint(out, "style", backbone, head, 1, 1)
        result.metrics["style_photos"] = figures
        result.timings["style_s"] = round(time.perf_counter() - started)
    result.metrics = {**validate(out, photos, log), **result.metrics}
    write_run_folder(out, config, photos, generated, result, progress.history)
    return result


def _detector(out: Path) -> Detector | None:
    if not (out / "detector.pt").is_file():
        return None
    backbone, head, _ = load_checkpoint(out / "detector.pt", DetectorHead())
    return Detector(backbone, head).eval()


def _attributes(out: Path) -> AttributeModel | None:
    if not (out / "attributes.pt").is_file():
        return None
    backbone, head, _ = load_checkpoint(out / "attributes.pt", AttributeHead())
    return AttributeModel(backbone, head).eval()


@torch.no_grad()
def detect(model: Detector, photos: list[RealPhoto], batch: int = 16) -> list[list]:
    """Detections of each photo, decoded as the detector service does."""
    found = []
    for start in range(0, len(photos), batch):
        chunk = photos[start : start + batch]
        pixels = [read_pixels(p.path) for p in chunk]
        boxed = [letterbox(px, DETECTOR_SIZE) for px in pixels]
        peaks, size, offset, _ = model(torch.from_numpy(to_tensor(np.stack([b[0] for b in boxed]))))
        for k in range(len(chunk)):
            found.append(
                decode_detections(
                    peaks[k].numpy(),
                    size[k].numpy(),
                    offset[k].numpy(),
                    STRIDE,
                    boxed[k][1],
                    pixels[k].shape[1],
                    pixels[k].shape[0],
                    score_threshold=SCORE_THRESHOLD,
                )
            )
    return found


def _teacher(out: Path | None, start_from: Path | None) -> Detector | None:
    """The detector that boxes photos labelled without boxes: the run's own (`out`), else its start's."""
    model = _detector(out) if out else None
    if model is None and start_from is not None:
        backbone, head = Backbone(), DetectorHead()
        starting_point(start_from, "detector", backbone, head)
        model = Detector(backbone, head).eval()
    return model


def _tag_boxes(
    out: Path, photos: list[RealPhoto], start_from: Path | None, log: Callable[[str], None]
) -> FoundBoxes:
    """The tag-only photos' boxes in this run: the boxes stage's (ccp_tag_boxes.json), or where it did not
    run, found now by `_teacher` and written there."""
    boxes_file = out / "ccp_tag_boxes.json"
    if photos and not boxes_file.is_file():
        teacher = _teacher(out, start_from)
        boxes_file.write_text(
            json.dumps(find_tagged_garments(teacher, photos, log) if teacher else {}) + "\n"
        )
    return json.loads(boxes_file.read_text()) if photos else {}


def find_upper_garments(
    model: Detector | None, photos: list[RealPhoto], log: Callable[[str], None] = print
) -> dict[str, tuple[str, list[float]]]:
    """CAD photo id -> (region, box) of the best-scoring outer, top or onepiece the detector (`_teacher`)
    finds, of the labelled region when the labels name one."""
    if model is None:
        log("no detector: CAD photos get no boxes")
        return {}
    found = {}
    for photo, detections in zip(photos, detect(model, photos), strict=True):
        upper = [d for d in detections if d.region in UPPER]
        wanted = photo.items[0].region
        if wanted:
            upper = [d for d in upper if d.region == wanted] or upper
        if upper:
            best = max(upper, key=lambda d: d.score)
            found[photo.id] = (best.region, [round(v, 1) for v in best.box])
    log(f"upper garments found in {len(found)} of {len(photos)} CAD photos")
    return found


def find_tagged_garments(
    model: Detector, photos: list[RealPhoto], log: Callable[[str], None] = print
) -> FoundBoxes:
    """CCP tag-only photo id -> (region, box) for every region its tags name: the best-scoring detection of
    that region. A photo in which a tagged region is not found is left out (training on it would teach
    that garment's absence); detections of regions the tags do not name are dropped. On the masked
    validation photos, their regions as tags, the committed detector keeps 109 of 116 photos, 86% of the
    boxes within IoU 0.5 of the labelled one (tops 75%; docs/models.md)."""
    found: FoundBoxes = {}
    for photo, detections in zip(photos, detect(model, photos), strict=True):
        boxes = []
        for item in photo.items:
            same = [d for d in detections if d.region == item.region]
            if not same:
                break
            boxes.append((item.region, tuple(round(v, 1) for v in max(same, key=lambda d: d.score).box)))
        else:
            found[photo.id] = boxes
    log(f"every tagged garment found in {len(found)} of {len(photos)} tag-only CCP photos")
    return found


@torch.no_grad()
def validate(
    out: Path, photos: dict[str, list[RealPhoto]], log: Callable[[str], None] = print, split: str = "val"
) -> dict:
    """Quick figures on a split (the validation one by default), in torch on labelled boxes: the detector's
    AP50 on CCP, the attribute model's category top-1 on CCP garments and clothing-dataset photos, colour
    on CCP (derived labels). The figures that count are the API's (bench/real_photos.py)."""
    metrics: dict = {}
    detector = _detector(out)
    ccp = [p for p in photos.get("ccp", []) if p.split == split]
    if detector is not None and ccp:
        found = detect(detector, ccp)
        truth = [
            (
                xywh_to_xyxy([it.box for it in p.items]),
                np.array([REGIONS.index(it.region) for it in p.items]),
            )
            for p in ccp
        ]
        predicted = [
            (
                xywh_to_xyxy([d.box for d in ds]),
                np.array([REGIONS.index(d.region) for d in ds]),
                np.array([d.score for d in ds], np.float32),
            )
            for ds in found
        ]
        ap = detection_metrics(truth, predicted, REGIONS)
        metrics["detector"] = {
            f"{split}_ccp": {
                r: {"AP50": ap[r]["AP50"], "AP50_95": ap[r]["AP50_95"]} for r in (*REGIONS, "mean")
            }
        }
        log(f"detector, CCP {split} AP50: {ap['mean']['AP50']:.3f}")
    model = _attributes(out)
    if model is not None:
        figures = {}
        clothing = [p for p in photos.get("clothing", []) if p.split == split]
        for name, chosen in (("ccp", ccp), ("clothing", clothing)):
            crops, items = [], []
            for photo in chosen:
                pixels = read_pixels(photo.path)
                for item in photo.items:
                    if item.region:
                        box = item.box or garment_box(pixels)
                        crops.append(crop_box(pixels, box, CROP_ASPECT_POWER["item_crop"]))
                        items.append(item)
            if not crops:
                continue
            logits: dict[str, list] = {h.key: [] for h in heads()}
            for start in range(0, len(crops), 32):
                outputs = model(torch.from_numpy(to_tensor(np.stack(crops[start : start + 32]))))
                for index, h in enumerate(heads()):
                    logits[h.key].append(outputs[index].numpy())
            regions = np.array([REGIONS.index(it.region) for it in items])
            probabilities = head_probabilities({k: np.concatenate(v) for k, v in logits.items()}, regions)
            figures[name] = {}
            for key in ("category", "color"):
                rows = [i for i, it in enumerate(items) if key in it.targets]
                if rows:
                    labels = next(h for h in heads() if h.key == key).attribute.labels
                    right = [
                        labels[int(probabilities[key][i].argmax())].ko in items[i].targets[key].allowed
                        for i in rows
                    ]
                    figures[name][f"{key}_top1"] = float(np.mean(right))
        metrics["attributes"] = {f"{split}_real": figures}
        log(f"attributes, {split}: {json.dumps(figures)}")
    return metrics


def write_run_folder(
    out: Path,
    config: RealRunConfig,
    photos: dict[str, list[RealPhoto]],
    generated: list,
    result: RealRunResult,
    history: list[dict],
) -> None:
    from training.finetune import write_run

    models = {}
    heads = (("detector", DetectorHead()), ("attributes", AttributeHead()), ("style", StyleHead(np.eye(23))))
    for name, head in heads:
        if (out / f"{name}.pt").is_file():
            backbone, head, _ = load_checkpoint(out / f"{name}.pt", head)
            models[name] = (backbone, head)
    data_summary = {
        "real": {
            "sets": summary(photos),
            "root": "../shared/realdata (CCP, CAD, clothing-dataset; docs/models.md)",
        },
        "generated": {"images": len(generated), "root": config.generated},
        "learned_from": learned_from(config),
    }
    run_config = {**asdict(config), "data_summary": data_summary, "timings": result.timings}
    write_run(out, models, run_config, result.metrics)
    (out / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history), encoding="utf-8")
