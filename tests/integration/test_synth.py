"""The generated dataset: readable, inside its images, valid for the taxonomy, deterministic, and
its labels visible in the pixels."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from shared.imaging import decode_image
from shared.labels import LabelError, LabelRecord, iter_records, read_label
from shared.settings import ImageLimits
from shared.taxonomy import ATTRIBUTES, CATEGORY, STYLE, region_of_category
from tests.conftest import SYNTH_COUNT
from training.synth.dataset import generate_dataset, split_indices
from training.synth.garments import mask_window
from training.synth.outfit import CATEGORY_RULES, STYLE_RECIPES, derive_styles, sample_outfit
from training.synth.palette import COLOR_SHADES
from training.synth.prints import PRINTS, render_print
from training.synth.render import SLIVER_PIXELS, _lighting, _visible_polygon, labelled_part, render_sample


@pytest.fixture(scope="module")
def records(synth_dataset: Path) -> list[tuple[Path, LabelRecord]]:
    results = list(iter_records([synth_dataset]))
    errors = [r for _, r in results if isinstance(r, LabelError)]
    assert errors == []
    return [(found.label_path, record) for found, record in results]


def test_reads_back_with_no_errors(records: list) -> None:
    assert len(records) == SYNTH_COUNT
    assert all(record.unknown == [] and record.warnings == [] for _, record in records)


def test_boxes_and_polygons_lie_inside_the_image(records: list) -> None:
    for path, record in records:
        width, height = record.image.width, record.image.height
        assert record.items, path
        for item in record.items:
            x, y, w, h = item.box
            assert x >= 0 and y >= 0 and w > 0 and h > 0, path
            assert x + w <= width and y + h <= height, path
            assert len(item.polygon) >= 3
            xs, ys = zip(*item.polygon, strict=True)
            assert x - 1 <= min(xs) and max(xs) <= x + w + 1 and y - 1 <= min(ys) and max(ys) <= y + h + 1, (
                path
            )
            # ... and spans it, as a real file's does: every part that shows is outlined (until synth-5
            # only the largest, half of an open outer).
            assert (
                max(abs(min(xs) - x), abs(min(ys) - y), abs(max(xs) - (x + w)), abs(max(ys) - (y + h))) <= 2
            ), path


def test_every_value_is_known_and_valid_for_its_region(records: list) -> None:
    for path, record in records:
        for item in record.items:
            assert region_of_category(item.attributes["category"]) == item.region, path
            for key, value in item.attributes.items():
                attribute = ATTRIBUTES[key]
                valid = {label.ko for label in attribute.labels_for(item.region)}
                for v in value if isinstance(value, list) else [value]:
                    assert attribute.lookup(v) is not None, (path, key, v)
                    assert v in valid, (path, item.region, key, v)
        assert len(record.styles) == 1 and STYLE.lookup(record.styles[0].style) is not None
        if record.styles[0].sub_style:
            assert STYLE.lookup(record.styles[0].sub_style) is not None


def test_real_folder_layout_and_images(records: list, synth_dataset: Path) -> None:
    limits = ImageLimits()
    for path, record in records[:40]:
        style_folder, work_no = path.relative_to(synth_dataset).parts[:2]
        assert style_folder == record.styles[0].style
        assert int(work_no) == record.image.id == record.file_number
        image_path = path.with_suffix(".jpg")
        assert image_path.name == record.image.file_name == record.file_name
        image = decode_image(image_path.read_bytes(), limits, image_path.name)
        assert (image.width, image.height) == (
            record.image.width,
            record.image.height,
        ) and image.format == "JPEG"
        assert image.width == 800 and 800 <= image.height <= 1066


def test_split_manifest_is_8_1_1_and_covers_everything(synth_dataset: Path, records: list) -> None:
    split = json.loads((synth_dataset / "split.json").read_text(encoding="utf-8"))
    assert {k: len(v) for k, v in split.items()} == {"train": 160, "val": 20, "test": 20}
    everything = [p for part in split.values() for p in part]
    assert len(set(everything)) == SYNTH_COUNT
    assert set(everything) == {p.relative_to(synth_dataset).as_posix() for p, _ in records}
    summary = json.loads((synth_dataset / "dataset.json").read_text(encoding="utf-8"))
    assert summary["count"] == SYNTH_COUNT and sum(summary["styles"].values()) == SYNTH_COUNT


def test_split_is_exact_for_any_count() -> None:
    for count in (1, 7, 10, 999):
        parts = split_indices(count, 3)
        assert sorted(i for p in parts.values() for i in p) == list(range(count))
    assert split_indices(50, 1) == split_indices(50, 1) != split_indices(50, 2)


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    def digest(root: Path) -> dict[str, str]:
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    generate_dataset(tmp_path / "one", 6, 5, workers=1)
    generate_dataset(tmp_path / "two", 6, 5, workers=2)
    generate_dataset(tmp_path / "other", 6, 6, workers=1)
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    assert digest(tmp_path / "one") != digest(tmp_path / "other")


def test_styles_are_varied(records: list) -> None:
    styles = {record.styles[0].style for _, record in records}
    assert len(styles) >= 15
    assert any(record.styles[0].sub_style for _, record in records)


# ------------------------------------------------------------------ labels are visible in the pixels


def _item_pixels(path: Path, record: LabelRecord, item) -> np.ndarray:
    image = cv2.cvtColor(cv2.imread(str(path.with_suffix(".jpg"))), cv2.COLOR_BGR2RGB)
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.int32(item.polygon)], 1)
    mask = cv2.erode(mask, np.ones((7, 7), np.uint8))  # away from outlines and neighbours
    return image[mask > 0].astype(np.float32)


def test_solid_garment_colour_is_its_label(records: list) -> None:
    """The median pixel of a plain garment is closer to its own colour's shades than to any other colour's."""
    checked = hits = 0
    for path, record in records:
        for item in record.items:
            if item.attributes.get("print") != ["무지"] or item.attributes.get("material") in (
                ["데님"],
                ["가죽"],
            ):
                continue
            pixels = _item_pixels(path, record, item)
            if len(pixels) < 500:
                continue
            median = np.median(pixels, axis=0)
            nearest = min(
                COLOR_SHADES,
                key=lambda name: min(np.linalg.norm(median - np.array(s)) for s in COLOR_SHADES[name]),
            )
            checked += 1
            hits += nearest == item.attributes["color"]
    assert checked >= 50
    assert hits / checked >= 0.8, f"{hits}/{checked}"


def test_prints_show_as_texture(records: list) -> None:
    """Patterned garments vary more inside than plain ones (per-channel spread of their pixels)."""
    spread = {"plain": [], "patterned": []}
    for path, record in records[:120]:
        for item in record.items:
            pixels = _item_pixels(path, record, item)
            if len(pixels) < 500 or item.attributes.get("print") is None:
                continue
            kind = "plain" if item.attributes["print"] == ["무지"] else "patterned"
            spread[kind].append(float(np.median(pixels.std(axis=0))))
    assert len(spread["plain"]) > 20 and len(spread["patterned"]) > 20
    assert np.median(spread["patterned"]) > 2 * np.median(spread["plain"])


@pytest.mark.parametrize("name", sorted(PRINTS))
def test_the_labelled_ground_colour_shows_more_than_the_accent(name: str) -> None:
    """A labeller names the colour that shows most; a print whose accent covers as much as its ground
    (the label) would make the colour label a coin toss (gradation and argyle once did)."""
    rng = np.random.default_rng(3)
    ground, accent = (200, 40, 40), (40, 60, 200)
    shares = []
    for _ in range(10):
        unit = float(rng.uniform(150, 260))
        pixels = render_print(name, 360, 240, ground, accent, unit, rng).reshape(-1, 3)
        to_ground = np.linalg.norm(pixels - np.array(ground), axis=1)
        to_accent = np.linalg.norm(pixels - np.array(accent), axis=1)
        shares.append(((to_ground < to_accent).mean(), (to_accent < to_ground).mean()))
    ground_share, accent_share = np.mean(shares, axis=0)
    assert ground_share > accent_share + 0.1, f"ground {ground_share:.2f}, accent {accent_share:.2f}"


def test_length_is_visible_in_the_box() -> None:
    """Same figure, same seed: a longer skirt gives a taller bottom box."""
    heights = {}
    for length in ("미니", "니렝스", "미디", "맥시"):
        outfit = sample_outfit(np.random.default_rng(1), "페미닌")
        outfit.garments = [g for g in outfit.garments if g.region != "outer"]
        if outfit.garments[0].region == "onepiece":
            continue
        bottom = next(g for g in outfit.garments if g.region == "bottom")
        bottom.category, bottom.length = "스커트", length
        item = next(i for i in render_sample(0, 4, outfit).record.items if i.region == "bottom")
        heights[length] = item.box[3]
    assert list(heights.values()) == sorted(heights.values()) and len(heights) == 4


def test_sleeve_is_visible_in_the_mask() -> None:
    """Long sleeves cover the forearm, short ones do not: the top's box gets taller or wider."""
    areas = {}
    for sleeve in ("민소매", "반팔", "긴팔"):
        outfit = sample_outfit(np.random.default_rng(2), "모던")
        outfit.garments = [g for g in outfit.garments if g.region in ("top", "bottom")]
        top = next(g for g in outfit.garments if g.region == "top")
        top.category, top.sleeve, top.neckline = "티셔츠", sleeve, "라운드넥"
        item = next(i for i in render_sample(0, 9, outfit).record.items if i.region == "top")
        areas[sleeve] = cv2.contourArea(np.float32(item.polygon))
    assert areas["민소매"] < areas["반팔"] < areas["긴팔"]


def test_a_labelled_box_leaves_out_slivers() -> None:
    """A labeller boxes what shows of a garment, not the thin edge of an inner sleeve along an outer's sleeve
    or a speck at the collar (until synth-3 such slivers set a fifth of the boxes of tops under an outer)."""
    visible = np.zeros((300, 300), np.uint8)
    visible[100:200, 130:170] = 1  # the strip between an open jacket's fronts
    visible[210:240, 130:170] = 1  # the hem below the jacket: a part of its own, kept
    visible[60:260, 40:43] = 1  # an inner sleeve's edge, 3 pixels wide
    visible[20:26, 250:256] = 1  # a speck, under 2% of what shows
    ys, xs = np.nonzero(labelled_part(visible))
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (130, 169, 100, 239)


def test_a_garment_in_parts_gets_one_polygon_that_fills_them_all() -> None:
    """An open jacket's two fronts and a cuff: one polygon (the label format's one per item) whose fill is
    the three parts, with nothing between them filled but the bridges' line."""
    visible = np.zeros((300, 300), np.uint8)
    visible[50:250, 40:120] = 1  # left front
    visible[50:250, 180:260] = 1  # right front
    visible[270:285, 10:30] = 1  # a cuff
    polygon = _visible_polygon(visible, (0, 0))
    filled = np.zeros_like(visible)
    cv2.fillPoly(filled, [np.int32(polygon)], 1)
    assert (filled & visible).sum() >= 0.99 * visible.sum()
    assert (filled & (1 - visible)).sum() <= 0.03 * visible.sum()
    assert abs(cv2.contourArea(np.float32(polygon)) - visible.sum()) <= 0.03 * visible.sum()


@pytest.mark.parametrize("corner", [(0, 0), (150, 150), (294, 294)])
def test_the_labelled_part_of_a_garments_window_is_the_whole_canvas_one(corner: tuple[int, int]) -> None:
    """The generator labels each garment inside its window (mask_window with a SLIVER_PIXELS margin); that
    must give the pixels the whole canvas gives, at the canvas's edges too, or the data would change."""
    top, left = corner
    visible = np.zeros((300, 300), np.uint8)
    visible[top : top + 6, left : left + 6] = 1  # survives the opening only if its window is wide enough
    visible[max(0, top - 40) : top + 3, left : left + 3] = 1  # a 3-pixel strip: a sliver
    whole = labelled_part(visible)
    window = mask_window(visible, margin=SLIVER_PIXELS)
    assert (labelled_part(visible[window]) == whole[window]).all()
    assert whole.sum() == whole[window].sum() > 0


def test_lighting_gives_the_pixels_of_its_plain_formula() -> None:
    """The lighting pass works plane by plane for speed; its pixels must stay those of image * gain *
    warmth + noise broadcast at once, or every generated dataset (and the committed models) would change."""
    image = np.random.default_rng(1).integers(0, 256, (90, 70, 3), np.uint8)
    lit = _lighting(image, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    angle = rng.uniform(0, 2 * np.pi)
    xs, ys = np.arange(70, dtype=np.float32)[None, :], np.arange(90, dtype=np.float32)[:, None]
    gain = rng.uniform(0.9, 1.06) + rng.uniform(0.05, 0.16) * (
        np.cos(angle) * (xs / 70 - 0.5) + np.sin(angle) * (ys / 90 - 0.5)
    )
    warm = np.array([rng.uniform(0.96, 1.04), 1.0, rng.uniform(0.96, 1.04)], np.float32)
    noise = rng.normal(0, 2.5, (90, 70, 1)).astype(np.float32)
    expected = np.clip(image.astype(gain.dtype) * gain[..., None] * warm + noise, 0, 255).astype(np.uint8)
    assert np.array_equal(lit, expected)


# ------------------------------------------------------------------ coverage of the taxonomy by the generator


def test_generator_can_draw_every_category_colour_and_enough_prints() -> None:
    assert {label.ko for label in CATEGORY.labels} == set(CATEGORY_RULES)
    recipe_categories = {
        c for r in STYLE_RECIPES.values() for c in (*r.top, *r.bottom, *r.outer, *r.onepiece)
    }
    assert recipe_categories == set(CATEGORY_RULES)
    assert set(COLOR_SHADES) == {label.ko for label in ATTRIBUTES["color"].labels}
    assert set(PRINTS) == {label.ko for label in ATTRIBUTES["print"].labels}
    assert {label.ko for label in STYLE.labels} == set(STYLE_RECIPES)


def test_style_label_follows_the_outfit() -> None:
    """The style rule reads the outfit: a punk recipe's signature outfit is labelled punk."""
    rng = np.random.default_rng(0)
    agree = sum(
        derive_styles((o := sample_outfit(rng, "펑크")).garments)[0] == o.target_style for _ in range(50)
    )
    assert agree >= 30


def test_preview_contact_sheet(tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.png"
    result = subprocess.run(
        [sys.executable, "-m", "kfashion", "synth", "--count", "4", "--preview", str(sheet)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[1] > 1000


def test_a_written_label_reads_back_equal(synth_dataset: Path) -> None:
    sample = render_sample(3, 11)
    path = next(synth_dataset.rglob(sample.record.image.file_name)).with_suffix(".json")
    assert read_label(path) == sample.record


def test_docs_recipe_table_matches_the_code() -> None:
    from training.synth.outfit import style_rules_markdown

    docs = (Path(__file__).parents[2] / "docs" / "synth.md").read_text(encoding="utf-8")
    table = docs.split("<!-- recipes:start -->\n")[1].split("<!-- recipes:end -->")[0].strip()
    assert table == style_rules_markdown()
