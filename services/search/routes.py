"""The search service's API: /catalog/images, /search, /collections, /trends (and /recommend, from
services/recommend). It never runs a model: photos arrive already tagged (with embeddings) by the gateway,
which owns the model services; this service owns the catalog and its indexes, so there is one copy of
them however many gateways run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from PIL import Image
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from services.search.collections import CollectionStore
from services.search.products import Distinct, ProductFields, distinct_results
from services.search.query import merge_filters, normalize_filters, parse_query
from services.search.rerank import pool_size, rerank_by_tags
from services.search.service import CatalogSearch
from shared.envelope import success
from shared.errors import ApiError, ErrorCode
from shared.imaging import decode_image, encode_jpeg
from shared.settings import Settings
from shared.taxonomy import ATTRIBUTES, ATTRIBUTES_BY_KO, REGIONS
from shared.web import validation_failed

MAX_OFFSET = 1000  # deeper pages are not served
TREND_FIELDS = ("style", "category", "color", "print", "region", "material", "detail", "length", "fit")


@dataclass
class CatalogContext:
    settings: Settings
    search: CatalogSearch
    collections: CollectionStore


class SearchRequest(BaseModel):
    text: str | None = Field(
        None, description='tags or words, Korean or English: "블랙 미니 스커트", "#street"'
    )
    filters: dict[str, str | list[str]] = Field(
        default_factory=dict, description='{"color": ["블랙"], "region": "bottom", "style": "스트리트"}'
    )
    top_k: int = Field(10, ge=1, le=200)
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="results to skip; the next page: next_offset")
    scope: Literal["item", "look"] = Field("item", description="a photo's item, or its whole look")
    distinct: Distinct | None = Field(
        None, description="one result per catalog image, or per product (the best-ranked one)"
    )
    region: str | None = Field(None, description="which item of the photo (default: the surest read)")
    save_to: str | None = Field(None, description="also save the results to this collection (created if new)")


class TaggedSearch(SearchRequest):
    """What the gateway sends on: the query with its photo already tagged (with embeddings)."""

    photo: dict[str, Any] | None = None


class CatalogUpdate(ProductFields):
    file_name: str | None = Field(None, min_length=1, max_length=1024)
    items: dict[int, dict[str, str | list[str]]] = Field(
        default_factory=dict, description='corrections per item id: {"12": {"color": "화이트"}}'
    )


class CollectionCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[^/]+$")
    description: str = Field("", max_length=1024)
    entries: list[dict[str, Any]] = Field(default_factory=list)


class CollectionEntries(BaseModel):
    entries: list[dict[str, Any]] = Field(min_length=1)


def product_fields(raw: str) -> ProductFields:
    """A request's product fields sent as JSON text in a form field."""
    try:
        return ProductFields.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_failed(exc.errors()) from exc


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(success(body, status), status_code=status)


def read_confidence(item: dict) -> float:
    """How sure the models are of an item: its detection score times the probabilities of the category and
    colour read on it (what a search matches on)."""
    tags = item["attributes"]
    return item["score"] * tags["category"]["score"] * tags["color"]["score"]


def query_item(tagged: dict, region: str | None) -> dict:
    """The item of a tagged photo a query is about: the one the models are surest of (`read_confidence`), of
    `region` if given. On 300 photos (docs/benchmarks.md, "Search quality") this answered right more often
    than the best-detected item, which is often a top whose category the models read least well."""
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


def catalog_router(context: CatalogContext) -> APIRouter:
    router = APIRouter()
    search = context.search

    @router.post("/catalog/images", tags=["catalog"], summary="store tagged images and index their items")
    async def add_images(
        files: list[UploadFile] = File(..., description="the images, repeated"),
        tagged: str = Form(..., description="JSON list: each image's /tagging result with embeddings"),
        product: str = Form("{}", description="JSON: the product the images show (ProductFields)"),
    ) -> Response:
        search.ensure_ready()
        try:
            results = json.loads(tagged)
        except json.JSONDecodeError as exc:
            raise ApiError(ErrorCode.VALIDATION_FAILED, "tagged: not valid JSON") from exc
        if not isinstance(results, list) or len(results) != len(files):
            raise ApiError(ErrorCode.VALIDATION_FAILED, "tagged: one result per file, in order")
        changes = product_fields(product).changes()
        added = []
        for upload, result in zip(files, results, strict=True):
            image_id, created = await run_in_threadpool(
                search.add, result["file"], await upload.read(), result, changes
            )
            added.append({"image_id": image_id, "created": created})
        return _json({"results": added})

    @router.get("/catalog/images", tags=["catalog"], summary="the catalog's images, newest first")
    async def list_images(
        offset: int = Query(0, ge=0),
        limit: int = Query(50, ge=1, le=500),
        product_id: str | None = Query(None, description="only this product's images"),
    ) -> Response:
        total, images = await run_in_threadpool(search.catalog.list_images, offset, limit, product_id)
        return _json({"total": total, "offset": offset, "images": images})

    @router.delete("/catalog/images", tags=["catalog"], summary="remove every image of a product")
    async def delete_product(product_id: str = Query(..., min_length=1, max_length=128)) -> Response:
        image_ids, item_ids = await run_in_threadpool(search.delete_product, product_id)
        return _json({"product_id": product_id, "deleted": image_ids, "items": item_ids})

    @router.get("/catalog/stale", tags=["catalog"], summary="images tagged by other models than the current")
    async def stale_images() -> Response:
        ids = await run_in_threadpool(search.stale_image_ids)
        return _json({"versions": search.versions, "image_ids": ids})

    @router.put("/catalog/images/{image_id}/tags", tags=["catalog"], summary="replace an image's tagging")
    async def replace_tags(image_id: int, tagged: dict[str, Any]) -> Response:
        search.ensure_ready()
        if not isinstance(tagged.get("items"), list):
            raise ApiError(ErrorCode.VALIDATION_FAILED, "the body must be a /tagging result with embeddings")
        return _json(await run_in_threadpool(search.retag, image_id, tagged))

    @router.get("/catalog/images/{image_id}", tags=["catalog"], summary="one image with its items")
    async def get_image(image_id: int) -> Response:
        return _json(await run_in_threadpool(search.catalog.get, image_id))

    @router.get("/catalog/images/{image_id}/file", tags=["catalog"], summary="the image as uploaded")
    async def image_file(
        image_id: int,
        image_format: Literal["original", "jpeg"] = Query(
            "original", alias="format", description="jpeg: converted, for browsers that cannot show HEIC"
        ),
    ) -> Response:
        data = await run_in_threadpool(search.catalog.image_bytes, image_id)
        if image_format == "jpeg":
            data = await run_in_threadpool(_as_jpeg, data, context.settings)
        return Response(data, media_type=_media_type(data))

    @router.patch("/catalog/images/{image_id}", tags=["catalog"], summary="rename, or correct item tags")
    async def update_image(image_id: int, update: CatalogUpdate) -> Response:
        corrections = {item_id: attribute_values(values) for item_id, values in update.items.items()}
        image = await run_in_threadpool(
            search.update, image_id, update.file_name, corrections, update.changes()
        )
        return _json(image)

    @router.delete("/catalog/images/{image_id}", tags=["catalog"], summary="remove an image and its items")
    async def delete_image(image_id: int) -> Response:
        item_ids = await run_in_threadpool(search.delete, image_id)
        return _json({"image_id": image_id, "deleted": True, "items": item_ids})

    @router.post("/search", tags=["search"], summary="similar items or looks; text/tag queries")
    async def search_catalog(query: TaggedSearch) -> Response:
        search.ensure_ready()
        return _json(await run_in_threadpool(run_search, context, query))

    @router.post("/collections", tags=["collections"], status_code=201, summary="create a collection")
    async def create_collection(collection: CollectionCreate) -> Response:
        created = await run_in_threadpool(context.collections.create, collection.name, collection.description)
        if collection.entries:
            created = await run_in_threadpool(context.collections.add, collection.name, collection.entries)
        return _json(created, 201)

    @router.get("/collections", tags=["collections"], summary="every collection with its size")
    async def list_collections() -> Response:
        return _json({"collections": await run_in_threadpool(context.collections.list)})

    @router.get("/collections/{name}", tags=["collections"], summary="a collection's entries")
    async def get_collection(name: str) -> Response:
        return _json(await run_in_threadpool(context.collections.get, name))

    @router.post("/collections/{name}/entries", tags=["collections"], summary="save results to a collection")
    async def add_entries(name: str, entries: CollectionEntries) -> Response:
        return _json(await run_in_threadpool(context.collections.add, name, entries.entries))

    @router.delete("/collections/{name}/entries/{image_id}", tags=["collections"], summary="remove an entry")
    async def remove_entry(name: str, image_id: int, item_id: int = Query(0, ge=0)) -> Response:
        return _json(await run_in_threadpool(context.collections.remove, name, image_id, item_id))

    @router.delete("/collections/{name}", tags=["collections"], summary="delete a collection")
    async def delete_collection(name: str) -> Response:
        await run_in_threadpool(context.collections.delete, name)
        return _json({"name": name, "deleted": True})

    @router.get("/trends", tags=["trends"], summary="counts of styles, categories, colors, prints per period")
    async def trends(
        period: Literal["day", "week", "month"] = Query("month"),
        by: Literal["created", "captured"] = Query("created", description="upload or capture (EXIF) date"),
        fields: str = Query("style,category,color,print", description=f"any of {', '.join(TREND_FIELDS)}"),
        start: datetime | None = Query(None, description="from this date (inclusive)"),
        end: datetime | None = Query(None, description="until this date (exclusive)"),
    ) -> Response:
        wanted = [f.strip() for f in fields.split(",") if f.strip()]
        unknown = [f for f in wanted if f not in TREND_FIELDS]
        if unknown or not wanted:
            raise ApiError(
                ErrorCode.VALIDATION_FAILED,
                f"trend fields are {', '.join(TREND_FIELDS)}; got {fields!r}",
                {"fields": list(TREND_FIELDS)},
            )
        periods = await run_in_threadpool(search.catalog.trends, period, wanted, by, start, end)
        return _json({"period": period, "by": by, "fields": wanted, "periods": periods})

    return router


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
        index = search.text_index() if parsed.words else None
        echo["unknown_words"] = [w for w in parsed.words if index is not None and not index.meanings(w)]

        def ranked(k: int) -> list[dict]:
            return search.item_results(search.text_items(parsed.words, text_filters, k, wanted))

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
        body["collection"] = _save_results(context, query.save_to, results)
    return body


def _save_results(context: CatalogContext, name: str, results: list[dict]) -> dict:
    try:
        context.collections.get(name)
    except ApiError:
        context.collections.create(name)
    entries = [{"image_id": r["image_id"], "item_id": r.get("item_id"), "score": r["score"]} for r in results]
    return context.collections.add(name, entries) if entries else context.collections.get(name)


def _as_jpeg(data: bytes, settings: Settings) -> bytes:
    return encode_jpeg(decode_image(data, settings.image).pixels)


def _media_type(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "", "application/octet-stream")
    except OSError:
        return "application/octet-stream"
