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
import threading
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

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


def item_documents(rows: Iterable[dict]) -> Iterator[tuple[int, list[str]]]:
    """The text index's documents of catalog rows (`CatalogStore.looks`): (item id, its tags)."""
    return ((row["id"], item_tags(row)) for row in rows)


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
REMOVED = -1  # the item id of a row whose document was taken out


def _idf(documents: int, holding: int | np.ndarray) -> Any:
    """Smoothed inverse document frequency (scikit-learn's), of a count or an array of counts."""
    return np.log((1 + documents) / (1 + holding)) + 1.0


class TextIndex:
    """TF-IDF postings of the catalog's item documents, kept up to date document by document (`update`).

    A term's weight depends on how many documents hold it and on how many there are, so every change moves
    every document's norm: the index keeps each document's term frequencies in flat arrays and computes the
    norms again in one numpy pass when a query first needs them, where reading every document again took
    seconds. An index brought up to date scores as one built anew from the same documents. Its own lock
    lets a query read while another thread updates it."""

    def __init__(self, documents: Iterable[tuple[int, list[str]]] = ()):
        self._lock = threading.RLock()
        self._clear()
        self.update((), documents)

    def _clear(self) -> None:
        self.ids: list[int] = []  # row -> item id; REMOVED once the document is gone
        self._row_of: dict[int, int] = {}
        self.postings: dict[str, dict[int, float]] = {}  # term -> {row: 1 + log(count)}
        self.terms_by_bigram: dict[str, set[str]] = {}
        self._column_of: dict[str, int] = {}  # term -> its column in the entries and in _df
        self._columns: list[str] = []
        self._df = array("q")  # documents holding each column's term
        # One entry per (document, term), a document's entries side by side from _starts[row].
        self._entry_rows, self._entry_columns, self._entry_tf = array("q"), array("q"), array("d")
        self._starts = array("q")
        self._removed_entries = 0
        self._norms: np.ndarray | None = None  # both computed when a query needs them
        self._ids: np.ndarray | None = None

    @property
    def documents(self) -> int:  # not __len__: an empty index must not read as no index
        return len(self._row_of)

    def update(self, removed: Iterable[int], documents: Iterable[tuple[int, list[str]]]) -> None:
        """Take out the documents of the `removed` item ids (those it holds), then add `documents` (an item
        id it holds is replaced)."""
        with self._lock:
            for item_id in removed:
                self._remove(item_id)
            for item_id, texts in documents:
                self._remove(item_id)
                self._add(item_id, {term: 1.0 + math.log(count) for term, count in terms(texts).items()})
            if self._removed_entries > len(self._entry_tf) // 2:
                self._compact()
            self._norms = self._ids = None

    def _add(self, item_id: int, frequencies: dict[str, float]) -> None:
        row = len(self.ids)
        self.ids.append(item_id)
        self._row_of[item_id] = row
        self._starts.append(len(self._entry_tf))
        for term, tf in frequencies.items():
            column = self._column_of.get(term)
            if column is None:
                column = self._column_of[term] = len(self._columns)
                self._columns.append(term)
                self._df.append(0)
            rows = self.postings.get(term)
            if rows is None:
                rows = self.postings[term] = {}
                for pair in bigrams(term):
                    self.terms_by_bigram.setdefault(pair, set()).add(term)
            rows[row] = tf
            self._df[column] += 1
            self._entry_rows.append(row)
            self._entry_columns.append(column)
            self._entry_tf.append(tf)

    def _remove(self, item_id: int) -> None:
        row = self._row_of.pop(item_id, None)
        if row is None:
            return
        self.ids[row] = REMOVED
        entries = self._entries(row)
        for entry in entries:
            column = self._entry_columns[entry]
            term = self._columns[column]
            rows = self.postings[term]
            del rows[row]
            if not rows:
                del self.postings[term]
                for pair in bigrams(term):
                    self.terms_by_bigram[pair].discard(term)
            self._df[column] -= 1
            self._entry_tf[entry] = 0.0
        self._removed_entries += len(entries)

    def _compact(self) -> None:
        """Rows and entries again only of the documents held, in their order."""
        kept = [
            (item_id, self._frequencies(row)) for row, item_id in enumerate(self.ids) if item_id != REMOVED
        ]
        self._clear()
        for item_id, frequencies in kept:
            self._add(item_id, frequencies)

    def _entries(self, row: int) -> range:
        end = self._starts[row + 1] if row + 1 < len(self._starts) else len(self._entry_tf)
        return range(self._starts[row], end)

    def _frequencies(self, row: int) -> dict[str, float]:
        columns, tf = self._entry_columns, self._entry_tf
        return {self._columns[columns[entry]]: tf[entry] for entry in self._entries(row)}

    def idf(self, term: str) -> float:
        return _idf(self.documents, len(self.postings[term]))

    def norms(self) -> np.ndarray:
        """Each row's TF-IDF norm (0 for a removed row)."""
        with self._lock:
            return self._norms_now()

    def _ids_array(self) -> np.ndarray:
        if self._ids is None:
            self._ids = np.array(self.ids, np.int64)
        return self._ids

    def _norms_now(self) -> np.ndarray:
        if self._norms is None:
            idf = _idf(self.documents, np.frombuffer(self._df, np.int64))
            columns = np.frombuffer(self._entry_columns, np.int64)
            weights = np.frombuffer(self._entry_tf, np.float64) * idf[columns]
            rows = np.frombuffer(self._entry_rows, np.int64)
            self._norms = np.sqrt(np.bincount(rows, weights=weights * weights, minlength=len(self.ids)))
        return self._norms

    def meanings(self, word: str) -> dict[str, float]:
        """The catalog terms a query word meets, with their likeness (at least MIN_LIKENESS)."""
        key = normalize_key(word)
        with self._lock:
            if key in self.postings:
                return {key: 1.0}
            candidates = set().union(*(self.terms_by_bigram.get(pair, ()) for pair in bigrams(key)))
        found = {term: likeness(key, term) for term in candidates}
        return {term: score for term, score in found.items() if score >= MIN_LIKENESS}

    def scores(self, words: list[str], allowed: np.ndarray | None = None) -> dict[int, float]:
        """Item id -> cosine similarity of its TF-IDF terms to the words' (each word standing for the terms
        it meets, weighted by likeness), for the items holding at least one such term (of `allowed`)."""
        with self._lock:
            query: dict[str, float] = {}
            for word in words:
                for term, weight in self.meanings(word).items():
                    query[term] = query.get(term, 0.0) + weight * self.idf(term)
            if not query:
                return {}
            query_norm = math.sqrt(sum(w * w for w in query.values()))
            dots = np.zeros(len(self.ids))
            for term, weight in query.items():
                rows = self.postings[term]
                tf = np.fromiter(rows.values(), np.float64, len(rows))
                # the document's weight is its tf times the term's idf, as the query's
                dots[np.fromiter(rows, np.int64, len(rows))] += (weight * self.idf(term)) * tf
            found = np.flatnonzero(dots)
            ids = self._ids_array()[found]
            if allowed is not None:
                kept = np.isin(ids, allowed)
                found, ids = found[kept], ids[kept]
            scores = dots[found] / (query_norm * self._norms_now()[found])
            return dict(zip(ids.tolist(), scores.tolist(), strict=True))
