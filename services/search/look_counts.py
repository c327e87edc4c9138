"""How often values are worn together: the co-occurrence counts the recommender's compatibility is learned
from (services/recommend/model.py has the method), kept in the catalog's database with every change of an
image's items, in the same transaction, so a request reads the counts of its own values and no process
counts the whole catalog. The counts are bounded by the taxonomy, not by the catalog."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Connection

from shared.db import add_to_counts
from shared.schema import catalog_look_pairs, catalog_look_values

COMPATIBILITY_KEYS = ("category", "color", "print", "material", "style")
SMOOTHING = 0.5  # added to every count, so a pair seen once in a small catalog is not certainty
LOOKS_ROW = ("", "", "")  # the catalog_look_values row counting the looks

Feature = tuple[str, str, str]  # (region, key, value)


def features(item: dict) -> list[tuple[str, str]]:
    """(key, value) pairs of an item used for compatibility; multi-valued attributes give several."""
    found = []
    for key in COMPATIBILITY_KEYS:
        value = item.get("style") if key == "style" else item["attributes"].get(key)
        for one in value if isinstance(value, list) else [value]:
            if one:
                found.append((key, one))
    return found


def look_features(items: list[dict]) -> dict[str, set[Feature]]:
    """Per region worn in one image, the features of its items."""
    present: dict[str, set[Feature]] = {}
    for item in items:
        present.setdefault(item["region"], set()).update(
            (item["region"], key, value) for key, value in features(item)
        )
    return present


def by_image(looks: list[dict]) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = {}
    for item in looks:
        grouped.setdefault(item["image_id"], []).append(item)
    return grouped


def _bump(counter: Counter, key: object, sign: int) -> None:
    """Add sign to a count, forgetting a count that falls to 0 (so a look counted and uncounted leaves
    the counts as they were)."""
    counter[key] += sign
    if not counter[key]:
        del counter[key]


class Compatibility:
    """Co-occurrence counts of (region, key, value) pairs across the regions of each catalog image: all of
    them (`counted`), the changes one write makes to the database's (`write`), or those one request needs
    (`read`)."""

    def __init__(self) -> None:
        self.single: Counter[Feature] = Counter()
        self.pairs: Counter[tuple[Feature, Feature]] = Counter()
        self.images = 0

    @classmethod
    def counted(cls, looks: Iterable[dict], before: Iterable[dict] = ()) -> Compatibility:
        """The counts of the looks of these items (catalog rows with image_id, region, attributes, style),
        each image one look, less those of the looks `before` (the same images' items before a change)."""
        counts = cls()
        for sign, rows in ((-1, before), (1, looks)):
            for items in by_image(list(rows)).values():
                counts.count(look_features(items), sign)
        return counts

    def count(self, present: dict[str, set[Feature]], sign: int) -> None:
        """Count one image's look (sign 1) or take it back (sign -1); `present` as look_features gives."""
        self.images += sign
        for region, values in present.items():
            for value in values:
                _bump(self.single, value, sign)
            for other, other_values in present.items():
                if other != region:
                    for a in values:
                        for b in other_values:
                            if a[1] == b[1]:
                                _bump(self.pairs, (a, b), sign)

    def write(self, db: Connection) -> None:
        """Add these counts to the database's."""
        add_to_counts(db, catalog_look_values, "images", {**self.single, LOOKS_ROW: self.images})
        pairs = {(*a, b[0], b[2]): n for (a, b), n in self.pairs.items()}
        add_to_counts(db, catalog_look_pairs, "images", pairs)

    @classmethod
    def read(cls, db: Connection, query: Iterable[Feature]) -> Compatibility:
        """The database's counts that score candidates against the query's features: every value's (a
        few hundred rows), and the pairs of the query's values."""
        counts = cls()
        for region, key, value, images in db.execute(select(catalog_look_values)):
            if (region, key, value) == LOOKS_ROW:
                counts.images = images
            else:
                counts.single[(region, key, value)] = images
        wanted = sorted(set(query))
        if wanted:
            pairs = catalog_look_pairs.c
            rows = db.execute(
                select(catalog_look_pairs).where(tuple_(pairs.region, pairs.key, pairs.value).in_(wanted))
            )
            for region, key, value, other_region, other_value, images in rows:
                counts.pairs[((region, key, value), (other_region, key, other_value))] = images
        return counts

    def npmi(self, a: Feature, b: Feature) -> float:
        if self.images == 0:
            return 0.0
        total = self.images + SMOOTHING
        p_a = (self.single[a] + SMOOTHING) / total
        p_b = (self.single[b] + SMOOTHING) / total
        p_ab = (self.pairs[(a, b)] + SMOOTHING * p_a * p_b) / total
        if p_ab >= 1.0:  # in every look, as both are: independent, no preference
            return 0.0
        return max(-1.0, min(1.0, math.log(p_ab / (p_a * p_b)) / -math.log(p_ab)))
