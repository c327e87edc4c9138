"""The gateway's side of the catalog: photos are tagged here (the model services), then the request goes on
to the search service, which owns the catalog and its indexes. Embedded, the search service's app runs in
this process and is called through ASGI (no network); otherwise over HTTP. One code path either way.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile as StarletteUpload

from gateway.access import require_write
from gateway.inputs import Source, collect_sources
from gateway.ports import request_with_retries, service_body
from gateway.tagging import Tagged, TaggingPipeline
from services.recommend.routes import RecommendRequest
from services.search.products import ProductFields
from services.search.routes import CatalogUpdate, CollectionCreate, CollectionEntries, SearchRequest
from shared.envelope import success
from shared.errors import ApiError, ErrorCode
from shared.settings import Settings
from shared.web import validation_failed

HOP_HEADERS = ("content-type", "content-disposition")


class SearchClient:
    def __init__(self, settings: Settings):
        self.url = settings.services.search
        self.timeout = settings.services.timeout_s
        self.retries = settings.services.retries
        if self.url:
            self.app = None
            self.client = httpx2.AsyncClient(base_url=self.url.rstrip("/"), timeout=self.timeout)
        else:
            from services.search.app import create_app

            self.app = create_app(settings)
            transport = httpx2.ASGITransport(app=self.app)
            self.client = httpx2.AsyncClient(
                transport=transport, base_url="http://search", timeout=self.timeout
            )

    @property
    def mode(self) -> str:
        return "remote" if self.url else "embedded"

    def start(self) -> None:
        """Embedded: open the catalog and its indexes (what the service's own start would do)."""
        if self.app is not None:
            for job in self.app.state.service.startup:
                job()

    async def close(self) -> None:
        await self.client.aclose()
        if self.app is not None:
            for job in self.app.state.service.shutdown:
                job()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.app is not None:
            ready, details = self.app.state.service.ready_check()
            return ready, {"mode": self.mode, **details}
        try:
            response = httpx2.get(f"{self.url.rstrip('/')}/readyz", timeout=2.0)
            return response.status_code == 200, {"mode": self.mode, "url": self.url}
        except httpx2.HTTPError as exc:
            return False, {"mode": self.mode, "url": self.url, "error": f"{type(exc).__name__}: {exc}"}

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        """The search service's answer, whatever its status; a 503 naming it when it cannot be reached."""
        return await request_with_retries(
            self.client, "search", method, path, self.retries, self.timeout, **kwargs
        )

    @staticmethod
    def relay(response: httpx2.Response) -> Response:
        headers = {k: v for k, v in response.headers.items() if k.lower() in HOP_HEADERS}
        return Response(response.content, status_code=response.status_code, headers=headers)

    async def forward(self, request: Request) -> Response:
        """Pass a request on unchanged (method, path, query, body) and its answer back."""
        response = await self.send(
            request.method,
            request.url.path,
            params=request.query_params.multi_items(),
            content=await request.body(),
            headers={k: v for k, v in request.headers.items() if k.lower() == "content-type"},
        )
        return self.relay(response)

    def body(self, response: httpx2.Response) -> dict:
        """The body of a successful answer; an error answer becomes the same error here."""
        return service_body("search", self.url or "embedded", response)


def request_model(model: type[BaseModel], raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_failed(exc.errors()) from exc


async def read_form_or_json(request: Request, model: type[BaseModel]) -> tuple[Any, list[UploadFile]]:
    """A multipart form (photos in `files`, other fields as form fields; JSON-valued ones as JSON text)
    or a JSON body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        files = [f for f in form.getlist("files") if isinstance(f, StarletteUpload)]
        raw: dict[str, Any] = {}
        for key, value in form.multi_items():
            if key == "files" or not isinstance(value, str):
                continue
            if value.strip().startswith(("{", "[")):
                try:
                    raw[key] = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ApiError(
                        ErrorCode.VALIDATION_FAILED, f"form field {key!r} is not valid JSON", {"field": key}
                    ) from exc
            elif key in raw:  # a repeated field: a list
                raw[key] = [*raw[key], value] if isinstance(raw[key], list) else [raw[key], value]
            else:
                raw[key] = value
        return request_model(model, raw), files
    try:
        raw = await request.json() if await request.body() else {}
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError) and "json" in content_type:
            # Declared JSON: say where it breaks, so the client can find its mistake.
            raise ApiError(
                ErrorCode.BAD_REQUEST,
                f"the JSON body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                {"line": exc.lineno, "column": exc.colno},
            ) from exc
        raise ApiError(ErrorCode.BAD_REQUEST, "the body is neither multipart form data nor JSON") from exc
    if not isinstance(raw, dict):
        raise ApiError(ErrorCode.VALIDATION_FAILED, "the JSON body must be an object")
    return request_model(model, raw), []


def product_form(product_id: str | None, product: str | None) -> ProductFields:
    """The product fields of a catalog upload's form: `product_id` as text, `product` as JSON text."""
    raw: dict[str, Any] = {}
    if product_id is not None:
        raw["product_id"] = product_id
    if product is not None:
        try:
            raw["product"] = json.loads(product)
        except json.JSONDecodeError as exc:
            raise ApiError(
                ErrorCode.VALIDATION_FAILED, "form field 'product' is not valid JSON", {"field": "product"}
            ) from exc
    return request_model(ProductFields, raw)


def _body_schema(model: type[BaseModel], photos: bool) -> dict:
    schema = model.model_json_schema()
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if photos:
        properties = {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}}
        content["multipart/form-data"] = {
            "schema": {"type": "object", "properties": properties | schema["properties"]}
        }
    return {"requestBody": {"content": content}}


async def add_to_catalog(
    pipeline: TaggingPipeline,
    search: SearchClient,
    sources: list[Source],
    product: ProductFields | None = None,
) -> list[dict]:
    """Tag each source (with embeddings) and store the tagged ones in the catalog, with the product they
    show if given: one result per source, "added", "exists" (the same bytes are in the catalog; its
    product is updated) or "failed" (this source only)."""
    tagged = await pipeline.tag_all(sources, embedding=True)
    stored = iter(await store_tagged(search, [t for t in tagged if not t.failed], product))
    return [
        t.result if t.failed else {"file": t.result["file"], **next(stored), "items": len(t.result["items"])}
        for t in tagged
    ]


async def store_tagged(
    search: SearchClient, tagged: list[Tagged], product: ProductFields | None = None
) -> list[dict]:
    """Store tagged images (done, with embeddings) in the catalog: `{status: "added" or "exists",
    image_id}` for each."""
    if not tagged:
        return []
    response = await search.send(
        "POST",
        "/catalog/images",
        files=[("files", (t.result["file"], t.image.data)) for t in tagged if t.image is not None],
        data={
            "tagged": json.dumps([t.result for t in tagged]),
            "product": json.dumps(product.changes() if product else {}),
        },
    )
    return [
        {"status": "added" if outcome["created"] else "exists", "image_id": outcome["image_id"]}
        for outcome in search.body(response)["results"]
    ]


async def retag_image(pipeline: TaggingPipeline, search: SearchClient, image_id: int) -> dict:
    """Tag a stored image again with the current models and replace its items, styles and vectors."""
    image = search.body(await search.send("GET", f"/catalog/images/{image_id}"))
    response = await search.send("GET", f"/catalog/images/{image_id}/file")
    if response.status_code != 200:
        search.body(response)  # raises the search service's error
    loaded = await pipeline.load(Source(image["file_name"], response.content))
    tagged = await pipeline.tag(loaded, embedding=True)
    return search.body(await search.send("PUT", f"/catalog/images/{image_id}/tags", json=tagged))


def catalog_router(settings: Settings, pipeline: TaggingPipeline, search: SearchClient) -> APIRouter:
    router = APIRouter()

    async def tag_uploads(files: list[UploadFile]) -> list[dict]:
        pipeline.services.ensure_ready()
        sources = [Source(f.filename or f"photo{i}", await f.read()) for i, f in enumerate(files)]
        return [t.result for t in await pipeline.tag_all(sources, embedding=True)]

    @router.post("/catalog/images", tags=["catalog"], summary="add images to the catalog (tagged, indexed)")
    async def add_images(
        files: list[UploadFile] | None = File(None, description="images or zip archives, repeated"),
        urls: list[str] | None = Form(None, description="image URLs from allowed hosts, repeated"),
        folders: list[str] | None = Form(
            None, description="folder links on allowed hosts (an index page or an S3 listing), repeated"
        ),
        product_id: str | None = Form(None, description="the shop's id of the product the images show"),
        product: str | None = Form(
            None, description='JSON: the product\'s fields, e.g. {"name": "Linen shirt", "in_stock": true}'
        ),
    ) -> Response:
        fields = product_form(product_id, product)  # before any tagging: a bad field costs nothing
        pipeline.services.ensure_ready()
        sources = await collect_sources(
            files,
            urls,
            settings,
            settings.gateway.sync_max_images,
            "send them in several requests, or add a folder with `kfashion catalog add DIR`",
            folders,
        )
        results = await add_to_catalog(pipeline, search, sources, fields)
        counts = {s: sum(r["status"] == s for r in results) for s in ("added", "exists", "failed")}
        return JSONResponse(success({"results": results, "counts": counts | {"total": len(results)}}))

    @router.post(
        "/catalog/images/{image_id}/retag",
        tags=["catalog"],
        summary="tag a stored image again with the current models (after a model upgrade)",
    )
    async def retag(image_id: int) -> Response:
        pipeline.services.ensure_ready()
        return JSONResponse(success(await retag_image(pipeline, search, image_id)))

    @router.post(
        "/search",
        tags=["search"],
        summary="similar catalog items or looks for a photo, a text/tag query, or both",
        openapi_extra=_body_schema(SearchRequest, photos=True),
    )
    async def search_catalog(request: Request) -> Response:
        query, files = await read_form_or_json(request, SearchRequest)
        if query.save_to:
            require_write(request, "saving results to a collection (save_to)")
        if len(files) > 1:
            raise ApiError(ErrorCode.TOO_MANY_FILES, "search takes one photo", {"images": len(files)})
        payload = query.model_dump()
        if files:
            photo = (await tag_uploads(files))[0]
            if photo["status"] == "failed":
                error = photo["error"]
                raise ApiError(ErrorCode(error["code"]), error["message"], error.get("details"))
            payload["photo"] = photo
        return search.relay(await search.send("POST", "/search", json=payload))

    @router.post(
        "/recommend",
        tags=["recommend"],
        summary="items to wear with a photo's or a catalog item, and attribute changes; batches too",
        openapi_extra=_body_schema(RecommendRequest, photos=True),
    )
    async def recommend(request: Request) -> Response:
        spec, files = await read_form_or_json(request, RecommendRequest)
        payload = spec.model_dump()
        payload["photos"] = await tag_uploads(files) if files else []
        return search.relay(await search.send("POST", "/recommend", json=payload))

    forwarded: list[tuple[str, str, str, str, dict | None]] = [
        (
            "GET",
            "/catalog/images",
            "catalog",
            "the catalog's images, newest first (offset, limit, product_id)",
            None,
        ),
        ("GET", "/catalog/images/{image_id}", "catalog", "one image with its items", None),
        ("GET", "/catalog/stale", "catalog", "images tagged by other models than the current ones", None),
        ("GET", "/catalog/images/{image_id}/file", "catalog", "the image as uploaded (format=jpeg)", None),
        ("PATCH", "/catalog/images/{image_id}", "catalog", "rename, or correct item tags", CatalogUpdate),
        ("DELETE", "/catalog/images/{image_id}", "catalog", "remove an image and its items", None),
        ("DELETE", "/catalog/images", "catalog", "remove every image of a product (product_id)", None),
        ("POST", "/collections", "collections", "create a collection", CollectionCreate),
        ("GET", "/collections", "collections", "every collection with its size", None),
        ("GET", "/collections/{name}", "collections", "a collection's entries", None),
        (
            "POST",
            "/collections/{name}/entries",
            "collections",
            "save results to a collection",
            CollectionEntries,
        ),
        (
            "DELETE",
            "/collections/{name}/entries/{image_id}",
            "collections",
            "remove an entry (item_id)",
            None,
        ),
        ("DELETE", "/collections/{name}", "collections", "delete a collection", None),
        ("GET", "/trends", "trends", "counts per period (period, by, fields, start, end)", None),
    ]
    for method, path, tag, summary, body in forwarded:
        router.add_api_route(
            path,
            search.forward,
            methods=[method],
            tags=[tag],
            summary=summary,
            openapi_extra=_body_schema(body, photos=False) if body else None,
        )
    return router
