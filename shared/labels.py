"""K-Fashion label JSON: typed records, a tolerant reader and an exact writer.

Reader tolerance (what real files do): `[{}]` for an absent region or style, polygon keys in any
order with unpaired numbers (paired by number, unpaired dropped and reported), missing attributes,
a string where a list is usual and the reverse, numbers written as strings, extra keys such as
서브색상 (kept). Values are kept as written; `LabelRecord.unknown` names every value the taxonomy
does not know. A file that cannot be read raises `LabelError` naming the file and the field.

The writer emits the exact schema of the guideline (seed 004), and read(write(r)) == r.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.taxonomy import ATTRIBUTES_BY_KO, REGION_KO, REGIONS, STYLE, region_from_key

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

K_IMAGE_INFO, K_IMAGE_ID, K_IMAGE_H, K_IMAGE_FILE, K_IMAGE_W = (
    "이미지 정보",
    "이미지 식별자",
    "이미지 높이",
    "이미지 파일명",
    "이미지 너비",
)
K_DATASET, K_CREATED, K_DETAIL, K_FILE_NO, K_FILE_NAME = (
    "데이터셋 정보",
    "파일 생성일자",
    "데이터셋 상세설명",
    "파일 번호",
    "파일 이름",
)
K_RECTS, K_POLYGONS, K_LABELING = "렉트좌표", "폴리곤좌표", "라벨링"
K_X, K_Y, K_W, K_H = "X좌표", "Y좌표", "가로", "세로"
K_STYLE, K_SUB_STYLE = "스타일", "서브스타일"
# Region order of the guideline's sample file; the writer keeps it.
WRITE_REGION_ORDER = ("outer", "bottom", "onepiece", "top")
_POLYGON_KEY = re.compile(r"^\s*([XY])좌표\s*(\d+)\s*$")


class LabelError(ValueError):
    """A label file that cannot be read: names the file and the field."""

    def __init__(self, file: str | Path | None, field_path: str, problem: str):
        self.file = str(file) if file is not None else "<memory>"
        self.field_path = field_path
        self.problem = problem
        super().__init__(f"{self.file}: field '{field_path}': {problem}")

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "field": self.field_path, "problem": self.problem}


@dataclass(slots=True)
class ImageInfo:
    id: int | None = None
    width: int | None = None
    height: int | None = None
    file_name: str | None = None


@dataclass(slots=True)
class Item:
    region: str  # outer | top | bottom | onepiece
    box: tuple[float, float, float, float] | None = None  # x, y (top-left), width, height in pixels
    polygon: list[tuple[float, float]] = field(default_factory=list)
    # English attribute key -> value as written (Korean); lists for the multi-valued attributes.
    attributes: dict[str, str | list[str]] = field(default_factory=dict)
    # Keys of the labelling dict that no attribute owns, kept verbatim so nothing is lost.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StyleLabel:
    style: str | None
    sub_style: str | None = None


@dataclass(slots=True)
class Unknown:
    """One value the taxonomy does not know (or a key no attribute owns), kept and reported."""

    region: str | None  # None for styles
    field: str  # English attribute key, "style", "sub_style" or the raw key
    value: Any
    reason: str = "not in taxonomy"


@dataclass(slots=True)
class LabelRecord:
    image: ImageInfo
    items: list[Item] = field(default_factory=list)
    styles: list[StyleLabel] = field(default_factory=list)
    created_at: str | None = None
    file_number: int | None = None
    file_name: str | None = None
    unknown: list[Unknown] = field(default_factory=list)
    # What the reader repaired (dropped polygon numbers, ignored keys); not part of the label's content.
    warnings: list[str] = field(default_factory=list, compare=False)

    def items_of(self, region: str) -> list[Item]:
        return [item for item in self.items if item.region == region]


@dataclass(slots=True)
class LabelFile:
    """A label file found in a dataset tree, with its image and what its folders say."""

    label_path: Path
    image_path: Path | None
    style_folder: str | None  # <style>/<work_no>/<image> layout; None for flat folders
    work_no: str | None


# ---------------------------------------------------------------- reading


def _number(value: Any, file: Any, path: str) -> float:
    if isinstance(value, bool):
        raise LabelError(file, path, f"expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise LabelError(file, path, f"expected a number, got {value!r}")


def _optional_int(value: Any, file: Any, path: str) -> int | None:
    if value is None or value == "":
        return None
    number = _number(value, file, path)
    if not number.is_integer():
        raise LabelError(file, path, f"expected an integer, got {value!r}")
    return int(number)


def _entries(container: dict[str, Any], key: str, file: Any, path: str) -> list[dict[str, Any]]:
    """The list of dicts under `key`; `[{}]`, `{}`, `[]`, null and a bare dict are all accepted."""
    value = container.get(key)
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise LabelError(file, f"{path}.{key}", f"expected a list of objects, got {type(value).__name__}")
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise LabelError(file, f"{path}.{key}[{i}]", f"expected an object, got {type(entry).__name__}")
    return value


def _regions(
    container: dict[str, Any], file: Any, path: str, warnings: list[str]
) -> dict[str, tuple[str, str]]:
    """Map region -> (raw key, path) for the region keys present; unknown keys become warnings."""
    found: dict[str, tuple[str, str]] = {}
    for key in container:
        region = region_from_key(key)
        if region is None:
            if key != K_STYLE:
                warnings.append(f"{path}: ignored key '{key}' (not a region)")
            continue
        if region in found:
            raise LabelError(file, f"{path}.{key}", f"region given twice (also as '{found[region][0]}')")
        found[region] = (key, path)
    return found


def _read_box(entry: dict[str, Any], file: Any, path: str) -> tuple[float, float, float, float] | None:
    if not entry:
        return None
    missing = [k for k in (K_X, K_Y, K_W, K_H) if k not in entry]
    if missing:
        raise LabelError(file, f"{path}.{missing[0]}", "missing from a non-empty rect")
    x, y, w, h = (_number(entry[k], file, f"{path}.{k}") for k in (K_X, K_Y, K_W, K_H))
    if w < 0 or h < 0:
        raise LabelError(file, f"{path}.{K_W if w < 0 else K_H}", "negative size")
    return (x, y, w, h)


def _read_polygon(
    entry: dict[str, Any], file: Any, path: str, warnings: list[str]
) -> list[tuple[float, float]]:
    xs: dict[int, float] = {}
    ys: dict[int, float] = {}
    for key, value in entry.items():
        match = _POLYGON_KEY.match(key)
        if match is None:
            warnings.append(f"{path}: ignored key '{key}'")
            continue
        axis, number = match.group(1), int(match.group(2))
        (xs if axis == "X" else ys)[number] = _number(value, file, f"{path}.{key}")
    unpaired = sorted(set(xs) ^ set(ys))
    if unpaired:
        warnings.append(f"{path}: dropped {len(unpaired)} unpaired polygon number(s) {unpaired[:5]}")
    return [(xs[k], ys[k]) for k in sorted(set(xs) & set(ys))]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    text = str(value).strip()
    return [text] if text else []


def _read_attributes(
    entry: dict[str, Any], region: str, file: Any, path: str, unknown: list[Unknown]
) -> tuple[dict[str, str | list[str]], dict[str, Any]]:
    attributes: dict[str, str | list[str]] = {}
    extra: dict[str, Any] = {}
    for key, raw in entry.items():
        attribute = ATTRIBUTES_BY_KO.get(key.strip())
        if attribute is None:
            extra[key] = raw
            unknown.append(Unknown(region, key, raw, "key not in taxonomy"))
            continue
        if isinstance(raw, dict):
            raise LabelError(file, f"{path}.{key}", "expected a string or a list of strings, got an object")
        values = _as_list(raw)
        if not values:
            continue  # "" or [] is an absent attribute
        if attribute.multi:
            attributes[attribute.key] = values
        else:
            attributes[attribute.key] = values[0]
            for dropped in values[1:]:
                unknown.append(
                    Unknown(region, attribute.key, dropped, "extra value for a single-valued attribute")
                )
        for value in values if attribute.multi else values[:1]:
            if attribute.lookup(value) is None:
                unknown.append(Unknown(region, attribute.key, value))
    return attributes, extra


def _read_styles(labeling: dict[str, Any], file: Any, path: str, unknown: list[Unknown]) -> list[StyleLabel]:
    styles = []
    for i, entry in enumerate(_entries(labeling, K_STYLE, file, path)):
        if not entry:
            continue
        style = _as_list(entry.get(K_STYLE))
        sub_style = _as_list(entry.get(K_SUB_STYLE))
        for name, values in (("style", style), ("sub_style", sub_style)):
            if len(values) > 1:
                raise LabelError(file, f"{path}.{K_STYLE}[{i}].{name}", f"several values {values}")
            if values and STYLE.lookup(values[0]) is None:
                unknown.append(Unknown(None, name, values[0]))
        if style or sub_style:
            styles.append(StyleLabel(style[0] if style else None, sub_style[0] if sub_style else None))
    return styles


def parse_label(data: Any, file: str | Path | None = None) -> LabelRecord:
    """Parse one decoded label JSON document."""
    if not isinstance(data, dict):
        raise LabelError(file, "$", "the document is not a JSON object")
    info = data.get(K_IMAGE_INFO)
    if not isinstance(info, dict):
        raise LabelError(file, K_IMAGE_INFO, "missing or not an object")
    image = ImageInfo(
        id=_optional_int(info.get(K_IMAGE_ID), file, f"{K_IMAGE_INFO}.{K_IMAGE_ID}"),
        width=_optional_int(info.get(K_IMAGE_W), file, f"{K_IMAGE_INFO}.{K_IMAGE_W}"),
        height=_optional_int(info.get(K_IMAGE_H), file, f"{K_IMAGE_INFO}.{K_IMAGE_H}"),
        file_name=info.get(K_IMAGE_FILE),
    )
    dataset = data.get(K_DATASET)
    if not isinstance(dataset, dict):
        raise LabelError(file, K_DATASET, "missing or not an object")
    detail = dataset.get(K_DETAIL, {})
    if not isinstance(detail, dict):
        raise LabelError(file, f"{K_DATASET}.{K_DETAIL}", "not an object")
    record = LabelRecord(
        image=image,
        created_at=dataset.get(K_CREATED),
        file_number=_optional_int(dataset.get(K_FILE_NO), file, f"{K_DATASET}.{K_FILE_NO}"),
        file_name=dataset.get(K_FILE_NAME),
    )
    base = f"{K_DATASET}.{K_DETAIL}"
    sections = {}
    for key in (K_RECTS, K_POLYGONS, K_LABELING):
        section = detail.get(key, {})
        if not isinstance(section, dict):
            raise LabelError(file, f"{base}.{key}", "not an object")
        sections[key] = section

    per_region: dict[str, dict[str, list[dict[str, Any]]]] = {r: {} for r in REGIONS}
    paths: dict[str, dict[str, str]] = {r: {} for r in REGIONS}
    for key, section in sections.items():
        for region, (raw_key, _) in _regions(section, file, f"{base}.{key}", record.warnings).items():
            per_region[region][key] = _entries(section, raw_key, file, f"{base}.{key}")
            paths[region][key] = f"{base}.{key}.{raw_key}"

    for region in REGIONS:
        lists = per_region[region]
        count = max((len(v) for v in lists.values()), default=0)
        for i in range(count):
            rect, polygon, labels = (
                {} if i >= len(lists.get(k, [])) else lists[k][i] for k in (K_RECTS, K_POLYGONS, K_LABELING)
            )
            if not (rect or polygon or labels):
                continue
            attributes, extra = _read_attributes(
                labels, region, file, f"{paths[region].get(K_LABELING)}[{i}]", record.unknown
            )
            record.items.append(
                Item(
                    region=region,
                    box=_read_box(rect, file, f"{paths[region].get(K_RECTS)}[{i}]"),
                    polygon=_read_polygon(
                        polygon, file, f"{paths[region].get(K_POLYGONS)}[{i}]", record.warnings
                    ),
                    attributes=attributes,
                    extra=extra,
                )
            )
    record.styles = _read_styles(sections[K_LABELING], file, f"{base}.{K_LABELING}", record.unknown)
    return record


def read_label(path: str | Path) -> LabelRecord:
    """Read one label JSON file (UTF-8, with or without a byte-order mark)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(path, "$", f"cannot read the file: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabelError(
            path, "$", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    return parse_label(data, path)


def find_label_files(root: str | Path) -> Iterator[LabelFile]:
    """Label files under `root` (a file, a `<style>/<work_no>/<image>.json` tree or flat folders), sorted."""
    root = Path(root)
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*.json") if p.is_file())
    for path in paths:
        if path.name.startswith("."):
            continue
        image_path = next(
            (
                path.with_suffix(s)
                for s in (*IMAGE_SUFFIXES, *(s.upper() for s in IMAGE_SUFFIXES))
                if path.with_suffix(s).is_file()
            ),
            None,
        )
        style_folder = work_no = None
        if root.is_dir():
            parts = path.relative_to(root).parts
            if len(parts) >= 3:
                style_folder, work_no = parts[-3], parts[-2]
        yield LabelFile(path, image_path, style_folder, work_no)


def is_label_document(path: Path) -> bool:
    """Cheap check used to skip JSON files in a tree that are not K-Fashion labels (manifests)."""
    with path.open("rb") as handle:
        head = handle.read(4096).decode("utf-8-sig", errors="ignore")
    return K_IMAGE_INFO in head or K_DATASET in head


# ---------------------------------------------------------------- writing


def _json_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def build_label(record: LabelRecord) -> dict[str, Any]:
    """The label JSON document of a record, in the guideline's exact schema and key order."""
    rects: dict[str, list[dict[str, Any]]] = {}
    polygons: dict[str, list[dict[str, Any]]] = {}
    labeling: dict[str, list[dict[str, Any]]] = {}
    styles = [
        {K_STYLE: s.style or "", **({K_SUB_STYLE: s.sub_style} if s.sub_style else {})} for s in record.styles
    ]
    labeling[K_STYLE] = styles or [{}]
    for region in WRITE_REGION_ORDER:
        ko = REGION_KO[region]
        items = record.items_of(region)
        rects[ko] = [
            {
                K_X: float(it.box[0]),
                K_Y: float(it.box[1]),
                K_W: _json_number(it.box[2]),
                K_H: _json_number(it.box[3]),
            }
            if it.box
            else {}
            for it in items
        ] or [{}]
        polygons[ko] = [
            {
                key: float(v)
                for k, (x, y) in enumerate(it.polygon, start=1)
                for key, v in ((f"X좌표{k}", x), (f"Y좌표{k}", y))
            }
            for it in items
        ] or [{}]
        labeling[ko] = [_labeling_entry(it) for it in items] or [{}]
    image = {
        K_IMAGE_ID: record.image.id,
        K_IMAGE_H: record.image.height,
        K_IMAGE_FILE: record.image.file_name,
        K_IMAGE_W: record.image.width,
    }
    return {
        K_IMAGE_INFO: {k: v for k, v in image.items() if v is not None},
        K_DATASET: {
            K_CREATED: record.created_at,
            K_DETAIL: {K_RECTS: rects, K_POLYGONS: polygons, K_LABELING: labeling},
            K_FILE_NO: record.file_number,
            K_FILE_NAME: record.file_name,
        },
    }


def _labeling_entry(item: Item) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for ko_key, attribute in ATTRIBUTES_BY_KO.items():
        value = item.attributes.get(attribute.key)
        if value is None:
            continue
        entry[ko_key] = list(value) if attribute.multi else value
    entry.update(item.extra)
    return entry


def dumps_label(record: LabelRecord) -> str:
    return json.dumps(build_label(record), ensure_ascii=False, indent=2)


def write_label(record: LabelRecord, path: str | Path) -> None:
    Path(path).write_text(dumps_label(record) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- the `labels show` view


def record_view(record: LabelRecord, file: str | None = None) -> dict[str, Any]:
    """The JSON object `kfashion labels show` prints for a record."""
    view: dict[str, Any] = {
        "file": file,
        "image": {
            "id": record.image.id,
            "width": record.image.width,
            "height": record.image.height,
            "file_name": record.image.file_name,
        },
        "items": [
            {
                "region": it.region,
                "box": list(it.box) if it.box else None,
                "polygon": [list(p) for p in it.polygon],
                "attributes": {k: (list(v) if isinstance(v, list) else v) for k, v in it.attributes.items()},
                **({"extra": it.extra} if it.extra else {}),
            }
            for it in record.items
        ],
        "styles": [{"style": s.style, "sub_style": s.sub_style} for s in record.styles],
        "unknown": [
            {"region": u.region, "field": u.field, "value": u.value, "reason": u.reason}
            for u in record.unknown
        ],
    }
    if record.warnings:
        view["warnings"] = list(record.warnings)
    return view


def iter_records(paths: Iterable[str | Path]) -> Iterator[tuple[LabelFile, LabelRecord | LabelError]]:
    """Every label file under the given files or folders, parsed.

    A bad file yields its LabelError and the walk goes on."""
    for root in paths:
        for found in find_label_files(root):
            if Path(root).is_dir() and not is_label_document(found.label_path):
                continue
            try:
                yield found, read_label(found.label_path)
            except LabelError as error:
                yield found, error


def label_values(attributes: dict) -> dict[str, str | list[str]]:
    """An item's attributes as the label JSON writes them: Korean names, lists for multi-valued ones."""
    values: dict[str, str | list[str]] = {}
    for key, attribute in attributes.items():
        if "values" in attribute:
            if attribute["values"]:
                values[key] = [v["value"] for v in attribute["values"]]
        else:
            values[key] = attribute["value"]
    return values
