"""Readers of the three real photo sets (../shared/realdata, README there) as K-Fashion targets.

- CCP (Clothing Co-Parsing): street photos with pixel masks of 59 labels. Each region (outer, top, bottom,
  onepiece) becomes one item: its box bounds every pixel of the labels mapped to it (a region under 0.3% of
  the picture is ignored), its category is the mapped label with the most pixels, and its colour is read
  from the garment's own pixels (a *derived* label: the nearest K-Fashion shade that most of them have).
- CAD (Clothing Attribute Dataset): people, labels of the upper garment (colour, pattern, sleeve, neckline,
  category) and no box.
- clothing-dataset: one garment per photo, a garment class, no box (the garment fills most of the photo).

Real labels are often coarser than K-Fashion's: "outerwear" is any of seven outer categories, CAD's "blue"
is 블루 or 네이비. A target is therefore the *set* of K-Fashion labels it allows (`Target.allowed`); a
label the set names exactly is a set of one. Training maximises the probability of the set, evaluation
counts a prediction right when it falls in the set.

Every photo gets a fixed split from a hash of its set and id (`split_of`): the same on every machine and in
every run, never tuned. The data is read where it lies (`KFASHION_REALDATA`, default ../shared/realdata),
never copied into the repository.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from shared.colors import nearest_color_table
from shared.taxonomy import ATTRIBUTES, CATEGORY_REGION, REGIONS

SETS = ("ccp", "cad", "clothing")
VALIDATION_SHARE = 0.15  # of what is here (the project keeps its own held-out part elsewhere)
SPLIT_SALT = "kfashion-realdata-1"
MIN_REGION_SHARE = 0.003  # CCP: a region under 0.3% of the picture is ignored (README)
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "realdata"

_OUTERS = ("코트", "재킷", "점퍼", "패딩", "베스트", "가디건", "짚업")

# CCP label -> K-Fashion category (README table). Labels not here (skin, hair, shoes, bags...) are no garment.
CCP_CATEGORY: dict[str, str] = {
    "coat": "코트",
    "cape": "코트",
    "jacket": "재킷",
    "blazer": "재킷",
    "suit": "재킷",
    "cardigan": "가디건",
    "vest": "베스트",
    "blouse": "블라우스",
    "shirt": "셔츠",
    "t-shirt": "티셔츠",
    "sweatshirt": "티셔츠",
    "top": "탑",
    "bodysuit": "탑",
    "sweater": "니트웨어",
    "hoodie": "후드티",
    "bra": "브라탑",
    "pants": "팬츠",
    "shorts": "팬츠",
    "jeans": "청바지",
    "skirt": "스커트",
    "leggings": "레깅스",
    "dress": "드레스",
    "jumper": "드레스",  # the US word: a pinafore dress
    "romper": "점프수트",
}

# clothing-dataset class -> the K-Fashion categories it may be (README), and attributes it implies.
CLOTHING_CATEGORIES: dict[str, tuple[str, ...]] = {
    "T-Shirt": ("티셔츠",),
    "Longsleeve": ("티셔츠", "니트웨어"),
    "Polo": ("티셔츠",),
    "Undershirt": ("탑",),
    "Top": ("탑",),
    "Body": ("탑",),
    "Shirt": ("셔츠",),
    "Blouse": ("블라우스",),
    "Hoodie": ("후드티",),
    "Pants": ("팬츠", "청바지", "조거팬츠", "레깅스"),
    "Shorts": ("팬츠",),
    "Skirt": ("스커트",),
    "Dress": ("드레스",),
    "Outwear": _OUTERS,
    "Blazer": ("재킷",),
}
CLOTHING_EXTRA: dict[str, dict[str, tuple[str, ...]]] = {
    "Polo": {"collar": ("폴로칼라",)},
    "Shorts": {"length": ("미니",)},
    "Longsleeve": {"sleeve": ("긴팔", "7부소매")},
}

# CAD columns (1 = no, 2 = yes unless said) -> K-Fashion.
CAD_CATEGORY: dict[int, tuple[str, ...]] = {
    1: ("셔츠",),
    2: ("니트웨어",),
    3: ("티셔츠",),
    4: _OUTERS,
    5: ("재킷",),
    6: ("탑",),
    7: ("드레스",),
}
CAD_SLEEVE: dict[int, tuple[str, ...]] = {1: ("민소매",), 2: ("반팔", "캡"), 3: ("긴팔", "7부소매")}
CAD_NECKLINE: dict[int, tuple[str, ...]] = {1: ("브이넥",), 2: ("라운드넥",)}  # 3 "other": any of the rest
CAD_PRINT: dict[str, str] = {
    "pattern_solid": "무지",
    "pattern_floral": "플로럴",
    "pattern_spot": "도트",
    "pattern_graphics": "그래픽",
    "pattern_plaid": "체크",
    "pattern_stripe": "스트라이프",
}
# CAD's ten colours are coarser than K-Fashion's 21 (README): each K-Fashion colour belongs to one of them.
CAD_COLOUR_OF: dict[str, str] = {
    "블랙": "black",
    "화이트": "white",
    "그레이": "gray",
    "실버": "gray",
    "레드": "red",
    "와인": "red",
    "핑크": "red",
    "오렌지": "brown",
    "베이지": "brown",
    "브라운": "brown",
    "옐로우": "yellow",
    "골드": "yellow",
    "그린": "green",
    "카키": "green",
    "네온": "green",
    "민트": "cyan",
    "스카이블루": "cyan",
    "블루": "blue",
    "네이비": "blue",
    "퍼플": "purple",
    "라벤더": "purple",
}
CAD_COLOURS = ("red", "yellow", "green", "cyan", "blue", "purple", "brown", "white", "gray", "black")


def realdata_root(root: str | Path | None = None) -> Path:
    """The real photo sets' folder: the argument, else KFASHION_REALDATA, else ../shared/realdata."""
    return Path(root or os.environ.get("KFASHION_REALDATA") or DEFAULT_ROOT)


class RealDataMissing(FileNotFoundError):
    pass


def require_set(root: Path, name: str) -> Path:
    folder = root / name
    if not folder.is_dir():
        raise RealDataMissing(
            f"the real photo set {name!r} is not at {folder}: put ../shared/realdata beside the repository "
            "or set KFASHION_REALDATA to its folder (README there)"
        )
    return folder


def split_of(set_name: str, photo_id: str) -> str:
    """ "train" or "val", fixed by a hash of the set and the photo's id."""
    digest = hashlib.sha256(f"{SPLIT_SALT}/{set_name}/{photo_id}".encode()).hexdigest()
    return "val" if int(digest[:8], 16) / 0xFFFFFFFF < VALIDATION_SHARE else "train"


@dataclass
class Target:
    """What a real label says of one attribute: the K-Fashion labels it allows (a set of one when exact)
    or, for multi-valued attributes, which labels are known present and known absent."""

    allowed: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    derived: bool = False  # computed from the pixels, not labelled by a person


@dataclass
class RealItem:
    region: str | None  # None: the labels do not say (CAD's upper garment without a category)
    box: tuple[float, float, float, float] | None  # x, y, w, h in photo pixels; None: not labelled
    targets: dict[str, Target] = field(default_factory=dict)
    polygon: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class RealPhoto:
    set: str
    id: str
    path: Path
    split: str
    items: list[RealItem]
    label: str = ""  # the set's own class name where it has one (clothing-dataset)


def category_region(categories: tuple[str, ...]) -> str | None:
    regions = {CATEGORY_REGION[c] for c in categories}
    return regions.pop() if len(regions) == 1 else None


# ------------------------------------------------------------------ CCP


@cache
def _ccp_labels(folder: Path) -> tuple[str, ...]:
    return tuple(line.strip() for line in (folder / "labels.txt").read_text().splitlines() if line.strip())


def derived_colour(pixels: np.ndarray, mask: np.ndarray) -> str | None:
    """The K-Fashion colour most of a garment's own pixels are nearest (None with too few pixels)."""
    chosen = pixels[mask]
    if len(chosen) < 50:
        return None
    names, nearest = nearest_color_table()
    cells = (chosen >> 3).astype(np.int32)
    index = (cells[:, 0] << 10) | (cells[:, 1] << 5) | cells[:, 2]
    counts = np.bincount(nearest[index], minlength=len(names))
    return names[int(counts.argmax())]


def ccp_items(label_map: np.ndarray, labels: tuple[str, ...], pixels: np.ndarray | None) -> list[RealItem]:
    """One item per region present in a CCP label map (README's rule), with derived colour when the
    photo's pixels are given."""
    area = label_map.size
    items = []
    for region in REGIONS:
        ids = [
            i for i, name in enumerate(labels) if CATEGORY_REGION.get(CCP_CATEGORY.get(name, "")) == region
        ]
        mask = np.isin(label_map, ids)
        if mask.sum() < MIN_REGION_SHARE * area:
            continue
        ys, xs = np.nonzero(mask)
        box = (
            float(xs.min()),
            float(ys.min()),
            float(xs.max() + 1 - xs.min()),
            float(ys.max() + 1 - ys.min()),
        )
        counts = np.bincount(label_map[mask], minlength=len(labels))
        main = int(counts.argmax())
        targets = {"category": Target(allowed=(CCP_CATEGORY[labels[main]],))}
        if labels[main] == "shorts":
            targets["length"] = Target(allowed=("미니",))
        if pixels is not None:
            colour = derived_colour(pixels, label_map == main)
            if colour:
                targets["color"] = Target(allowed=(colour,), derived=True)
        items.append(RealItem(region, box, targets, _outline(mask)))
    return items


def _outline(mask: np.ndarray) -> list[tuple[float, float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    largest = max(contours, key=cv2.contourArea)
    return [(float(x), float(y)) for x, y in largest.reshape(-1, 2)]


def _ccp_public_labels(folder: Path) -> tuple[str, ...]:
    """The 59 label names of CCP's public layout (label_list.mat), in index order."""
    from scipy.io import loadmat

    names = loadmat(str(folder / "label_list.mat"))["label_list"].ravel()
    return tuple(str(np.asarray(n).ravel()[0]) if np.asarray(n).size else "null" for n in names)


def read_ccp(folder: Path, with_colour: bool = True) -> list[RealPhoto]:
    """CCP photos that have a pixel mask (the ones with boxes), in id order: masks/NNNN.png beside
    labels.txt (../shared/realdata), or the public layout's annotations/pixel-level/NNNN.mat beside
    label_list.mat."""
    public = (folder / "annotations" / "pixel-level").is_dir()
    if public:
        labels = _ccp_public_labels(folder)
        masks = sorted((folder / "annotations" / "pixel-level").glob("*.mat"))
    else:
        labels = _ccp_labels(folder)
        masks = sorted((folder / "masks").glob("*.png"))
    photos = []
    for mask_path in masks:
        photo_id = mask_path.stem
        photo_path = folder / "photos" / f"{photo_id}.jpg"
        label_map = read_ccp_mat(mask_path) if public else cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
        if label_map is None or not photo_path.is_file():
            continue
        pixels = None
        if with_colour:
            bgr = cv2.imread(str(photo_path), cv2.IMREAD_COLOR)
            if bgr is not None and bgr.shape[:2] == label_map.shape[:2]:
                pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        items = ccp_items(label_map, labels, pixels)
        photos.append(RealPhoto("ccp", photo_id, photo_path, split_of("ccp", photo_id), items))
    return photos


def ccp_tag_items(tags: list[str]) -> list[RealItem]:
    """One item per region that CCP image-level tags name, without a box: its category is the set of the
    tagged labels of that region (tags "t-shirt" and "top" allow either)."""
    by_region: dict[str, set[str]] = {}
    for tag in tags:
        category = CCP_CATEGORY.get(tag)
        if category:
            by_region.setdefault(CATEGORY_REGION[category], set()).add(category)
    return [
        RealItem(region, None, {"category": Target(allowed=tuple(sorted(by_region[region])))})
        for region in REGIONS
        if region in by_region
    ]


def read_ccp_tagged(folder: Path) -> list[RealPhoto]:
    """CCP photos that have image-level tags and no mask (1,094 here), in id order, as the set "ccp_tags":
    one boxless item per tagged region (`ccp_tag_items`). Training finds their boxes with a detector,
    constrained by the tags (training/real_run.py). tags.json (../shared/realdata), or the public layout's
    annotations/image-level/NNNN.mat (key `tags`, indices into label_list.mat)."""
    public = (folder / "annotations" / "image-level").is_dir()
    if public:
        from scipy.io import loadmat

        labels = _ccp_public_labels(folder)
        tags = {
            path.stem: [labels[int(i)] for i in np.asarray(loadmat(str(path))["tags"]).ravel()]
            for path in sorted((folder / "annotations" / "image-level").glob("*.mat"))
        }
        masked = {path.stem for path in (folder / "annotations" / "pixel-level").glob("*.mat")}
    else:
        tags = json.loads((folder / "tags.json").read_text(encoding="utf-8"))
        masked = {path.stem for path in (folder / "masks").glob("*.png")}
    photos = []
    for photo_id in sorted(tags):
        path = folder / "photos" / f"{photo_id}.jpg"
        if photo_id in masked or not path.is_file():
            continue
        items = ccp_tag_items(tags[photo_id])
        if items:
            photos.append(RealPhoto("ccp_tags", photo_id, path, split_of("ccp", photo_id), items))
    return photos


def read_ccp_mat(mat_path: Path) -> np.ndarray:
    """A label map of CCP's public layout (annotations/pixel-level/NNNN.mat, key `groundtruth`)."""
    from scipy.io import loadmat

    return np.asarray(loadmat(str(mat_path))["groundtruth"], np.uint8)


# ------------------------------------------------------------------ CAD


def cad_item(row: dict[str, str]) -> RealItem:
    """The upper garment a CAD row describes (no box: the detector's own box is used)."""

    def value(column: str) -> int | None:
        text = (row.get(column) or "").strip()
        if not text or text.lower() == "nan":
            return None
        return int(float(text))

    targets: dict[str, Target] = {}
    category = value("category")
    categories = CAD_CATEGORY.get(category or 0, ())
    if categories:
        targets["category"] = Target(allowed=categories)
    colours = [c for c in CAD_COLOURS if value(c) == 2]
    if colours and value("many_colors") != 2:
        targets["color"] = Target(allowed=tuple(k for k, v in CAD_COLOUR_OF.items() if v in colours))
    sleeve = CAD_SLEEVE.get(value("sleevelength") or 0)
    if sleeve:
        targets["sleeve"] = Target(allowed=sleeve)
    neckline = value("neckline")
    if neckline in CAD_NECKLINE:
        targets["neckline"] = Target(allowed=CAD_NECKLINE[neckline])
    elif neckline == 3:
        others = [lb.ko for lb in ATTRIBUTES["neckline"].labels if lb.ko not in ("브이넥", "라운드넥")]
        targets["neckline"] = Target(allowed=tuple(others))
    present = tuple(ko for column, ko in CAD_PRINT.items() if value(column) == 2)
    absent = tuple(ko for column, ko in CAD_PRINT.items() if value(column) == 1)
    if present or absent:
        targets["print"] = Target(present=present, absent=absent)
    return RealItem(category_region(categories) if categories else None, None, targets)


def read_cad(folder: Path) -> list[RealPhoto]:
    """CAD photos with their upper garment's labels: labels.csv (../shared/realdata) or the public
    layout's labels/<attribute>_GT.mat (one value per image in file-name order, NaN = no agreement)."""
    photos = []
    for row in cad_rows(folder):
        path = folder / "images" / row["file"]
        if path.is_file():
            photo_id = Path(row["file"]).stem
            photos.append(RealPhoto("cad", photo_id, path, split_of("cad", photo_id), [cad_item(row)]))
    return photos


def cad_rows(folder: Path) -> list[dict[str, str]]:
    if (folder / "labels.csv").is_file():
        with (folder / "labels.csv").open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    from scipy.io import loadmat

    columns = {
        mat.stem[: -len("_GT")]: np.asarray(loadmat(str(mat))["GT"], np.float64).ravel()
        for mat in sorted((folder / "labels").glob("*_GT.mat"))
    }
    files = sorted(p.name for p in (folder / "images").glob("*.jpg"))
    return [
        {
            "file": name,
            **{k: "" if np.isnan(v[i]) else str(int(v[i])) for k, v in columns.items() if i < len(v)},
        }
        for i, name in enumerate(files)
    ]


# ------------------------------------------------------------------ clothing-dataset


def clothing_item(label: str) -> RealItem | None:
    categories = CLOTHING_CATEGORIES.get(label)
    if not categories:
        return None
    targets = {"category": Target(allowed=categories)}
    for key, allowed in CLOTHING_EXTRA.get(label, {}).items():
        targets[key] = Target(allowed=allowed)
    return RealItem(category_region(categories), None, targets)


def read_clothing(folder: Path) -> list[RealPhoto]:
    photos = []
    with (folder / "images.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            item = clothing_item(row["label"])
            path = folder / "images" / f"{row['image']}.jpg"
            if item is None or not path.is_file():
                continue
            photos.append(
                RealPhoto(
                    "clothing", row["image"], path, split_of("clothing", row["image"]), [item], row["label"]
                )
            )
    return photos


def garment_box(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """Where the one garment of a product photo is: the extent of the pixels that differ from the photo's
    border colour (2nd to 98th percentile), or the whole photo when that is unclear."""
    h, w = pixels.shape[:2]
    small = cv2.resize(pixels, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    lab = cv2.cvtColor(small.astype(np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    distance = np.linalg.norm(lab[:, :, None, :] - np.median(border, 0)[None, None, None, :], axis=-1)[..., 0]
    spread = np.percentile(np.linalg.norm(border - np.median(border, 0), axis=1), 90)
    foreground = distance > max(18.0, 1.5 * spread)
    if foreground.mean() < 0.1:
        return (0.0, 0.0, float(w), float(h))
    ys, xs = np.nonzero(foreground)
    x0, x1 = np.percentile(xs, [2, 98]) * w / 64
    y0, y1 = np.percentile(ys, [2, 98]) * h / 64
    x0, y0 = max(0.0, x0 - 0.02 * w), max(0.0, y0 - 0.02 * h)
    x1, y1 = min(float(w), x1 + 0.02 * w + w / 64), min(float(h), y1 + 0.02 * h + h / 64)
    if (x1 - x0) * (y1 - y0) < 0.15 * w * h:
        return (0.0, 0.0, float(w), float(h))
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


READERS = {"ccp": read_ccp, "cad": read_cad, "clothing": read_clothing}


def read_all(root: str | Path | None = None, sets: tuple[str, ...] = SETS) -> dict[str, list[RealPhoto]]:
    """The photos of each set under the real data folder (an error naming the folder if one is missing)."""
    root = realdata_root(root)
    return {name: READERS[name](require_set(root, name)) for name in sets}


def read_public(name: str, folder: Path) -> list[RealPhoto]:
    """One set from its own folder, in either layout."""
    if not folder.is_dir():
        raise RealDataMissing(f"{folder} is not a folder")
    return READERS[name](folder)


def summary(photos: dict[str, list[RealPhoto]]) -> dict:
    """Counts per set and split, for a run's config and the manifest's training data."""
    return {
        name: {split: sum(p.split == split for p in items) for split in ("train", "val")}
        for name, items in photos.items()
    }


def targets_json(item: RealItem) -> dict:
    return {
        key: {k: v for k, v in t.__dict__.items() if v not in ((), False)} for key, t in item.targets.items()
    }


def dump(photos: list[RealPhoto]) -> str:
    """One JSON line per photo (what `kfashion import` prints)."""
    return "".join(
        json.dumps(
            {
                "set": p.set,
                "id": p.id,
                "file": str(p.path),
                "split": p.split,
                "items": [
                    {"region": it.region, "box": it.box, "targets": targets_json(it)} for it in p.items
                ],
            },
            ensure_ascii=False,
        )
        + "\n"
        for p in photos
    )
