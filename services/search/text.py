"""Free words over the catalog's tags by TF-IDF (as seed 003).

Each item is a document of its tags in both languages (attribute values, the image's styles, its region),
the words of its file name and those of the shop's product (its id, the words of its text fields: a name,
a brand), so a shopper's "acme" finds the brand's items. A query word stands for the terms it is like
(`likeness`): itself, a term it holds or is held by ("블랙진" meets "블랙"), a spelling one letter off; so a
word the taxonomy does not know still meets the tags it names, and a word like none of them meets nothing.
Scores are cosine similarities of TF-IDF weights, in [0, 1].
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

from shared.taxonomy import ATTRIBUTES, REGION_KO, STYLE, normalize_key


def item_tags(item: dict) -> list[str]:
    """An item's tags (Korean and English), its file name's words and its product's: the text of its
    document."""
    tags: list[str] = [item["region"], REGION_KO.get(item["region"], "")]
    for key, value in item["attributes"].items():
        attribute = ATTRIBUTES.get(key)
        for one in value if isinstance(value, list) else [value]:
            label = attribute.lookup(one) if attribute else None
            tags += [label.ko, label.en] if label else [str(one)]
    for style in (item.get("style"), item.get("sub_style")):
        label = STYLE.lookup(style) if style else None
        if label:
            tags += [label.ko, label.en]
    stem = re.sub(r"\.[A-Za-z0-9]{2,5}$", "", item.get("file_name") or "")
    tags += _words(stem)
    if item.get("product_id"):
        tags.append(item["product_id"])
    for value in (item.get("product") or {}).values():
        if isinstance(value, str) and not value.startswith(("http://", "https://")):  # a link says nothing
            tags += _words(value)
    return [t for t in tags if t]


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\W_]+", text) if len(w) > 1 and not w.isdigit()]


def terms(texts: Iterable[str]) -> Counter[str]:
    """A document's terms: its tags and words, normalised (case and spacing do not matter)."""
    return Counter(key for text in texts if (key := normalize_key(text)))


def bigrams(term: str) -> set[str]:
    return {term[i : i + 2] for i in range(len(term) - 1)}


def likeness(word: str, term: str) -> float:
    """How much a query word stands for a catalog term, in [0, 1]: 1 when equal; the shorter's share of the
    longer when one holds the other ("블랙진" holds "블랙": 2/3); otherwise the Dice overlap of their
    character bigrams ("vacaton" and "vacation": 0.77). Under MIN_LIKENESS they do not meet."""
    if word == term:
        return 1.0
    if word in term or term in word:
        return min(len(word), len(term)) / max(len(word), len(term))
    ours, theirs = bigrams(word), bigrams(term)
    return 2 * len(ours & theirs) / (len(ours) + len(theirs)) if ours and theirs else 0.0


# Half the word: "블랙진" meets "블랙" and a one-letter typo meets its word, where shared letter pairs alone
# made "vintage" or "xyzzy" meet every catalog item a little (scores near 0.15) and answer with noise.
MIN_LIKENESS = 0.5


class TextIndex:
    def __init__(self, documents: Iterable[tuple[int, list[str]]]):
        self.ids: list[int] = []
        postings: dict[str, list[tuple[int, float]]] = {}
        for row, (item_id, texts) in enumerate(documents):
            self.ids.append(item_id)
            for term, count in terms(texts).items():
                postings.setdefault(term, []).append((row, 1.0 + math.log(count)))
        total = len(self.ids)
        self.idf = {term: math.log((1 + total) / (1 + len(rows))) + 1.0 for term, rows in postings.items()}
        self.postings = {
            term: [(row, tf * self.idf[term]) for row, tf in rows] for term, rows in postings.items()
        }
        norms = np.zeros(total)
        for rows in self.postings.values():
            for row, weight in rows:
                norms[row] += weight * weight
        self.norms = np.sqrt(norms)
        self.terms_by_bigram: dict[str, set[str]] = {}
        for term in self.postings:
            for pair in bigrams(term):
                self.terms_by_bigram.setdefault(pair, set()).add(term)

    def meanings(self, word: str) -> dict[str, float]:
        """The catalog terms a query word meets, with their likeness (at least MIN_LIKENESS)."""
        key = normalize_key(word)
        if key in self.postings:
            return {key: 1.0}
        candidates = set().union(*(self.terms_by_bigram.get(pair, ()) for pair in bigrams(key)))
        found = {term: likeness(key, term) for term in candidates}
        return {term: score for term, score in found.items() if score >= MIN_LIKENESS}

    def scores(self, words: list[str], allowed: np.ndarray | None = None) -> dict[int, float]:
        """Item id -> cosine similarity of its TF-IDF terms to the words' (each word standing for the terms
        it meets, weighted by likeness), for the items holding at least one such term (of `allowed`)."""
        query: dict[str, float] = {}
        for word in words:
            for term, weight in self.meanings(word).items():
                query[term] = query.get(term, 0.0) + weight * self.idf[term]
        if not query:
            return {}
        query_norm = math.sqrt(sum(w * w for w in query.values()))
        dots: dict[int, float] = {}
        for term, weight in query.items():
            for row, doc_weight in self.postings[term]:
                dots[row] = dots.get(row, 0.0) + weight * doc_weight
        keep = None if allowed is None else set(allowed.tolist())
        return {
            self.ids[row]: dot / (query_norm * self.norms[row])
            for row, dot in dots.items()
            if keep is None or self.ids[row] in keep
        }
