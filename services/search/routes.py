"""The search service's API: /catalog/images, /search, /collections, /trends (and /recommend, from
services/recommend). It never runs a model: photos arrive already tagged (with embeddings) by the gateway,
which owns the model services; this service owns the catalog and its indexes, so there is one copy of
them however many gateways run. Handlers only: contracts in schemas.py, the work in operations.py.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from services.search.operations import (
    CatalogContext,
    as_jpeg,
    attribute_values,
    media_type,
    product_fields,
    run_search,
)
from services.search.schemas import (
    TREND_FIELDS,
    CatalogUpdate,
    CollectionCreate,
    CollectionEntries,
    TaggedSearch,
)
from shared.envelope import success
from shared.errors import ApiError, ErrorCode
from shared.schema import MAX_ROW_ID
from shared.web import Offset, RowId


def catalog_context(request: Request) -> CatalogContext:
    """The app's catalog (set by services/search/app.py)."""
    return request.app.state.catalog


Catalog = Annotated[CatalogContext, Depends(catalog_context)]
router = APIRouter()


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(success(body, status), status_code=status)


@router.post("/catalog/images", tags=["catalog"], summary="store tagged images and index their items")
async def add_images(
    catalog: Catalog,
    files: list[UploadFile] = File(..., description="the images, repeated"),
    tagged: str = Form(..., description="JSON list: each image's /tagging result with embeddings"),
    product: str = Form("{}", description="JSON: the product the images show (ProductFields)"),
) -> Response:
    catalog.search.ensure_ready()
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
            catalog.search.add, result["file"], await upload.read(), result, changes
        )
        added.append({"image_id": image_id, "created": created})
    return _json({"results": added})


@router.get("/catalog/images", tags=["catalog"], summary="the catalog's images, newest first")
async def list_images(
    catalog: Catalog,
    offset: Offset = 0,
    limit: int = Query(50, ge=1, le=500),
    product_id: str | None = Query(None, description="only this product's images"),
) -> Response:
    total, images = await run_in_threadpool(catalog.search.catalog.list_images, offset, limit, product_id)
    return _json({"total": total, "offset": offset, "images": images})


@router.delete("/catalog/images", tags=["catalog"], summary="remove every image of a product")
async def delete_product(
    catalog: Catalog, product_id: str = Query(..., min_length=1, max_length=128)
) -> Response:
    image_ids, item_ids = await run_in_threadpool(catalog.search.delete_product, product_id)
    return _json({"product_id": product_id, "deleted": image_ids, "items": item_ids})


@router.get("/catalog/stale", tags=["catalog"], summary="images tagged by other models than the current")
async def stale_images(catalog: Catalog) -> Response:
    ids = await run_in_threadpool(catalog.search.stale_image_ids)
    return _json({"versions": catalog.search.versions, "image_ids": ids})


@router.put("/catalog/images/{image_id}/tags", tags=["catalog"], summary="replace an image's tagging")
async def replace_tags(catalog: Catalog, image_id: RowId, tagged: dict[str, Any]) -> Response:
    catalog.search.ensure_ready()
    if not isinstance(tagged.get("items"), list):
        raise ApiError(ErrorCode.VALIDATION_FAILED, "the body must be a /tagging result with embeddings")
    return _json(await run_in_threadpool(catalog.search.retag, image_id, tagged))


@router.get("/catalog/images/{image_id}", tags=["catalog"], summary="one image with its items")
async def get_image(catalog: Catalog, image_id: RowId) -> Response:
    return _json(await run_in_threadpool(catalog.search.catalog.get, image_id))


@router.get("/catalog/images/{image_id}/file", tags=["catalog"], summary="the image as uploaded")
async def image_file(
    catalog: Catalog,
    image_id: RowId,
    image_format: Literal["original", "jpeg"] = Query(
        "original", alias="format", description="jpeg: converted, for browsers that cannot show HEIC"
    ),
) -> Response:
    data = await run_in_threadpool(catalog.search.catalog.image_bytes, image_id)
    if image_format == "jpeg":
        data = await run_in_threadpool(as_jpeg, data, catalog.settings)
    return Response(data, media_type=media_type(data))


@router.patch("/catalog/images/{image_id}", tags=["catalog"], summary="rename, or correct item tags")
async def update_image(catalog: Catalog, image_id: RowId, update: CatalogUpdate) -> Response:
    corrections = {item_id: attribute_values(values) for item_id, values in update.items.items()}
    image = await run_in_threadpool(
        catalog.search.update, image_id, update.file_name, corrections, update.changes()
    )
    return _json(image)


@router.delete("/catalog/images/{image_id}", tags=["catalog"], summary="remove an image and its items")
async def delete_image(catalog: Catalog, image_id: RowId) -> Response:
    item_ids = await run_in_threadpool(catalog.search.delete, image_id)
    return _json({"image_id": image_id, "deleted": True, "items": item_ids})


@router.post("/search", tags=["search"], summary="similar items or looks; text/tag queries")
async def search_catalog(catalog: Catalog, query: TaggedSearch) -> Response:
    catalog.search.ensure_ready()
    return _json(await run_in_threadpool(run_search, catalog, query))


@router.post("/collections", tags=["collections"], status_code=201, summary="create a collection")
async def create_collection(catalog: Catalog, collection: CollectionCreate) -> Response:
    collections = catalog.collections
    created = await run_in_threadpool(collections.create, collection.name, collection.description)
    if collection.entries:
        entries = [e.model_dump() for e in collection.entries]
        created = await run_in_threadpool(collections.add, collection.name, entries)
    return _json(created, 201)


@router.get("/collections", tags=["collections"], summary="every collection with its size")
async def list_collections(catalog: Catalog) -> Response:
    return _json({"collections": await run_in_threadpool(catalog.collections.list)})


@router.get("/collections/{name}", tags=["collections"], summary="a collection's entries")
async def get_collection(catalog: Catalog, name: str) -> Response:
    return _json(await run_in_threadpool(catalog.collections.get, name))


@router.post("/collections/{name}/entries", tags=["collections"], summary="save results to a collection")
async def add_entries(catalog: Catalog, name: str, entries: CollectionEntries) -> Response:
    added = [e.model_dump() for e in entries.entries]
    return _json(await run_in_threadpool(catalog.collections.add, name, added))


@router.delete("/collections/{name}/entries/{image_id}", tags=["collections"], summary="remove an entry")
async def remove_entry(
    catalog: Catalog, name: str, image_id: RowId, item_id: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0
) -> Response:
    return _json(await run_in_threadpool(catalog.collections.remove, name, image_id, item_id))


@router.delete("/collections/{name}", tags=["collections"], summary="delete a collection")
async def delete_collection(catalog: Catalog, name: str) -> Response:
    await run_in_threadpool(catalog.collections.delete, name)
    return _json({"name": name, "deleted": True})


@router.get("/trends", tags=["trends"], summary="counts of styles, categories, colors, prints per period")
async def trends(
    catalog: Catalog,
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
    periods = await run_in_threadpool(catalog.search.catalog.trends, period, wanted, by, start, end)
    return _json({"period": period, "by": by, "fields": wanted, "periods": periods})
