"""What the search service's routes do, without the routes: run a search, pick a photo's query item, check
corrections, save results to a collection. The recommender (services/recommend) reuses the item helpers."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from pydantic import ValidationError

from services.search.collections import CollectionStore
from services.search.products import distinct_results
from services.search.query import merge_filters, normalize_filters, parse_query
from services.search.rerank import pool_size, rerank_by_tags
from services.search.schemas import MAX_OFFSET, ProductFields, TaggedSearch
from services.search.service import CatalogSearch
from shared.errors import ApiError, ErrorCode
from shared.imaging import decode_image, encode_jpeg
from shared.settings import Settings
from shared.taxonomy import ATTRIBUTES, ATTRIBUTES_BY_KO, REGIONS
from shared.web import validation_failed


@dataclass
class CatalogContext:
    """What the search service's routes work on (the app's state; routes get it by dependency)."""

    settings: Settings
    search: CatalogSearch
    collections: CollectionStore


def product_fields(raw: str) -> ProductFields:
    """A request's product fields sent as JSON text in a form field."""
    try:
        return ProductFields.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_failed(exc.errors()) from exc


def read_confidence(item: dict) -> float:
    """How sure the models are of an item: its detection score times the probabilities of the category and
    colour read on it (what a search matches on)."""
    tags = item["attributes"]
    return item["score"] * tags["category"]["score"] * tags["color"]["score"]


def query_item(tagged: dict, region: str | None) -> dict:
    """The item of a tagged photo a query is about: the one the models are surest of (`read_confidence`), of
    `region` if given. On 300 photos (docs/experiments/benchmarks-log.md, "Search quality") this answered
    right more often than the best-detected item, which is often a top whose category the models read least
    well."""
    items = [i for i in tagged["items"] if region is None or i["region"] == region]
    if not items:
        where = f" of region {region}" if region else ""
        raise ApiError(
            ErrorCode.NO_ITEM_FOUND,
            f"no garment{where} was found in the photo",
            {"regions_found": sorted({i["region"] for i in tagged["items"]})},
        )
    return max(items, key=read_confidence)


def public_item(item: dict) -> dict:
    return {k: v for k, v in item.items() if k != "embedding"}


def check_region(region: str | None) -> str | None:
    if region is not None and region not in REGIONS:
        raise ApiError(
            ErrorCode.VALIDATION_FAILED,
            f"unknown region {region!r}; regions are {', '.join(REGIONS)}",
            {"region": region, "regions": list(REGIONS)},
        )
    return region


def attribute_values(raw: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
    """Corrections of an item's attributes, checked against the taxonomy, in the label format."""
    values: dict[str, str | list[str]] = {}
    for key, given in raw.items():
        attribute = ATTRIBUTES.get(key) or ATTRIBUTES_BY_KO.get(key)
        if attribute is None:
            raise ApiError(ErrorCode.VALIDATION_FAILED, f"unknown attribute {key!r}", {"attribute": key})
        names = normalize_filters({attribute.key: given})[attribute.key]
        if not attribute.multi and len(names) != 1:
            raise ApiError(
                ErrorCode.VALIDATION_FAILED, f"{attribute.key} takes one value", {"attribute": attribute.key}
            )
        values[attribute.key] = names if attribute.multi else names[0]
    return values


def run_search(context: CatalogContext, query: TaggedSearch) -> dict:
    search = context.search
    check_region(query.region)
    filters = normalize_filters(query.filters)
    parsed = parse_query(query.text or "")
    text_filters = dict(parsed.tags)
    echo: dict[str, Any] = {"text": query.text, "tags": parsed.tags, "words": parsed.words}
    # Ranks count from the first page, and one result past this page says whether there is a next.
    wanted_k = query.offset + query.top_k + 1
    photo = query.photo
    ranked: Callable[[int], list[dict]]  # the k best results
    if photo is not None:
        echo["photo"] = {"file": photo.get("file"), "items": [public_item(i) for i in photo["items"]]}
        wanted = merge_filters(filters, text_filters)
        if query.scope == "look":
            if not photo["items"]:
                raise ApiError(ErrorCode.NO_ITEM_FOUND, "no garment was found in the photo")
            vector = np.sum([i["embedding"] for i in photo["items"]], axis=0)

            def ranked(k: int) -> list[dict]:
                return search.look_results(search.similar_looks(vector, k, wanted))

        else:
            item = query_item(photo, query.region)
            echo["item"] = public_item(item)

            def ranked(k: int) -> list[dict]:  # every region: rerank_by_tags weighs the region
                nearest = search.item_results(search.similar_items(item["embedding"], pool_size(k), wanted))
                return rerank_by_tags(nearest, item, k)

    elif parsed.tags or parsed.words or filters:
        if query.scope == "look":
            raise ApiError(ErrorCode.VALIDATION_FAILED, "scope 'look' needs a photo")
        # The text is the query: its tags rank (text_items) where a photo's query takes them as filters.
        wanted = filters
        echo["unknown_words"] = [w for w in parsed.words if not search.text.meanings(w)]
        text_ranking = search.text_ranking(parsed.words, text_filters, wanted)  # read once, asked for k

        def ranked(k: int) -> list[dict]:
            return search.item_results(text_ranking(k))

    else:
        raise ApiError(
            ErrorCode.EMPTY_REQUEST, "send a photo (multipart field 'files'), a text query or filters"
        )
    results = distinct_results(ranked, wanted_k, query.distinct) if query.distinct else ranked(wanted_k)
    echo["filters"] = wanted
    results, after = results[query.offset : wanted_k - 1], results[wanted_k - 1 :]
    next_offset = query.offset + query.top_k
    body: dict[str, Any] = {
        "query": echo,
        "results": results,
        "offset": query.offset,
        "next_offset": next_offset if after and next_offset <= MAX_OFFSET else None,
    }
    if query.save_to:
        body["collection"] = save_results(context.collections, query.save_to, results)
    return body


def save_results(collections: CollectionStore, name: str, results: list[dict]) -> dict:
    """Results as entries of a collection, created if new."""
    try:
        collections.get(name)
    except ApiError:
        collections.create(name)
    entries = [{"image_id": r["image_id"], "item_id": r.get("item_id"), "score": r["score"]} for r in results]
    return collections.add(name, entries) if entries else collections.get(name)


def as_jpeg(data: bytes, settings: Settings) -> bytes:
    return encode_jpeg(decode_image(data, settings.image).pixels)


def media_type(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "", "application/octet-stream")
    except OSError:
        return "application/octet-stream"
