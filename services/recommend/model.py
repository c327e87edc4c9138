"""Matching items and attribute changes over the catalog (docs/recommend.md has the method).

Compatibility is learned from the catalog's looks: how much more often than chance an item with value a
(say a black mini skirt's "category: 스커트") appears in one image beside an item of another region with
value b ("category: 블라우스"), as normalised pointwise mutual information (NPMI, in [-1, 1]) per attribute,
averaged over the attributes both items carry. The counts live in the catalog's database
(services/search/look_counts.py), a request reads those of its own values. A candidate is scored by
    0.5 * support + 0.5 * (compatibility + 1) / 2
where support is how strongly it was worn with items like the query (the similarity of the query to the most
similar item of its look, among the query's nearest catalog items, scaled to [0, 1]). Candidates that no
similar look holds are ranked by compatibility alone (support 0), so k come back when k exist.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import islice

import numpy as np

from services.search.look_counts import Compatibility, Feature, features
from services.search.products import Distinct, distinct_results, first_distinct
from services.search.service import CatalogSearch, Hit
from shared.taxonomy import CATEGORY_REGION, REGIONS

NEIGHBOURS = 50  # similar catalog items whose looks propose candidates
SUPPORT_WEIGHT = 0.5

# Regions that can be worn with each region (a onepiece replaces a top and a bottom).
WORN_WITH = {
    "outer": ("top", "bottom", "onepiece"),
    "top": ("outer", "bottom"),
    "bottom": ("outer", "top"),
    "onepiece": ("outer",),
}


def compact_ints(values: np.ndarray | list[int]) -> np.ndarray:
    """Integers as int32 when they fit (ids and indexes a catalog state keeps per item), else int64."""
    values = np.asarray(values, np.int64)
    fits = not len(values) or (values.min() >= -(2**31) and values.max() < 2**31)
    return values.astype(np.int32) if fits else values


def _feature_numbers(entries: np.ndarray | list[int], features: int) -> np.ndarray:
    """Feature numbers as int16 while the vocabulary is that small (the taxonomy's values per region: a few
    hundred), else as `compact_ints`."""
    return np.asarray(entries, np.int16) if features < 2**15 else compact_ints(entries)


@dataclass(frozen=True)
class ItemFeatures:
    """The compatibility features of a list of items in compressed rows (item i carries the features
    `entries[offsets[i]:offsets[i + 1]]`, numbered in `names`), so that a request scores every catalog item
    in a few array operations (the NPMI is computed once per distinct (region, key, value), not per item)
    and a catalog item costs a few bytes: an offset and about five small feature numbers."""

    names: tuple[Feature, ...]  # feature index -> (region, key, value)
    offsets: np.ndarray  # len(items) + 1
    entries: np.ndarray

    @property
    def items(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def of(cls, items: list[dict], vocabulary: dict[Feature, int] | None = None) -> ItemFeatures:
        """The features of `items`, numbered by `vocabulary` (which grows with any feature it lacks)."""
        vocabulary = {} if vocabulary is None else vocabulary
        offsets, entries = [0], []
        for item in items:
            for key, value in features(item):
                entries.append(vocabulary.setdefault((item["region"], key, value), len(vocabulary)))
            offsets.append(len(entries))
        return cls(tuple(vocabulary), compact_ints(offsets), _feature_numbers(entries, len(vocabulary)))

    @classmethod
    def joined(cls, names: tuple[Feature, ...], parts: list[tuple[ItemFeatures, np.ndarray]]) -> ItemFeatures:
        """The rows `rows` of each part, one after the other (the parts numbered by `names`)."""
        offsets, entries = [np.zeros(1, np.int64)], []
        end = 0
        for part, rows in parts:
            starts, counts = part.offsets[:-1][rows], np.diff(part.offsets)[rows]
            taken = np.cumsum(counts)
            offsets.append(end + taken)
            # The entries of each chosen row: its start, plus 0, 1, ... within the row.
            within = np.arange(int(taken[-1]) if len(taken) else 0) - np.repeat(taken - counts, counts)
            entries.append(part.entries[np.repeat(starts, counts) + within])
            end += int(taken[-1]) if len(taken) else 0
        return cls(
            names,
            compact_ints(np.concatenate(offsets)),
            _feature_numbers(np.concatenate(entries), len(names)),
        )

    def scores(self, query: dict, compatibility: Compatibility) -> np.ndarray:
        """Per item: the mean NPMI over the pairs of a query value and an item value of the same attribute,
        in [-1, 1]; 0 for an item that shares no attribute with the query."""
        mine: dict[str, list[Feature]] = {}
        for key, value in features(query):
            mine.setdefault(key, []).append((query["region"], key, value))
        # Per feature: the sum of its NPMI with the query's values of its attribute, and how many those are.
        feature_sum = np.zeros(len(self.names))
        feature_pairs = np.zeros(len(self.names))
        for index, feature in enumerate(self.names):
            for value in mine.get(feature[1], ()):
                feature_sum[index] += compatibility.npmi(value, feature)
                feature_pairs[index] += 1
        sums, pairs = np.zeros(self.items), np.zeros(self.items)
        carrying = np.flatnonzero(np.diff(self.offsets) > 0)  # reduceat wants non-empty rows
        if len(carrying):
            starts = self.offsets[carrying]
            sums[carrying] = np.add.reduceat(feature_sum[self.entries], starts)
            pairs[carrying] = np.add.reduceat(feature_pairs[self.entries], starts)
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


@dataclass(frozen=True)
class CatalogState:
    """The catalog's items as arrays requests score (their compatibility features, images and products),
    one per revision of the catalog (tag corrections included). A change of a few images makes the next
    state from this one and those images' looks, not from every item."""

    revision: int
    features: ItemFeatures  # of the items, in the order of the arrays below
    ids: np.ndarray  # ascending (the catalog reads items by id)
    image_ids: np.ndarray
    product_ids: np.ndarray  # of objects: str or None

    @classmethod
    def read(cls, revision: int, pages: Iterable[list[dict]]) -> CatalogState:
        """The state of a whole catalog, from every item's look, a page of images at a time (so that reading
        a large catalog holds one page of rows at once, not every row)."""
        empty = np.zeros(0, np.int32)
        state = cls(-1, ItemFeatures((), np.zeros(1, np.int32), empty), empty, empty, _objects([]))
        for looks in pages:
            state = state.updated(revision, set(), looks)
        return replace(state, revision=revision)

    def updated(self, revision: int, images: set[int], looks: list[dict]) -> CatalogState:
        """The state after `images` changed: their items here are replaced by `looks`, those images' items
        as the catalog holds them now (none for a deleted image)."""
        kept = np.flatnonzero(~np.isin(self.image_ids, np.fromiter(images, np.int64, len(images))))
        vocabulary = {name: index for index, name in enumerate(self.features.names)}
        added = ItemFeatures.of(looks, vocabulary)
        ids = np.concatenate([self.ids[kept], np.array([row["id"] for row in looks], np.int64)])
        image_ids = np.concatenate([self.image_ids[kept], np.array([r["image_id"] for r in looks], np.int64)])
        product_ids = np.concatenate([self.product_ids[kept], _objects([r["product_id"] for r in looks])])
        item_features = ItemFeatures.joined(
            added.names, [(self.features, kept), (added, np.arange(added.items))]
        )
        order = np.argsort(ids, kind="stable")
        if np.any(order != np.arange(len(order))):  # pages read in id order append in order
            item_features = ItemFeatures.joined(added.names, [(item_features, order)])
            ids, image_ids, product_ids = ids[order], image_ids[order], product_ids[order]
        return CatalogState(revision, item_features, compact_ints(ids), compact_ints(image_ids), product_ids)

    def images_of(self, item_ids: np.ndarray) -> np.ndarray:
        """The image of each item, -1 for one not in this state (added or deleted since)."""
        if not len(self.ids):
            return np.full(len(item_ids), -1, np.int64)
        at = np.searchsorted(self.ids, item_ids).clip(max=len(self.ids) - 1)
        return np.where(self.ids[at] == item_ids, self.image_ids[at], -1)


def _objects(values: list) -> np.ndarray:
    array = np.empty(len(values), object)
    array[:] = values
    return array


class Recommender:
    def __init__(self, search: CatalogSearch):
        self.search = search
        self._state: CatalogState | None = None
        self._lock = threading.Lock()  # one reading of the catalog at a time; requests share its state

    def state(self) -> CatalogState:
        """The catalog's state, brought up to date when it changed: from the changed images' looks alone
        when the catalog knows which they were (and they are few), else from every item. Requests then score
        candidates with the one read of their values' counts (`compatibility`)."""
        with self._lock:
            state = self._state
            revision, images = self.search.images_changed_since(state.revision if state else -1)
            if state is not None and state.revision == revision:
                return state
            if state is None or images is None:
                self._state = CatalogState.read(revision, self.search.catalog.looks_by_page())
            else:
                self._state = state.updated(revision, images, self.search.catalog.looks(images))
            return self._state

    def compatibility(self, query: dict) -> Compatibility:
        """The catalog's co-occurrence counts that score candidates against the query item's values."""
        wanted = [(query["region"], key, value) for key, value in features(query)]
        with self.search.catalog.engine.connect() as db:
            return Compatibility.read(db, wanted)

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
        fit = state.features.scores(query, self.compatibility(query))
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
