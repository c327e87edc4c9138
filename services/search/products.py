"""The shop's own products on catalog images: a product id (the shop's SKU or listing id) and a few fields
of its own (name, price, stock, a page link...). Results carry them, so an app links a result to its
product page without a second lookup, and filters read them (`product_id`, `product.in_stock`)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.search.schemas import Distinct, ProductFields, ProductValue

PRODUCT_FILTER_PREFIX = "product."
MAX_DISTINCT_POOL = 20_000  # results read to find a page of distinct images or products


def is_product_filter(key: str) -> bool:
    prefix = PRODUCT_FILTER_PREFIX
    return key == "product_id" or (key.startswith(prefix) and len(key) > len(prefix))


def filter_text(value: ProductValue) -> str:
    """How a product field's value is compared with a filter's: as text, case-insensitive (`true`, `39000`,
    `acme`), so a JSON boolean or number matches the same written as a string in a form field."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).casefold()


def read_products(path: Path) -> dict[str, ProductFields]:
    """A CSV of products (UTF-8, Excel's BOM too): a `file` column naming the image, `product_id`, and any
    other columns as the product's fields (empty cells left out). Keyed by the `file` column."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if not rows or "file" not in rows[0]:
        raise ValueError(f"{path}: the first line must name the columns, one of them `file`")
    products: dict[str, ProductFields] = {}
    for line, row in enumerate(rows, 2):
        given = {k.strip(): v.strip() for k, v in row.items() if k and v and v.strip()}
        file_name = given.pop("file", "")
        if not file_name:
            raise ValueError(f"{path}, line {line}: no file")
        raw: dict[str, Any] = {"product_id": given.pop("product_id")} if "product_id" in given else {}
        if given:
            raw["product"] = given
        try:
            products[file_name] = ProductFields.model_validate(raw)
        except ValidationError as exc:
            problem = exc.errors()[0]
            raise ValueError(f"{path}, line {line}: {problem['msg']}") from exc
    return products


def first_distinct(results: Iterable[dict], per: Distinct) -> Iterator[dict]:
    """The results in order, keeping only the first of each catalog image, or of each product (an image
    without a product is its own). Lazy: a caller reads only as far as it needs."""
    seen: set[Hashable] = set()
    for result in results:
        product = result.get("product_id") if per == "product" else None
        key = ("product", product) if product else result["image_id"]
        if key not in seen:
            seen.add(key)
            yield result


def distinct_results(ranked: Callable[[int], list[dict]], k: int, per: Distinct) -> list[dict]:
    """The k best results keeping only the best of each catalog image, or of each product: the ranking
    asked for more until k distinct ones came or it ran out."""
    asked = k
    while True:
        results = ranked(asked)
        kept = list(first_distinct(results, per))
        if len(kept) >= k or len(results) < asked or asked >= MAX_DISTINCT_POOL:
            return [{**r, "rank": rank} for rank, r in enumerate(kept[:k], 1)]
        asked = min(asked * 4, MAX_DISTINCT_POOL)
