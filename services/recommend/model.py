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
from itertools import islice

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


class ItemFeatures:
    """The compatibility features of a list of items as arrays, so that a request scores every catalog item
    in a few array operations: the NPMI is computed once per distinct (region, key, value), not per item."""

    def __init__(self, items: list[dict]):
        self.vocabulary: dict[tuple[str, str, str], int] = {}
        entry_item, entry_feature = [], []  # item entry_item[e] carries feature entry_feature[e]
        for row, item in enumerate(items):
            for key, value in features(item):
                entry_item.append(row)
                entry_feature.append(
                    self.vocabulary.setdefault((item["region"], key, value), len(self.vocabulary))
                )
        self.items = len(items)
        self.entry_item = np.array(entry_item, np.int64)
        self.entry_feature = np.array(entry_feature, np.int64)

    def scores(self, query: dict, compatibility: Compatibility) -> np.ndarray:
        """Per item: the mean NPMI over the pairs of a query value and an item value of the same attribute,
        in [-1, 1]; 0 for an item that shares no attribute with the query."""
        mine: dict[str, list[tuple[str, str, str]]] = {}
        for key, value in features(query):
            mine.setdefault(key, []).append((query["region"], key, value))
        # Per feature: the sum of its NPMI with the query's values of its attribute, and how many those are.
        feature_sum = np.zeros(len(self.vocabulary))
        feature_pairs = np.zeros(len(self.vocabulary))
        for feature, index in self.vocabulary.items():
            for value in mine.get(feature[1], ()):
                feature_sum[index] += compatibility.npmi(value, feature)
                feature_pairs[index] += 1
        sums = np.bincount(self.entry_item, feature_sum[self.entry_feature], minlength=self.items)
        pairs = np.bincount(self.entry_item, feature_pairs[self.entry_feature], minlength=self.items)
        return np.divide(sums, pairs, out=np.zeros(self.items), where=pairs > 0)


@dataclass
class Preferences:
    include: dict[str, list[str]] = field(default_factory=dict)  # every key must match one of its values
    exclude: dict[str, list[str]] = field(default_factory=dict)  # no key may match any of its values


@dataclass
class Change:
    attribute: str  # "category", "length", ...
    to: str  # Korean value
    before: str | None = None


@dataclass
class CatalogState:
    """What requests score against, read once per change of the catalog (tag corrections included)."""

    revision: int
    compatibility: Compatibility
    features: ItemFeatures  # of the items, in the order of the arrays below
    ids: np.ndarray  # ascending (the catalog reads items by id)
    image_ids: np.ndarray
    product_ids: list[str | None]

    @classmethod
    def read(cls, revision: int, looks: list[dict]) -> CatalogState:
        return cls(
            revision,
            Compatibility(looks),
            ItemFeatures(looks),
            np.array([row["id"] for row in looks], np.int64),
            np.array([row["image_id"] for row in looks], np.int64),
            [row["product_id"] for row in looks],
        )

    def images_of(self, item_ids: np.ndarray) -> np.ndarray:
        """The image of each item, -1 for one not in this state (added or deleted since)."""
        if not len(self.ids):
            return np.full(len(item_ids), -1, np.int64)
        at = np.searchsorted(self.ids, item_ids).clip(max=len(self.ids) - 1)
        return np.where(self.ids[at] == item_ids, self.image_ids[at], -1)


class Recommender:
    def __init__(self, search: CatalogSearch):
        self.search = search
        self._state: CatalogState | None = None

    def state(self) -> CatalogState:
        """The catalog's state, read again only when it changed: requests then score candidates without a
        database round trip."""
        revision = self.search.revision
        if self._state is None or self._state.revision != revision:
            self._state = CatalogState.read(revision, self.search.catalog.looks())
        return self._state

    def _candidates(self, regions: list[str], preferences: Preferences) -> np.ndarray:
        """Ids of the items of these regions that pass the preferences, ascending."""
        allowed = np.unique(self.search.allowed_items({"region": regions, **preferences.include}))
        for key, values in preferences.exclude.items():
            allowed = np.setdiff1d(allowed, self.search.allowed_items({"region": regions, key: values}))
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
        state = self.state()
        neighbours = [
            h
            for h in self.search.similar_items(vector, NEIGHBOURS + 1, {"region": [query["region"]]})
            if h.id != query.get("id")
        ]
        neighbour_images: dict[int, float] = {}
        images = state.images_of(np.array([h.id for h in neighbours], np.int64)).tolist()
        for hit, image in zip(neighbours, images, strict=True):
            if image >= 0 and image != exclude_image:
                neighbour_images[image] = max(neighbour_images.get(image, 0.0), max(hit.score, 0.0))
        # Every item's support (the weight of its look among the neighbours') and compatibility, at once.
        support = np.zeros(len(state.ids))
        if neighbour_images:
            images = np.array(sorted(neighbour_images), np.int64)
            at = np.searchsorted(images, state.image_ids).clip(max=len(images) - 1)
            in_neighbours = images[at] == state.image_ids
            support[in_neighbours] = [neighbour_images[i] for i in images[at[in_neighbours]].tolist()]
        fit = state.features.scores(query, state.compatibility)
        matches: dict[str, list[dict]] = {}
        for region in regions:
            allowed = self._candidates([region], preferences)
            candidate = np.isin(state.ids, allowed)
            if exclude_image is not None:
                candidate &= state.image_ids != exclude_image
            rows = np.flatnonzero(candidate)
            share = support[rows] / (support[rows].max(initial=0.0) or 1.0)
            score = SUPPORT_WEIGHT * share + (1 - SUPPORT_WEIGHT) * (fit[rows] + 1) / 2
            order = np.lexsort((state.ids[rows], -score))  # best first, then by id
            ranked = (
                {
                    "id": int(state.ids[rows[o]]),
                    "image_id": int(state.image_ids[rows[o]]),
                    "product_id": state.product_ids[rows[o]],
                    "score": float(score[o]),
                    "support": float(share[o]),
                    "compatibility": float(fit[rows[o]]),
                }
                for o in order.tolist()
            )
            best = list(islice(first_distinct(ranked, distinct) if distinct else ranked, k))
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
            allowed = allowed[self.state().images_of(allowed) != exclude_image]
        if not len(allowed):
            return []

        def nearest(n: int) -> list[dict]:
            scores, ids = self.search.indexes["items"].search(
                np.asarray(vector, np.float32)[None], n, allowed
            )
            hits = [Hit(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            return self.search.item_results(hits)

        return distinct_results(nearest, k, distinct) if distinct else nearest(k)


def target_regions(region: str, wanted: list[str] | None) -> list[str]:
    regions = wanted or list(WORN_WITH[region])
    return [r for r in REGIONS if r in regions and r != region]
