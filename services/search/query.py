"""Text queries to taxonomy tags, in Korean or English: "블랙 미니 스커트", "black mini skirt",
"블랙미니스커트" and "#스트리트" / "#street" become the same tags. Words the taxonomy does not know are kept
for the free-text (TF-IDF) match over the catalog's tags."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

from services.search.products import filter_text, is_product_filter
from shared.errors import ApiError, ErrorCode
from shared.taxonomy import ATTRIBUTES, ATTRIBUTES_BY_KO, REGION_KO, REGIONS, STYLE, Attribute, normalize_key

# When a word names values of several attributes, the first attribute in this order wins.
QUERY_ATTRIBUTES: tuple[str, ...] = (
    "category",
    "color",
    "length",
    "sleeve",
    "print",
    "material",
    "detail",
    "neckline",
    "collar",
    "fit",
)
MAX_WORDS_PER_LABEL = 3  # "3/4 sleeve", "off the shoulder": labels of up to three words


@dataclass
class ParsedQuery:
    tags: dict[str, list[str]] = field(default_factory=dict)  # attribute key, "style" or "region" -> ko
    words: list[str] = field(default_factory=list)  # not in the taxonomy

    def add(self, key: str, value: str) -> None:
        values = self.tags.setdefault(key, [])
        if value not in values:
            values.append(value)


def _region(text: str) -> str | None:
    key = normalize_key(text)
    for region in REGIONS:
        if key in (normalize_key(region), normalize_key(REGION_KO[region])):
            return region
    return None


def english_base_forms(text: str) -> list[str]:
    """The phrase as written, then with its last English word's plural or past-participle ending taken off
    ("shirts", "dresses", "striped", "dotted", "knitted"): shoppers write those, the taxonomy's names are
    base forms."""
    head, _, last = text.rpartition(" ")
    forms, word = [text], last.casefold()
    if not re.fullmatch(r"[a-z]{4,}", word):
        return forms
    stems = []
    if word.endswith("ed"):
        stems += [word[:-1], word[:-2]]  # "striped" -> "stripe", "checked" -> "check"
        if len(word) > 4 and word[-3] == word[-4]:
            stems.append(word[:-3])  # "dotted" -> "dot"
    elif word.endswith("es"):
        stems += [word[:-1], word[:-2]]  # "blouses" -> "blouse", "dresses" -> "dress"
    elif word.endswith("s") and not word.endswith("ss"):
        stems.append(word[:-1])
    return forms + [f"{head} {stem}" if head else stem for stem in stems]


def _match(text: str, hashtag: bool) -> tuple[str, str] | None:
    """(key, Korean value) of a word or phrase; a hashtag prefers a style."""
    order: list[tuple[str, Attribute]] = [(key, ATTRIBUTES[key]) for key in QUERY_ATTRIBUTES]
    order = [("style", STYLE), *order] if hashtag else [*order, ("style", STYLE)]
    for form in english_base_forms(text):
        for key, attribute in order:
            label = attribute.lookup(form)
            if label is not None:
                return key, label.ko
        region = _region(form)
        if region:
            return "region", region
    return None


@cache
def _known_keys() -> tuple[str, ...]:
    """Every normalised label name and alias, longest first (for splitting words written together)."""
    keys = {normalize_key(r) for r in (*REGIONS, *REGION_KO.values())}
    for attribute in (STYLE, *(ATTRIBUTES[k] for k in QUERY_ATTRIBUTES)):
        keys.update(attribute._index)
    return tuple(sorted((k for k in keys if len(k) >= 2), key=len, reverse=True))


def _split_joined(word: str) -> list[str] | None:
    """A word that is several labels written together ("블랙미니스커트"), split greedily; None if not."""
    rest, parts = normalize_key(word), []
    while rest:
        prefix = next((k for k in _known_keys() if rest.startswith(k)), None)
        if prefix is None:
            return None
        parts.append(prefix)
        rest = rest[len(prefix) :]
    return parts if len(parts) > 1 else None


def parse_query(text: str) -> ParsedQuery:
    parsed = ParsedQuery()
    tokens = [t for t in re.split(r"[\s,]+", text.strip()) if t and t != "#"]
    position = 0
    while position < len(tokens):
        for size in range(min(MAX_WORDS_PER_LABEL, len(tokens) - position), 0, -1):
            span = tokens[position : position + size]
            hashtag = span[0].startswith("#")
            found = _match(" ".join(t.lstrip("#") for t in span), hashtag)
            if found:
                parsed.add(*found)
                position += size
                break
        else:
            word = tokens[position].lstrip("#")
            parts = _split_joined(word)
            matches = [_match(part, False) for part in parts] if parts else []
            if matches and all(matches):
                for found in matches:
                    parsed.add(*found)
            else:
                parsed.words.append(word)
            position += 1
    return parsed


def normalize_filters(raw: dict[str, object] | None) -> dict[str, list[str]]:
    """Filters as the catalog reads them: keys region, style or an attribute (English or Korean key),
    values Korean (English names and known variants accepted), one value or a list (any of them); or the
    shop's product id and fields (`product_id`, `product.in_stock`), values as the shop wrote them."""
    filters: dict[str, list[str]] = {}
    for raw_key, raw_values in (raw or {}).items():
        values = raw_values if isinstance(raw_values, list) else [raw_values]
        key = str(raw_key)
        if is_product_filter(key):  # the shop's own values: any text; product ids exact, fields any case
            texts = [str(v) if key == "product_id" else filter_text(v) for v in values]
            filters[key] = list(dict.fromkeys(texts))
            continue
        if key == "region" or key == "부위":
            key, lookup = "region", _region
        elif key in ("style", "스타일"):
            key, lookup = "style", lambda v: label.ko if (label := STYLE.lookup(v)) else None
        else:
            attribute = ATTRIBUTES.get(key) or ATTRIBUTES_BY_KO.get(key)
            if attribute is None:
                keys = ["region", "style", *ATTRIBUTES, "product_id", "product.<field>"]
                raise ApiError(
                    ErrorCode.VALIDATION_FAILED,
                    f"unknown filter {key!r}; filters are {', '.join(keys)}",
                    {"filter": key, "filters": keys},
                )
            key = attribute.key
            lookup = lambda v, a=attribute: label.ko if (label := a.lookup(v)) else None  # noqa: E731
        for value in values:
            found = lookup(str(value))
            if found is None:
                raise ApiError(
                    ErrorCode.VALIDATION_FAILED,
                    f"{value!r} is not a value of {key}",
                    {"filter": key, "value": value},
                )
            if found not in filters.setdefault(key, []):
                filters[key].append(found)
    return filters


def merge_filters(*parts: dict[str, list[str]]) -> dict[str, list[str]]:
    """Every part must hold: where two parts constrain one key, only values both allow remain."""
    merged: dict[str, list[str]] = {}
    for part in parts:
        for key, values in part.items():
            merged[key] = [v for v in merged[key] if v in values] if key in merged else list(values)
    return merged
