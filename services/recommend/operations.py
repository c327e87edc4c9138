"""What POST /recommend does, without the route: each input (a tagged photo or a catalog item) succeeds or
fails alone; its matches of other regions and its attribute changes come from the Recommender."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from services.recommend.model import Change, Preferences, Recommender, target_regions
from services.recommend.schemas import MAX_INPUTS, RecommendInput, TaggedRecommend
from services.search.operations import check_region, public_item, query_item
from services.search.query import QUERY_ATTRIBUTES, normalize_filters
from services.search.service import CatalogSearch
from shared.errors import ApiError, ErrorCode
from shared.labels import label_values
from shared.taxonomy import ATTRIBUTES, ATTRIBUTES_BY_KO


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


class Recommendations:
    """Recommendations over one catalog."""

    def __init__(self, search: CatalogSearch):
        self.search = search
        self.recommender = Recommender(search)

    def recommend_all(self, spec: TaggedRecommend) -> dict:
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
            results.append(outcome({"file": tagged["file"]}, self.from_photo, tagged, spec))
        for one in catalog_inputs:
            if one.item_id is None:
                error = ApiError(ErrorCode.VALIDATION_FAILED, "an input needs an item_id")
                results.append({"status": "failed", "input": {}, "error": error.to_dict()})
                continue
            results.append(outcome({"item_id": one.item_id}, self.from_catalog, one))
        failed = sum(r["status"] == "failed" for r in results)
        return {
            "results": results,
            "counts": {"total": len(results), "done": len(results) - failed, "failed": failed},
        }

    def from_catalog(self, spec: RecommendInput) -> dict:
        row = self.search.catalog.items([spec.item_id]).get(spec.item_id)
        vector = self.search.indexes["items"].vector(spec.item_id) if row else None
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
        return {"input": {"item_id": spec.item_id}, **self.one(query, vector, spec, row["image_id"])}

    def from_photo(self, tagged: dict, spec: RecommendInput) -> dict:
        check_region(spec.region)
        item = query_item(tagged, spec.region)
        query = {**item, "attributes": label_values(item["attributes"]), "style": tagged.get("style")}
        vector = np.asarray(item["embedding"], np.float32)
        return {"input": {"file": tagged["file"]}, **self.one(query, vector, spec, None)}

    def one(self, query: dict, vector: np.ndarray, spec: RecommendInput, own_image: int | None) -> dict:
        preferences = Preferences(normalize_filters(spec.include), normalize_filters(spec.exclude))
        targets = target_regions(query["region"], [check_region(t) for t in spec.targets])
        changes = [parse_change(c) for c in spec.changes]
        recommender = self.recommender
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


def outcome(label: dict, work: Callable[..., dict], *args: Any) -> dict:
    try:
        return {"status": "done", **work(*args)}
    except ApiError as error:
        return {"status": "failed", "input": label, "error": error.to_dict()}
