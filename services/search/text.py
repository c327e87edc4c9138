"""Free words over the catalog's tags by TF-IDF (as seed 003).

Each item is a document of its tags in both languages (attribute values, the image's styles, its region)
and the words of its file name. Terms are the tags themselves and their character bigrams, so a word the
taxonomy does not know still meets the tags that share part of it ("블랙진" meets "블랙"). Scores are
cosine similarities of TF-IDF weights, in [0, 1].
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

from shared.taxonomy import ATTRIBUTES, REGION_KO, STYLE, normalize_key


def item_tags(item: dict) -> list[str]:
    """An item's tags (Korean and English) and its file name's words: the text of its document."""
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
    tags += [w for w in re.split(r"[\W_]+", stem) if len(w) > 1 and not w.isdigit()]
    return [t for t in tags if t]


def terms(texts: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        key = normalize_key(text)
        if not key:
            continue
        counts[key] += 1
        counts.update(key[i : i + 2] for i in range(len(key) - 1))
    return counts


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

    def scores(self, words: list[str], allowed: np.ndarray | None = None) -> dict[int, float]:
        """Item id -> similarity to the words, for the items sharing at least one term (of `allowed`)."""
        query = {
            term: (1.0 + math.log(c)) * self.idf[term] for term, c in terms(words).items() if term in self.idf
        }
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
