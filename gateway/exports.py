"""/tagging results as a table (CSV, Excel: one row per image, a column per region and attribute, as the
seed's tagging table) and as the image with its items drawn."""

from __future__ import annotations

import csv
import io

import cv2
import numpy as np
from openpyxl import Workbook

from services.attributes.model import label_values
from shared.drawing import draw_record
from shared.heads import HEADS, region_mask
from shared.imaging import encode_jpeg
from shared.labels import ImageInfo, Item, LabelRecord, StyleLabel
from shared.taxonomy import REGIONS

LEAD_COLUMNS = ("file", "status", "error", "style", "sub_style", "items")
REGION_COLUMNS = tuple((region, key) for region in REGIONS for key in HEADS if region_mask(key, region).any())
MULTI_SEPARATOR = "|"


def table_header() -> list[str]:
    return [*LEAD_COLUMNS, *(f"{region}_{key}" for region, key in REGION_COLUMNS)]


def table_row(result: dict) -> list[str]:
    if result.get("status") != "done":
        error = result.get("error", {})
        return [result.get("file", ""), "failed", f"{error.get('code')}: {error.get('message')}"] + [""] * (
            len(table_header()) - 3
        )
    row = [
        result["file"],
        "done",
        "",
        result.get("style") or "",
        result.get("sub_style") or "",
        str(len(result["items"])),
    ]
    for region, key in REGION_COLUMNS:
        value = result[region].get(key, "")
        row.append(MULTI_SEPARATOR.join(value) if isinstance(value, list) else value)
    return row


def to_csv(results: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(table_header())
    writer.writerows(table_row(r) for r in results)
    return buffer.getvalue().encode("utf-8-sig")  # the BOM makes Excel read the Korean as UTF-8


def to_xlsx(results: list[dict]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("tagging")
    sheet.append(table_header())
    for result in results:
        sheet.append(table_row(result))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def result_record(result: dict, scale: float = 1.0) -> LabelRecord:
    """A done result as a label record (what the drawing code and the label writer take), its boxes
    scaled by `scale`."""
    width, height = round(result["width"] * scale), round(result["height"] * scale)
    record = LabelRecord(ImageInfo(None, width, height, result["file"]))
    for item in result["items"]:
        box = tuple(v * scale for v in item["box"])
        record.items.append(Item(item["region"], box, [], label_values(item["attributes"])))
    record.styles = [StyleLabel(result["style"], result.get("sub_style"))] if result.get("style") else []
    return record


def drawn_jpeg(pixels: np.ndarray, result: dict, size: int) -> bytes:
    """The image scaled so its longest side is `size`, with its items drawn on it."""
    scale = size / max(pixels.shape[:2])
    if scale != 1:
        pixels = cv2.resize(
            pixels,
            (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale))),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
    return encode_jpeg(draw_record(pixels, result_record(result, scale), polygons=False))
