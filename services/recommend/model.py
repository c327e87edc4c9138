"""Matching items and attribute changes over the catalog (docs/recommend.md has the method).

Compatibility is learned from the catalog's looks: how much more often than chance an item with value a
(say a black mini skirt's "category: 스커트") appears in one image beside an item of another region with
value b ("category: 블라우스"), as normalised pointwise mutual information (NPMI, in [-1, 1]) per attribute,
averaged over the attributes both items carry. A candidate is scored by
    0.5 * support + 0.5 * (compatibility + 1) / 2
where support is how strongly it was worn with items like the query (the similarity of the query to the most
similar item of its look, among the query's nearest catalog items, scaled to [0, 1]). Candidates that no
similar look holds are ranked by compatibility alone (support 0), so k come back when k exist.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from services.search.products import Distinct, distinct_results, first_distinct
from services.search.service import CatalogSearch, Hit
from shared.taxonomy import CATEGORY_REGION, REGIONS

COMPATIBILITY_KEYS = ("category", "color", "print", "material", "style")
NEIGHBOURS = 50  # similar catalog items whose looks propose candidates
SUPPORT_WEIGHT = 0.5
SMOOTHING = 0.5  # added to every count, so a pair seen once in a small catalog is not certainty

# Regions that can be worn with each region (a onepiece replaces a top and a bottom).
WORN_WITH = {
    "outer": ("top", "bottom", "onepiece"),
    "top": ("outer", "bottom"),
    "bottom": ("outer", "top"),
    "onepiece": ("outer",),
}


def features(item: dict) -> list[tuple[str, str]]:
    """(key, value) pairs of an item used for compatibility; multi-valued attributes give several."""
    found = []
    for key in COMPATIBILITY_KEYS:
        value = item.get("style") if key == "style" else item["attributes"].get(key)
        for one in value if isinstance(value, list) else [value]:
            if one:
                found.append((key, one))
    return found


class Compatibility:
    """Co-occurrence counts of (region, key, value) pairs across the regions of each catalog image."""

    def __init__(self, looks: list[dict]):
        self.single: Counter[tuple[str, str, str]] = Counter()
        self.pairs: Counter[tuple[tuple[str, str, str], tuple[str, str, str]]] = Counter()
        by_image: dict[int, list[dict]] = {}
        for item in looks:
            by_image.setdefault(item["image_id"], []).append(item)
        self.images = len(by_image)
        for items in by_image.values():
            present = {
                region: {(region, k, v) for i in items if i["region"] == region for k, v in features(i)}
                for region in {i["region"] for i in items}
            }
            for region, values in present.items():
                self.single.update(values)
                for other, other_values in present.items():
                    if other != region:
                        self.pairs.update((a, b) for a in values for b in other_values if a[1] == b[1])

    def npmi(self, a: tuple[str, str, str], b: tuple[str, str, str]) -> float:
        if self.images == 0:
            return 0.0
        total = self.images + SMOOTHING
        p_a = (self.single[a] + SMOOTHING) / total
        p_b = (self.single[b] + SMOOTHING) / total
        p_ab = (self.pairs[(a, b)] + SMOOTHING * p_a * p_b) / total
        if p_ab >= 1.0:  # in every look, as both are: independent, no preference
            return 0.0
        return max(-1.0, min(1.0, math.log(p_ab / (p_a * p_b)) / -math.log(p_ab)))

    def score(self, query: dict, candidate: dict) -> float:
        """Mean NPMI over the attributes both carry, in [-1, 1]; 0 when they share none."""
        mine = {}
        for key, value in features(query):
            mine.setdefault(key, []).append((query["region"], key, value))
        values = [
            self.npmi(a, (candidate["region"], key, value))
            for key, value in features(candidate)
            for a in mine.get(key, [])
        ]
        return float(np.mean(values)) if values else 0.0


@dataclass
class Preferences:
    include: dict[str, list[str]] = field(default_factory=dict)  # every key must match one of its values
    exclude: dict[str, list[str]] = field(default_factory=dict)  # no key may match any of its values


@dataclass
class Change:
    attribute: str  # "category", "length", ...
    to: str  # Korean value
    before: str | None = None


class Recommender:
    def __init__(self, search: CatalogSearch):
        self.search = search
        self._cache: tuple[int, Compatibility, dict[int, dict]] | None = None

    def _state(self) -> tuple[Compatibility, dict[int, dict]]:
        """The compatibility counts and every item's row (region, look, attributes, style), read from the
        catalog once per change of it (tag corrections included): requests then score candidates without a
        database round trip."""
        revision = self.search.revision
        if self._cache is None or self._cache[0] != revision:
            looks = self.search.catalog.looks()
            self._cache = (revision, Compatibility(looks), {row["id"]: row for row in looks})
        return self._cache[1], self._cache[2]

    def _candidates(self, regions: list[str], preferences: Preferences) -> set[int]:
        allowed = set(self.search.allowed_items({"region": regions, **preferences.include}).tolist())
        for key, values in preferences.exclude.items():
            allowed -= set(self.search.allowed_items({"region": regions, key: values}).tolist())
        return allowed

    def matching(
        self,
        query: dict,
        vector: np.ndarray,
        regions: list[str],
        k: int,
        preferences: Preferences,
        exclude_image: int | None = None,
        distinct: Distinct | None = None,
    ) -> dict[str, list[dict]]:
        """Per target region, the k best items to wear with the query item (with `distinct`, the best of
        each catalog image or product)."""
        compatibility, catalog_rows = self._state()
        neighbours = [
            h
            for h in self.search.similar_items(vector, NEIGHBOURS + 1, {"region": [query["region"]]})
            if h.id != query.get("id")
        ]
        neighbour_images: dict[int, float] = {}
        for hit in neighbours:
            row = catalog_rows.get(hit.id)
            if row and row["image_id"] != exclude_image:
                image = row["image_id"]
                neighbour_images[image] = max(neighbour_images.get(image, 0.0), max(hit.score, 0.0))
        matches: dict[str, list[dict]] = {}
        for region in regions:
            allowed = self._candidates([region], preferences)
            rows = {i: catalog_rows[i] for i in allowed if i in catalog_rows}
            support: dict[int, float] = {}
            for item_id, row in rows.items():
                weight = neighbour_images.get(row["image_id"])
                if weight is not None:
                    support[item_id] = support.get(item_id, 0.0) + weight
            top_support = max(support.values(), default=0.0) or 1.0
            scored = []
            for item_id, row in rows.items():
                if row["image_id"] == exclude_image:
                    continue
                fit = compatibility.score(query, row)
                share = support.get(item_id, 0.0) / top_support
                score = SUPPORT_WEIGHT * share + (1 - SUPPORT_WEIGHT) * (fit + 1) / 2
                scored.append(
                    {
                        "id": item_id,
                        "image_id": row["image_id"],
                        "product_id": row["product_id"],
                        "score": score,
                        "support": share,
                        "compatibility": fit,
                    }
                )
            scored.sort(key=lambda s: (-s["score"], s["id"]))
            best = (first_distinct(scored, distinct) if distinct else scored)[:k]
            results = self.search.item_results([Hit(s["id"], s["score"]) for s in best])
            chosen_by_id = {s["id"]: s for s in best}  # item_results leaves out items deleted meanwhile
            for result in results:
                chosen = chosen_by_id[result["item_id"]]
                result["support"] = round(chosen["support"], 6)
                result["compatibility"] = round(chosen["compatibility"], 6)
            matches[region] = results
        return matches

    def changed(
        self,
        query: dict,
        vector: np.ndarray,
        change: Change,
        k: int,
        preferences: Preferences,
        exclude_image: int | None = None,
        distinct: Distinct | None = None,
    ) -> list[dict]:
        """The items closest to the query that carry the changed value (of the region it belongs to); with
        `distinct`, the closest of each catalog image or product."""
        region = CATEGORY_REGION.get(change.to, query["region"]) if change.attribute == "category" else None
        region = region or query["region"]
        allowed = self._candidates(
            [region], Preferences({**preferences.include, change.attribute: [change.to]}, preferences.exclude)
        )
        if exclude_image is not None:
            rows = self._state()[1]
            allowed = {i for i in allowed if rows.get(i, {}).get("image_id") != exclude_image}
        if not allowed:
            return []
        candidates = np.array(sorted(allowed), np.int64)

        def nearest(n: int) -> list[dict]:
            scores, ids = self.search.indexes["items"].search(
                np.asarray(vector, np.float32)[None], n, candidates
            )
            hits = [Hit(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            return self.search.item_results(hits)

        return distinct_results(nearest, k, distinct) if distinct else nearest(k)


def target_regions(region: str, wanted: list[str] | None) -> list[str]:
    regions = wanted or list(WORN_WITH[region])
    return [r for r in REGIONS if r in regions and r != region]
