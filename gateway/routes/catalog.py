"""The catalog's public routes: photos are tagged here (the model services), then the request goes on to
the search service, which owns the catalog and its indexes (gateway/clients.py, SearchClient)."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response

from gateway.access import require_write
from gateway.catalog import add_to_catalog, product_form, read_form_or_json, retag_image, tag_uploads
from gateway.state import GatewayState, Images
from services.recommend.schemas import RecommendRequest
from services.search.schemas import SearchRequest
from shared.envelope import success
from shared.errors import ApiError, ErrorCode, every_input_failed
from shared.web import RowId, body_schema

router = APIRouter()


@router.post("/catalog/images", tags=["catalog"], summary="add images to the catalog (tagged, indexed)")
async def add_images(
    gateway: GatewayState,
    images: Images,
    product_id: str | None = Form(None, description="the shop's id of the product the images show"),
    product: str | None = Form(
        None, description='JSON: the product\'s fields, e.g. {"name": "Linen shirt", "in_stock": true}'
    ),
) -> Response:
    fields = product_form(product_id, product)  # before any tagging: a bad field costs nothing
    gateway.services.ensure_ready()
    sources = await images.sources(
        gateway.settings,
        gateway.settings.gateway.sync_max_images,
        "send them in several requests, or add a folder with `kfashion catalog add DIR`",
    )
    results = await add_to_catalog(gateway.pipeline, gateway.search, sources, fields)
    if error := every_input_failed(results):
        raise error
    counts = {s: sum(r["status"] == s for r in results) for s in ("added", "exists", "failed")}
    return JSONResponse(success({"results": results, "counts": counts | {"total": len(results)}}))


@router.post(
    "/catalog/images/{image_id}/retag",
    tags=["catalog"],
    summary="tag a stored image again with the current models (after a model upgrade)",
)
async def retag(gateway: GatewayState, image_id: RowId) -> Response:
    gateway.services.ensure_ready()
    return JSONResponse(success(await retag_image(gateway.pipeline, gateway.search, image_id)))


@router.post(
    "/search",
    tags=["search"],
    summary="similar catalog items or looks for a photo, a text/tag query, or both",
    openapi_extra=body_schema(SearchRequest, "files"),
)
async def search_catalog(request: Request, gateway: GatewayState) -> Response:
    query, files = await read_form_or_json(request, SearchRequest)
    if query.save_to:
        require_write(request, "saving results to a collection (save_to)")
    if len(files) > 1:
        raise ApiError(ErrorCode.TOO_MANY_FILES, "search takes one photo", {"images": len(files)})
    payload = query.model_dump()
    if files:
        photo = (await tag_uploads(gateway.pipeline, files))[0]
        if error := every_input_failed([photo]):
            raise error
        payload["photo"] = photo
    return gateway.search.relay(await gateway.search.send("POST", "/search", json=payload))


@router.post(
    "/recommend",
    tags=["recommend"],
    summary="items to wear with a photo's or a catalog item, and attribute changes; batches too",
    openapi_extra=body_schema(RecommendRequest, "files"),
)
async def recommend(request: Request, gateway: GatewayState) -> Response:
    spec, files = await read_form_or_json(request, RecommendRequest)
    payload = spec.model_dump()
    payload["photos"] = await tag_uploads(gateway.pipeline, files) if files else []
    return gateway.search.relay(await gateway.search.send("POST", "/recommend", json=payload))


async def forward(request: Request, gateway: GatewayState) -> Response:
    """A catalog request the search service answers as it is: passed on unchanged, its answer back."""
    return await gateway.search.forward(request)


# (method, path, tag, summary) of the requests passed on to the search service unchanged; their parameters
# and bodies are described by the search service's handlers (gateway/openapi.py).
FORWARDED: list[tuple[str, str, str, str]] = [
    (
        "GET",
        "/catalog/images",
        "catalog",
        "the catalog's images, newest first (offset, limit, product_id)",
    ),
    ("GET", "/catalog/images/{image_id}", "catalog", "one image with its items"),
    ("GET", "/catalog/stale", "catalog", "images tagged by other models than the current ones"),
    ("GET", "/catalog/images/{image_id}/file", "catalog", "the image as uploaded (format=jpeg)"),
    ("PATCH", "/catalog/images/{image_id}", "catalog", "rename, or correct item tags"),
    ("DELETE", "/catalog/images/{image_id}", "catalog", "remove an image and its items"),
    ("DELETE", "/catalog/images", "catalog", "remove every image of a product (product_id)"),
    ("POST", "/collections", "collections", "create a collection"),
    ("GET", "/collections", "collections", "every collection with its size"),
    ("GET", "/collections/{name}", "collections", "a collection's entries"),
    ("POST", "/collections/{name}/entries", "collections", "save results to a collection"),
    ("DELETE", "/collections/{name}/entries/{image_id}", "collections", "remove an entry (item_id)"),
    ("DELETE", "/collections/{name}", "collections", "delete a collection"),
    ("GET", "/trends", "trends", "counts per period (period, by, fields, start, end)"),
]
for method, path, tag, summary in FORWARDED:
    router.add_api_route(path, forward, methods=[method], tags=[tag], summary=summary)
