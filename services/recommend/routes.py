"""POST /recommend: items of other regions to wear with a photo's item or a catalog item, filtered by
preferences, and "the same but with one attribute changed". One input, or many in one call (batch
clients): each input succeeds or fails alone."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.attributes.model import label_values
from services.recommend.model import Change, Preferences, Recommender, target_regions
from services.search.products import Distinct
from services.search.query import QUERY_ATTRIBUTES, normalize_filters
from services.search.routes import CatalogContext, check_region, public_item, query_item
from shared.envelope import success
from shared.errors import ApiError, ErrorCode
from shared.taxonomy import ATTRIBUTES, ATTRIBUTES_BY_KO

MAX_INPUTS = 100


class RecommendInput(BaseModel):
    item_id: int | None = Field(None, description="a catalog item, instead of a photo")
    region: str | None = Field(None, description="which item of the photo (default: the surest read)")
    targets: list[str] = Field(
        default_factory=list, description="regions wanted; default: all that go with it"
    )
    include: dict[str, str | list[str]] = Field(default_factory=dict, description='{"style": ["스트리트"]}')
    exclude: dict[str, str | list[str]] = Field(default_factory=dict, description='{"color": ["레드"]}')
    changes: list[str | dict[str, str]] = Field(
        default_factory=list, description='"length: 미니 -> 롱" or {"attribute", "from", "to"}'
    )
    top_k: int = Field(10, ge=1, le=100)
    distinct: Distinct | None = Field(
        None, description="per region and change, one result per catalog image, or per product"
    )


class RecommendRequest(RecommendInput):
    inputs: list[RecommendInput] = Field(
        default_factory=list, max_length=MAX_INPUTS, description="a batch of catalog-item inputs"
    )


class TaggedRecommend(RecommendRequest):
    """What the gateway sends on: the photos already tagged (with embeddings); a failed one carries its
    error."""

    photos: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_INPUTS)


def parse_change(raw: str | dict[str, str]) -> Change:
    """ "length: 미니 -> 롱", "미니 -> 롱" (the attribute found from the values) or a dict."""
    if isinstance(raw, dict):
        key, before, to = raw.get("attribute"), raw.get("from"), raw.get("to")
    else:
        match = re.fullmatch(r"\s*(?:([^:]+):)?\s*(.*?)\s*(?:->|→|=>)\s*(.+?)\s*", raw)
        if not match:
            raise ApiError(
                ErrorCode.VALIDATION_FAILED,
                f"a change reads 'attribute: from -> to', not {raw!r}",
                {"change": raw},
            )
        key, before, to = match.group(1), match.group(2) or None, match.group(3)
    if not to:
        raise ApiError(ErrorCode.VALIDATION_FAILED, "a change needs the value to change to", {"change": raw})
    if key:
        attribute = ATTRIBUTES.get(key.strip()) or ATTRIBUTES_BY_KO.get(key.strip())
    else:
        attribute = next((ATTRIBUTES[k] for k in QUERY_ATTRIBUTES if ATTRIBUTES[k].lookup(to)), None)
    if attribute is None:
        raise ApiError(ErrorCode.VALIDATION_FAILED, f"no attribute for the change {raw!r}", {"change": raw})
    value = normalize_filters({attribute.key: to})[attribute.key][0]
    return Change(attribute.key, value, before)


def recommend_router(context: CatalogContext) -> APIRouter:
    router = APIRouter()
    recommender = Recommender(context.search)

    def run_one(query: dict, vector: np.ndarray, spec: RecommendInput, own_image: int | None) -> dict:
        preferences = Preferences(normalize_filters(spec.include), normalize_filters(spec.exclude))
        targets = target_regions(query["region"], [check_region(t) for t in spec.targets])
        changes = [parse_change(c) for c in spec.changes]
        return {
            "query": public_item(query),
            "matches": recommender.matching(
                query, vector, targets, spec.top_k, preferences, own_image, spec.distinct
            ),
            "changed": [
                {
                    "change": {"attribute": c.attribute, "from": c.before, "to": c.to},
                    "results": recommender.changed(
                        query, vector, c, spec.top_k, preferences, own_image, spec.distinct
                    ),
                }
                for c in changes
            ],
        }

    def from_catalog(spec: RecommendInput) -> dict:
        row = context.search.catalog.items([spec.item_id]).get(spec.item_id)
        vector = context.search.indexes["items"].vector(spec.item_id) if row else None
        if row is None or vector is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no catalog item {spec.item_id}", {"item_id": spec.item_id})
        query = {
            "id": row["id"],
            "image_id": row["image_id"],
            "region": row["region"],
            "box": row["box"],
            "attributes": row["attributes"],
            "style": row["style"],
        }
        return {"input": {"item_id": spec.item_id}, **run_one(query, vector, spec, row["image_id"])}

    def from_photo(tagged: dict, spec: RecommendInput) -> dict:
        check_region(spec.region)
        item = query_item(tagged, spec.region)
        query = {**item, "attributes": label_values(item["attributes"]), "style": tagged.get("style")}
        vector = np.asarray(item["embedding"], np.float32)
        return {"input": {"file": tagged["file"]}, **run_one(query, vector, spec, None)}

    def recommend_all(spec: TaggedRecommend) -> dict:
        catalog_inputs = spec.inputs or ([spec] if spec.item_id is not None else [])
        if not spec.photos and not catalog_inputs:
            raise ApiError(
                ErrorCode.EMPTY_REQUEST, "send photos (multipart field 'files') or catalog 'item_id's"
            )
        if len(spec.photos) + len(catalog_inputs) > MAX_INPUTS:
            raise ApiError(ErrorCode.TOO_MANY_FILES, f"at most {MAX_INPUTS} inputs per call")
        results = []
        for tagged in spec.photos:
            if tagged.get("status") == "failed":
                results.append(
                    {"status": "failed", "input": {"file": tagged["file"]}, "error": tagged["error"]}
                )
                continue
            results.append(outcome({"file": tagged["file"]}, from_photo, tagged, spec))
        for one in catalog_inputs:
            if one.item_id is None:
                error = ApiError(ErrorCode.VALIDATION_FAILED, "an input needs an item_id")
                results.append({"status": "failed", "input": {}, "error": error.to_dict()})
                continue
            results.append(outcome({"item_id": one.item_id}, from_catalog, one))
        failed = sum(r["status"] == "failed" for r in results)
        return {
            "results": results,
            "counts": {"total": len(results), "done": len(results) - failed, "failed": failed},
        }

    @router.post(
        "/recommend",
        tags=["recommend"],
        summary="items to wear with a photo's or a catalog item, and attribute changes; batches too",
    )
    async def recommend(spec: TaggedRecommend) -> Response:
        context.search.ensure_ready()
        return JSONResponse(success(await run_in_threadpool(recommend_all, spec)))

    return router


def outcome(label: dict, work: Any, *args: Any) -> dict:
    try:
        return {"status": "done", **work(*args)}
    except ApiError as error:
        return {"status": "failed", "input": label, "error": error.to_dict()}
