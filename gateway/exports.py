"""/tagging results as a table (CSV, Excel: one row per image, a column per region and attribute, as the
seed's tagging table) and as the image with its items drawn; `results_response` answers in the format a
request asks for."""

from __future__ import annotations

import csv
import io
import zipfile
from enum import StrEnum
from pathlib import PurePosixPath

import cv2
import numpy as np
from fastapi.responses import JSONResponse, Response
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from gateway.tagging import Tagged
from shared.drawing import draw_record
from shared.envelope import success
from shared.heads import HEADS, region_mask
from shared.imaging import encode_jpeg
from shared.labels import ImageInfo, Item, LabelRecord, StyleLabel, label_values
from shared.taxonomy import REGIONS

LEAD_COLUMNS = ("file", "status", "error", "style", "sub_style", "items")
REGION_COLUMNS = tuple((region, key) for region in REGIONS for key in HEADS if region_mask(key, region).any())
MULTI_SEPARATOR = "|"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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


def formula_like(text: str) -> bool:
    """A cell a spreadsheet would run as a formula (a file named `=HYPERLINK(...).jpg`, say)."""
    return text.startswith(FORMULA_STARTS)


def to_csv(results: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(table_header())
    for result in results:
        # A leading apostrophe makes spreadsheets read such a cell as text (the OWASP advice for CSV).
        writer.writerow([f"'{cell}" if formula_like(cell) else cell for cell in table_row(result)])
    return buffer.getvalue().encode("utf-8-sig")  # the BOM makes Excel read the Korean as UTF-8


def to_xlsx(results: list[dict]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("tagging")
    sheet.append(table_header())
    for result in results:
        row = []
        for value in table_row(result):
            cell = WriteOnlyCell(sheet, value)
            if formula_like(value):
                cell.data_type = "s"  # stored as the text it is, never as a formula
            row.append(cell)
        sheet.append(row)
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


class Format(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"
    image = "image"


def results_response(results: list[dict], format: Format, tagged: list[Tagged] | None, size: int) -> Response:
    """Tagging results in the asked format: the envelope with counts (json), a table (csv, xlsx), or the
    images with their items drawn (image: one JPEG, or a zip of several)."""
    if format == Format.csv:
        return Response(
            to_csv(results), media_type="text/csv; charset=utf-8", headers=attachment("tagging.csv")
        )
    if format == Format.xlsx:
        return Response(to_xlsx(results), media_type=XLSX_TYPE, headers=attachment("tagging.xlsx"))
    if format == Format.image:
        drawn = [
            (t.result["file"], drawn_jpeg(t.image.pixels, t.result, size)) for t in tagged or [] if t.image
        ]
        if len(drawn) == 1:
            return Response(drawn[0][1], media_type="image/jpeg")
        return Response(zip_of(drawn), media_type="application/zip", headers=attachment("tagged.zip"))
    counts = {"total": len(results), "failed": sum(r["status"] == "failed" for r in results)}
    counts["done"] = counts["total"] - counts["failed"]
    return JSONResponse(success({"results": results, "counts": counts}))


def attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def zip_of(files: list[tuple[str, bytes]]) -> bytes:
    """JPEGs in a zip, each named after its source (a number added where two would share a name)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        seen: set[str] = set()
        for index, (name, data) in enumerate(files):
            entry = f"{PurePosixPath(name).stem}.jpg"
            if entry in seen:
                entry = f"{PurePosixPath(name).stem}_{index}.jpg"
            seen.add(entry)
            archive.writestr(entry, data)
    return buffer.getvalue()
