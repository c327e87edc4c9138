"""The gateway's side of the catalog: photos are tagged here (the model services), then stored by the search
service, which owns the catalog and its indexes (reached through gateway/clients.py, SearchClient). Used by
the routes (gateway/routes/catalog.py), the job worker and `kfashion catalog`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request, UploadFile
from starlette.datastructures import UploadFile as StarletteUpload

from gateway.clients import SearchClient
from gateway.inputs import Source, is_image_name, listed_sources
from gateway.tagging import Tagged, TaggingPipeline
from services.search.schemas import (
    ProductFields,
)
from shared.errors import ApiError, ErrorCode
from shared.settings import Settings
from shared.web import ModelT, form_fields, json_body, validated


async def read_form_or_json(request: Request, model: type[ModelT]) -> tuple[ModelT, list[UploadFile]]:
    """A multipart form (photos in `files`, other fields as form fields; JSON-valued ones as JSON text)
    or a JSON body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        files = [f for f in form.getlist("files") if isinstance(f, StarletteUpload)]
        return validated(model, form_fields(form, skip="files")), files
    body = await json_body(request)
    try:
        raw = json.loads(body) if body else {}
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
    return validated(model, raw), []


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
    return validated(ProductFields, raw)


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


async def tag_uploads(pipeline: TaggingPipeline, files: list[UploadFile]) -> list[dict]:
    """The /tagging results (with embeddings) of a request's photos, each done or failed alone."""
    pipeline.services.ensure_ready()
    sources = [Source(f.filename or f"photo{i}", await f.read()) for i, f in enumerate(files)]
    return [t.result for t in await pipeline.tag_all(sources, embedding=True)]


# A local file (read when its batch is tagged, so a large folder is never all in memory) or a listed image
# of a folder link (fetched by the pipeline).
FolderImage = Path | Source


async def folder_images(folder: str, settings: Settings, limit: int | None = None) -> list[FolderImage]:
    """The images of a local folder (recursively, by name) or of a folder link (an index page or an S3
    listing, read as /tagging reads one); an unreadable listing raises its error."""
    if folder.startswith(("http://", "https://")):
        listed = await listed_sources(folder, settings, limit)
        if len(listed) == 1 and listed[0].error:  # the listing could not be read, or lists no images
            raise listed[0].error
        return list(listed)
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_name(p.name))
    return list(files[:limit] if limit else files)


def image_name(item: FolderImage, root: Path) -> str:
    return item.name if isinstance(item, Source) else str(item.relative_to(root))


def product_groups(
    items: list[FolderImage], root: Path, product_of: dict[str, ProductFields]
) -> list[tuple[ProductFields | None, list[FolderImage]]]:
    """The images by product (found by the image's path under the folder, or its file name): the catalog
    takes one product per request, so a product's images go in together."""
    groups: dict[str, tuple[ProductFields | None, list[FolderImage]]] = {}
    for item in items:
        name = image_name(item, root)
        found = product_of.get(name) or product_of.get(name.rsplit("/", 1)[-1])
        key = json.dumps(found.changes(), sort_keys=True) if found else ""
        groups.setdefault(key, (found, []))[1].append(item)
    return list(groups.values())


async def add_folder(
    pipeline: TaggingPipeline,
    search: SearchClient,
    groups: list[tuple[ProductFields | None, list[FolderImage]]],
    root: Path,
    batch: int,
    on_results: Callable[[list[dict]], None],
) -> None:
    """Tag and store the grouped images `batch` at a time, as POST /catalog/images does; `on_results` gets
    each batch's results (added, exists or failed, each image alone)."""
    for product, members in groups:
        for start in range(0, len(members), batch):
            sources = [
                item if isinstance(item, Source) else Source(image_name(item, root), item.read_bytes())
                for item in members[start : start + batch]
            ]
            on_results(await add_to_catalog(pipeline, search, sources, product))


async def catalog_image_ids(search: SearchClient, stale_only: bool) -> list[int]:
    """The ids of the images tagged by other models than the current ones, or of every image."""
    if stale_only:
        return search.body(await search.send("GET", "/catalog/stale"))["image_ids"]
    ids, offset = [], 0
    while True:
        page = search.body(
            await search.send("GET", "/catalog/images", params={"offset": offset, "limit": 500})
        )
        ids += [image["id"] for image in page["images"]]
        offset += 500
        if offset >= page["total"]:
            return sorted(ids)
