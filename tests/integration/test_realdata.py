"""The real photo sets (../shared/realdata): readers, label mappings, the fixed split, scoring, and a tiny
fine-tuning run on a few real photos against a shuffled-label control."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from shared.detection import iou_matrix, xywh_to_xyxy
from shared.taxonomy import ATTRIBUTES, CATEGORY_REGION
from training import realdata
from training.real_eval import balanced_accuracy, same_category, score_cad, score_ccp, score_clothing
from training.realdata import (
    CAD_CATEGORY,
    CAD_COLOUR_OF,
    CCP_CATEGORY,
    CLOTHING_CATEGORIES,
    RealDataMissing,
    RealItem,
    RealPhoto,
    Target,
    ccp_items,
    ccp_tag_items,
    read_all,
    read_ccp_tagged,
    read_public,
    realdata_root,
    split_of,
)


@pytest.fixture(scope="module")
def root() -> Path:
    """The real photo sets; missing, the test fails under CI (it is the product's measure) and skips
    elsewhere, naming the folder."""
    folder = realdata_root()
    if not all((folder / name).is_dir() for name in realdata.SETS):
        message = (
            f"the real photo sets are not at {folder}: put ../shared/realdata beside the repository or set "
            "KFASHION_REALDATA"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return folder


def test_every_mapping_names_labels_of_the_taxonomy() -> None:
    categories = {lb.ko for lb in ATTRIBUTES["category"].labels}
    assert set(CCP_CATEGORY.values()) <= categories
    for allowed in (*CLOTHING_CATEGORIES.values(), *CAD_CATEGORY.values()):
        assert set(allowed) <= categories
        assert len({CATEGORY_REGION[c] for c in allowed}) == 1  # each real class is of one region
    assert set(CAD_COLOUR_OF) == {
        lb.ko for lb in ATTRIBUTES["color"].labels
    }  # every colour has its CAD class


def test_ccp_items_bound_their_pixels_and_ignore_slivers() -> None:
    labels = ("null", "skin", "jacket", "shirt", "jeans", "skirt", "dress")
    label_map = np.zeros((200, 100), np.uint8)
    label_map[20:120, 10:90] = 2  # jacket: outer
    label_map[30:110, 40:60] = 3  # shirt under it: top
    label_map[120:190, 30:70] = 4  # jeans
    label_map[190:199, 30:35] = 5  # a skirt sliver: bottom too, joins the jeans' box
    label_map[0:3, 0:3] = 6  # a dress of 9 pixels: under 0.3% of the picture, ignored
    pixels = np.zeros((200, 100, 3), np.uint8)
    pixels[label_map == 2] = (200, 30, 40)  # a red jacket
    items = {it.region: it for it in ccp_items(label_map, labels, pixels)}
    assert set(items) == {"outer", "top", "bottom"}
    assert items["outer"].box == (10.0, 20.0, 80.0, 100.0)
    assert items["bottom"].box == (30.0, 120.0, 40.0, 79.0)  # bounds the jeans and the skirt's pixels
    assert items["bottom"].targets["category"].allowed == ("청바지",)  # the label with most pixels
    assert items["outer"].targets["color"].allowed == ("레드",) and items["outer"].targets["color"].derived
    assert items["top"].targets["category"].allowed == ("셔츠",)


def test_the_split_is_fixed_and_about_fifteen_percent() -> None:
    assert split_of("ccp", "0001") == split_of("ccp", "0001")
    # Regression: these never change (a changed salt or rule would move photos between splits).
    assert [i for i in range(1, 25) if split_of("ccp", f"{i:04d}") == "val"] == [5, 11, 14, 17, 22]
    ids = [f"{i:06d}" for i in range(4000)]
    share = np.mean([split_of("cad", i) == "val" for i in ids])
    assert 0.12 < share < 0.18


def test_the_sets_read_with_their_counts(root: Path) -> None:
    photos = read_all(root)
    assert len(photos["ccp"]) == 804 and len(photos["cad"]) == 1456 and len(photos["clothing"]) == 3794
    for name, items in photos.items():
        assert {p.split for p in items} == {"train", "val"}, name
    ccp = photos["ccp"][0]
    assert all(it.box and it.region for it in ccp.items)
    assert any(p.items[0].targets for p in photos["cad"])


def test_a_missing_set_is_named(tmp_path: Path) -> None:
    with pytest.raises(RealDataMissing, match="KFASHION_REALDATA"):
        read_all(tmp_path)


def test_the_public_layouts_read_as_the_reencoded_one(root: Path, tmp_path: Path) -> None:
    """CCP's annotations/pixel-level/*.mat and label_list.mat, CAD's labels/*_GT.mat (MATLAB files, as in
    the public repositories) give the same photos and labels as this folder's PNG and CSV."""
    from scipy.io import savemat

    ccp = tmp_path / "ccp"
    (ccp / "annotations" / "pixel-level").mkdir(parents=True)
    (ccp / "photos").mkdir()
    labels = (root / "ccp" / "labels.txt").read_text().split()
    savemat(ccp / "label_list.mat", {"label_list": np.array([labels], dtype=object)})
    for photo_id in ("0001", "0004"):
        mask = cv2.imread(str(root / "ccp" / "masks" / f"{photo_id}.png"), cv2.IMREAD_UNCHANGED)
        savemat(ccp / "annotations" / "pixel-level" / f"{photo_id}.mat", {"groundtruth": mask})
        (ccp / "photos" / f"{photo_id}.jpg").write_bytes(
            (root / "ccp" / "photos" / f"{photo_id}.jpg").read_bytes()
        )
    public = read_public("ccp", ccp)
    mine = {p.id: p for p in read_all(root, ("ccp",))["ccp"]}
    assert [p.id for p in public] == ["0001", "0004"]
    for photo in public:
        assert [(it.region, it.box, it.targets) for it in photo.items] == [
            (it.region, it.box, it.targets) for it in mine[photo.id].items
        ]

    cad = tmp_path / "cad"
    (cad / "labels").mkdir(parents=True)
    (cad / "images").mkdir()
    rows = realdata.cad_rows(root / "cad")[:3]
    for row in rows:
        (cad / "images" / row["file"]).write_bytes((root / "cad" / "images" / row["file"]).read_bytes())
    for column in rows[0]:
        if column != "file":
            values = [float(r[column]) if r[column] else np.nan for r in rows]
            savemat(cad / "labels" / f"{column}_GT.mat", {"GT": np.array(values)[:, None]})
    expected = {p.id: p.items[0].targets for p in read_all(root, ("cad",))["cad"]}
    assert {p.id: p.items[0].targets for p in read_public("cad", cad)} == {
        Path(r["file"]).stem: expected[Path(r["file"]).stem] for r in rows
    }


# ------------------------------------------------------------------ scoring


def _item(region: str, box: list[float], score: float, **tops: list[str]) -> dict:
    return {
        "region": region,
        "box": box,
        "score": score,
        "attributes": {k: {"value": v[0], "top_k": [{"value": x} for x in v]} for k, v in tops.items()},
    }


def test_ccp_tags_become_one_boxless_item_per_tagged_region() -> None:
    items = ccp_tag_items(["skin", "hair", "t-shirt", "top", "cardigan", "jeans", "bag"])
    assert [(it.region, it.box, it.targets["category"].allowed) for it in items] == [
        ("outer", None, ("가디건",)),
        ("top", None, ("탑", "티셔츠")),  # two tags of one region: either is right
        ("bottom", None, ("청바지",)),
    ]
    assert ccp_tag_items(["skin", "shoes", "bag"]) == []


def test_ccp_tag_only_photos_read_in_both_layouts(root: Path, tmp_path: Path) -> None:
    """CCP's photos without a mask, from tags.json here or annotations/image-level/*.mat (public); a
    photo with a mask is never among them (it is read with its boxes)."""
    from scipy.io import savemat

    tagged = read_ccp_tagged(root / "ccp")
    masked = {p.id for p in read_all(root, ("ccp",))["ccp"]}
    assert len(tagged) > 1000 and not masked & {p.id for p in tagged}
    assert {p.split for p in tagged} == {"train", "val"}
    assert all(p.set == "ccp_tags" and p.items and all(it.box is None for it in p.items) for p in tagged)

    labels = (root / "ccp" / "labels.txt").read_text().split()
    public = tmp_path / "ccp"
    for folder in ("annotations/image-level", "annotations/pixel-level", "photos"):
        (public / folder).mkdir(parents=True)
    savemat(public / "label_list.mat", {"label_list": np.array([labels], dtype=object)})
    chosen = tagged[:2]
    mask_id = sorted(masked)[0]
    tags = json.loads((root / "ccp" / "tags.json").read_text())
    for photo_id in (*(p.id for p in chosen), mask_id):
        indices = np.array([[labels.index(t) for t in tags[photo_id]]], np.uint8)
        savemat(public / "annotations" / "image-level" / f"{photo_id}.mat", {"tags": indices})
        (public / "photos" / f"{photo_id}.jpg").write_bytes(
            (root / "ccp" / "photos" / f"{photo_id}.jpg").read_bytes()
        )
    savemat(
        public / "annotations" / "pixel-level" / f"{mask_id}.mat", {"groundtruth": np.zeros((4, 4), np.uint8)}
    )
    read = read_ccp_tagged(public)
    assert [(p.id, p.items) for p in read] == [(p.id, p.items) for p in chosen]


def test_tag_only_photos_are_boxed_only_where_every_tagged_garment_is_found(
    root: Path, tmp_path: Path
) -> None:
    """The boxes training gives tag-only photos: the detector's best box of each tagged region, the photo
    left out when one is not found. Checked on masked validation photos whose regions stand in for tags."""
    from training.real_run import _teacher, find_tagged_garments

    detector = _teacher(None, Path(__file__).resolve().parents[2] / "models")
    labelled = [p for p in read_all(root, ("ccp",))["ccp"] if p.split == "val"][:12]
    as_tagged = [
        RealPhoto("ccp_tags", p.id, p.path, p.split, [RealItem(it.region, None) for it in p.items])
        for p in labelled
    ]
    blank = tmp_path / "blank.jpg"  # tagged with a coat that is not there
    cv2.imwrite(str(blank), np.full((480, 320, 3), 128, np.uint8))
    as_tagged.append(RealPhoto("ccp_tags", "blank", blank, "val", [RealItem("outer", None)]))
    found = find_tagged_garments(detector, as_tagged, log=lambda _: None)
    assert "blank" not in found and len(found) >= 9
    right = []
    for photo in labelled:
        if photo.id in found:
            boxes = dict(found[photo.id])
            assert set(boxes) == {it.region for it in photo.items}  # the tagged regions, no others
            for item in photo.items:
                iou = iou_matrix(xywh_to_xyxy([item.box]), xywh_to_xyxy([boxes[item.region]]))[0, 0]
                right.append(iou >= 0.5)
    assert np.mean(right) >= 0.7, right


def test_ccp_scoring_matches_by_region_and_overlap() -> None:
    photo = RealPhoto(
        "ccp",
        "1",
        Path("1.jpg"),
        "val",
        [
            RealItem("top", (0, 0, 10, 10), {"category": Target(allowed=("셔츠",))}),
            RealItem("bottom", (0, 10, 10, 10), {"category": Target(allowed=("청바지",))}),
        ],
    )
    result = {
        "items": [
            _item("top", [0, 0, 10, 9], 0.9, category=["블라우스", "셔츠"]),  # found; category top-3 only
            _item("top", [50, 50, 10, 10], 0.95, category=["셔츠"]),  # elsewhere: a false positive
            _item("outer", [0, 10, 10, 10], 0.8, category=["코트"]),  # the bottom's box, another region
        ]
    }
    scored = score_ccp([photo], [result])
    assert scored["found"] == 1 and scored["garments"] == 2
    assert scored["category_top1"] == 0.0 and scored["category_top3"] == 1.0
    assert scored["AP50"]["bottom"] == 0.0
    assert 0 < scored["AP50"]["top"] < 1  # found, but below a higher-scoring false positive


def test_clothing_and_cad_scoring() -> None:
    shirt = RealPhoto(
        "clothing",
        "a",
        Path("a.jpg"),
        "val",
        [RealItem("top", None, {"category": Target(("셔츠",))})],
        "Shirt",
    )
    assert score_clothing(
        [shirt, shirt], [{"items": [_item("top", [0, 0, 5, 5], 0.5, category=["셔츠"])]}, {"items": []}]
    ) == {
        "photos": 2,
        "found": 0.5,
        "region": 0.5,
        "category": 0.5,
        "category_per_class": {"Shirt": 0.5},
    }
    cad = RealPhoto(
        "cad",
        "b",
        Path("b.jpg"),
        "val",
        [
            RealItem(
                None,
                None,
                {
                    "color": Target(allowed=("블루", "네이비")),
                    "sleeve": Target(allowed=("긴팔", "7부소매")),
                    "print": Target(present=("무지",), absent=("체크",)),
                },
            )
        ],
    )
    result = {
        "items": [
            _item("bottom", [0, 0, 5, 5], 0.99, color=["레드"]),  # not the upper garment
            _item("top", [0, 0, 5, 5], 0.7, color=["네이비"], sleeve=["7부소매"], print=["레터링", "무지"]),
        ]
    }
    scored = score_cad([cad], [result])
    assert scored["colour"] == 1.0 and scored["sleeve_balanced"] == 1.0 and scored["print_balanced"] == 1.0


def test_search_precision_by_category_follows_the_readme_mapping(root: Path) -> None:
    """Real-photo search counts a result as the same category when the two photos' K-Fashion category
    sets meet: a Longsleeve (t-shirt or knitwear) with a T-Shirt, not with a Shirt or with Pants."""
    first_of = {}
    for photo in realdata.read_all(root)["clothing"]:
        first_of.setdefault(photo.label, photo)
    assert same_category(first_of["Longsleeve"], first_of["T-Shirt"])
    assert same_category(first_of["T-Shirt"], first_of["T-Shirt"])
    assert not same_category(first_of["Longsleeve"], first_of["Shirt"])
    assert not same_category(first_of["Pants"], first_of["Skirt"])


def test_balanced_accuracy_is_the_mean_recall_over_classes() -> None:
    pairs = [("long", "long")] * 7 + [("short", "long")] * 2 + [("none", "none")]
    assert balanced_accuracy(pairs) == pytest.approx((1 + 0 + 1) / 3)
    assert balanced_accuracy([("V", None)]) == 0.0


# ------------------------------------------------------------------ a tiny fine-tuning run


TINY_PHOTOS = 8  # of each set
# Thresholds on the tiny run's own training photos (their true labels), heads only (frozen backbone), 30
# detector and 24 attribute steps: measured 0.117 AP50, category 1.0 / 1.0, colour 0.95 with the labels;
# 0.006, 0.55 / 0.50 and 0.25 with every photo given another photo's labels (the control).
TINY_DETECTOR_AP50 = 0.05
TINY_CATEGORY, TINY_COLOUR = 0.85, 0.75
CONTROL_CATEGORY, CONTROL_COLOUR = 0.7, 0.6


def _tiny_run(root: Path, out: Path, shuffle: bool) -> dict:
    from dataclasses import replace

    from training.real_run import RealRunConfig, load_photos, train_real, validate

    config = RealRunConfig(
        out=str(out),
        realdata=str(root),
        stages=("detector", "boxes", "attributes"),
        detector_steps=30,
        attribute_steps=24,
        detector_batch=8,
        attribute_batch=16,
        lr=5e-3,
        frozen_blocks=16,
        limit=TINY_PHOTOS,
        shuffle_labels=shuffle,
    )
    train_real(config, log=lambda message: None)
    truth = load_photos(replace(config, shuffle_labels=False))
    metrics = validate(out, truth, log=lambda message: None, split="train")
    return {
        "AP50": metrics["detector"]["train_ccp"]["mean"]["AP50"],
        **{f"{k}_{name}": v for name, f in metrics["attributes"]["train_real"].items() for k, v in f.items()},
    }


def test_a_tiny_run_learns_real_labels_and_the_shuffled_control_does_not(root: Path, tmp_path: Path) -> None:
    learned = _tiny_run(root, tmp_path / "labels", shuffle=False)
    assert learned["AP50"] >= TINY_DETECTOR_AP50, learned
    assert (
        learned["category_top1_ccp"] >= TINY_CATEGORY and learned["category_top1_clothing"] >= TINY_CATEGORY
    )
    assert learned["color_top1_ccp"] >= TINY_COLOUR, learned
    # The run folder is what `kfashion export` reads: each model with its own fine-tuned backbone.
    import torch

    state = torch.load(tmp_path / "labels" / "heads.pt", weights_only=False)
    assert {"detector", "detector_backbone", "attributes", "attributes_backbone"} <= set(state)

    control = _tiny_run(root, tmp_path / "shuffled", shuffle=True)
    assert control["AP50"] < TINY_DETECTOR_AP50, control
    assert control["category_top1_ccp"] <= CONTROL_CATEGORY, control
    assert control["category_top1_clothing"] <= CONTROL_CATEGORY, control
    assert control["color_top1_ccp"] <= CONTROL_COLOUR, control


# ------------------------------------------------------------------ the committed models on real photos

ROOT = Path(__file__).parents[2]
# Both committed sets are fine-tuned on real photos: models/ (the default, which also holds the generated-data
# floors) and models-real/.
REAL_MODELS = [ROOT / "models", ROOT / "models-real"]
# Floors for them on the first 40 validation photos of each set through the API (measured 2026-12-06 for
# models-real/: 0.660, 1.000, 0.925, 0.850, 0.794 and 10 of 10; the generated-only models that were the
# default until 2026-12-07 read 0.402, 0.875, 0.275, 0.225, 0.353 and 7 of 10, and fail every floor). The
# whole split's figures are in docs/models.md; these guard against a model that no longer transfers.
REAL_FLOORS = {
    ("ccp", "mean_AP50"): 0.55,
    ("clothing", "found"): 0.95,
    ("clothing", "region"): 0.8,
    ("clothing", "category"): 0.7,
    ("cad", "colour"): 0.55,  # models/: 0.618 (21 of 34; 0.706 on the whole split), models-real/: 0.794
}


@pytest.mark.parametrize("models", REAL_MODELS, ids=lambda folder: folder.name)
def test_the_real_photo_models_read_real_photos_through_the_api(root: Path, models: Path) -> None:
    from training.real_eval import measure

    figures = measure(models, root, limit=40, catalog=40, queries=10)
    observed = {
        ("ccp", "mean_AP50"): figures["ccp"]["AP50"]["mean"],
        ("clothing", "found"): figures["clothing"]["found"],
        ("clothing", "region"): figures["clothing"]["region"],
        ("clothing", "category"): figures["clothing"]["category"],
        ("cad", "colour"): figures["cad"]["colour"],
    }
    for key, floor in REAL_FLOORS.items():
        assert observed[key] >= floor, (key, observed[key], figures)
    assert figures["search"]["queries"] == 10 and figures["search"]["own_first"] == 10, figures["search"]


@pytest.mark.parametrize("models", REAL_MODELS, ids=lambda folder: folder.name)
def test_the_real_photo_models_folder_is_intact(models: Path) -> None:
    from shared.manifest import check_files, load_manifest

    manifest = load_manifest(models)
    assert check_files(models, manifest) == dict.fromkeys(("detector", "attributes", "style"), "ok")
    for name in ("detector", "attributes"):
        entry = manifest.models[name]
        assert "real_val" in entry.metrics and "real" in entry.training_data, name
    assert sum(e.bytes for e in manifest.models.values()) < 60e6


# ------------------------------------------------------------------ styles on photographs


def test_style_confidence_reads_the_best_style_of_each_photo() -> None:
    from training.real_eval import style_confidence

    results = [{"styles": [{"score": 0.9}, {"score": 0.1}]}, {"styles": [{"score": 0.3}]}, {"styles": []}]
    assert style_confidence(results) == {"photos": 2, "best_style_mean": 0.6, "share_over_threshold": 0.5}


def test_the_style_stage_lowers_style_scores_on_photos_and_keeps_generated_ones(
    root: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    """A short style stage (`kfashion train-real --stages style`) from the committed style model:
    photographs' best style falls under the threshold while generated pictures keep theirs, and the run
    folder exports. The photo targets never reach the threshold."""
    import torch

    from training.export import build_models
    from training.real_run import RealRunConfig, train_real
    from training.style_photos import photo_targets

    base_rate = np.full(23, 0.08, np.float32)
    assert photo_targets(np.ones((1, 23), np.float32), base_rate).max() < 0.5
    config = RealRunConfig(
        out=str(tmp_path / "run"),
        realdata=str(root),
        generated=str(synth_dataset),
        stages=("style",),
        start_from=str(ROOT / "models"),
        limit=24,
    )
    figures = train_real(config, log=lambda _: None).metrics["style_photos"]
    photographs = figures["photographs_best_style_over_0.5"]
    assert photographs["trained"] <= 0.6 * photographs["served"], figures  # measured 0.27-0.29 of 0.58
    assert figures["generated_best_style_over_0.5"]["trained"] >= 0.8, figures
    style = build_models(torch.load(tmp_path / "run" / "heads.pt", weights_only=False))["style"]
    with torch.no_grad():
        assert style.module(torch.zeros(1, 3, 224, 224)).shape == (1, 23)


def test_the_style_stage_without_a_served_style_model_is_refused_before_any_training(tmp_path: Path) -> None:
    from training.real_run import RealRunConfig, train_real

    config = RealRunConfig(out=str(tmp_path / "run"), stages=("detector", "style"), realdata=str(tmp_path))
    with pytest.raises(ValueError, match="--start-from models"):
        train_real(config, log=lambda _: None)
    assert not (tmp_path / "run").exists()  # nothing read, nothing trained
