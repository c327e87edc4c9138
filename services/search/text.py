"""Free words over the catalog's tags by TF-IDF (as seed 003).

Each item is a document of its tags in both languages (attribute values, the image's styles, its region),
the words of its file name and those of the shop's product (its id, the words of its text fields: a name,
a brand), so a shopper's "acme" finds the brand's items. A query word stands for the terms it is like
(`likeness`): itself, a term it holds or is held by ("블랙진" meets "블랙"), a spelling one letter off; so a
word the taxonomy does not know still meets the tags it names, and a word like none of them meets nothing.
Scores are cosine similarities of TF-IDF weights, in [0, 1].

The postings and each term's document count live in the catalog's database (`catalog_text`,
`catalog_terms`), written in the same transaction as the items they describe: a query reads the postings of
its own terms and the rows of the items holding them, and no process holds the catalog's text in memory, so
search replicas share one state and a catalog of millions costs no memory here.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator

import numpy as np
from sqlalchemy import bindparam, delete, func, or_, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import Select

from shared.db import add_to_counts
from shared.schema import catalog_items, catalog_terms, catalog_text
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


MAX_TERM_LENGTH = 255  # the column's; a longer "word" (a pasted description without spaces) is no term


def terms(texts: Iterable[str]) -> Counter[str]:
    """A document's terms: its tags and words, normalised (case and spacing do not matter)."""
    return Counter(key for text in texts if (key := normalize_key(text)) and len(key) <= MAX_TERM_LENGTH)


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
ALL_DOCUMENTS = ""  # the catalog_terms row counting every document (no term is empty)


def _idf(documents: int, holding: int) -> float:
    """Smoothed inverse document frequency (scikit-learn's)."""
    return math.log((1 + documents) / (1 + holding)) + 1.0


def _like_pattern(pair: str) -> str:
    escaped = pair.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class CatalogText:
    """TF-IDF postings of the catalog's item documents in its database: written by the catalog's own
    transactions (`add`, `remove`), read per query (`meanings`, `scores`)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # Writing, inside the caller's transaction.

    def remove(self, db: Connection, item_ids: Iterable[int]) -> None:
        """Take out the documents of these items (those it holds)."""
        wanted = sorted({int(i) for i in item_ids})
        if not wanted:
            return
        held: Counter[str] = Counter()
        documents: set[int] = set()
        for chunk in _chunks(wanted):
            rows = db.execute(
                select(catalog_text.c.item_id, catalog_text.c.term).where(catalog_text.c.item_id.in_(chunk))
            ).all()
            held.update(term for _, term in rows)
            documents.update(item for item, _ in rows)
            db.execute(delete(catalog_text).where(catalog_text.c.item_id.in_(chunk)))
        if documents:
            held[ALL_DOCUMENTS] = len(documents)
            add_to_counts(db, catalog_terms, "documents", {(term,): -n for term, n in held.items()})

    def add(self, db: Connection, documents: Iterable[tuple[int, list[str]]]) -> None:
        """Add documents (item id, its texts); one the index holds is replaced."""
        documents = list(documents)
        self.remove(db, (item_id for item_id, _ in documents))
        rows, held, written = [], Counter(), 0
        for item_id, texts in documents:
            frequencies = terms(texts)
            written += bool(frequencies)  # a document of no terms has no rows: it is not counted
            rows += [
                {"item_id": item_id, "term": term, "tf": 1.0 + math.log(count)}
                for term, count in frequencies.items()
            ]
            held.update(frequencies.keys())
        if not rows:
            return
        db.execute(catalog_text.insert(), rows)
        held[ALL_DOCUMENTS] = written
        add_to_counts(db, catalog_terms, "documents", {(term,): n for term, n in held.items()})

    def unindexed_images(self, db: Connection) -> list[int]:
        """Images with items that have no document (a catalog from before the index was kept here)."""
        indexed = select(catalog_text.c.item_id).where(catalog_text.c.item_id == catalog_items.c.id)
        query = select(catalog_items.c.image_id).where(~indexed.exists()).distinct()
        return sorted(db.execute(query).scalars())

    # Reading.

    def documents(self) -> int:
        with self.engine.connect() as db:
            return _documents(db)

    def meanings(self, word: str) -> dict[str, float]:
        """The catalog terms a query word meets, with their likeness (at least MIN_LIKENESS)."""
        with self.engine.connect() as db:
            return _meanings(db, normalize_key(word))

    def scores(self, words: list[str], allowed: np.ndarray | None = None) -> dict[int, float]:
        """Item id -> cosine similarity of its TF-IDF terms to the words' (each word standing for the terms
        it meets, weighted by likeness), for the items holding at least one such term (of `allowed`)."""
        with self.engine.connect() as db:
            likeness_of: dict[str, float] = {}
            for word in words:
                for term, weight in _meanings(db, normalize_key(word)).items():
                    likeness_of[term] = likeness_of.get(term, 0.0) + weight
            if not likeness_of:
                return {}
            documents = _documents(db)
            holding = dict(
                db.execute(
                    select(catalog_terms.c.term, catalog_terms.c.documents).where(
                        catalog_terms.c.term.in_(sorted(likeness_of))
                    )
                ).all()
            )
            idf = {term: _idf(documents, holding[term]) for term in likeness_of}
            query = {term: weight * idf[term] for term, weight in likeness_of.items()}
            query_norm = math.sqrt(sum(w * w for w in query.values()))
            postings = db.execute(
                select(catalog_text.c.item_id, catalog_text.c.term, catalog_text.c.tf).where(
                    catalog_text.c.term.in_(sorted(query))
                )
            ).all()
            dots: dict[int, float] = {}
            for item_id, term, tf in postings:
                # the document's weight is its tf times the term's idf, as the query's
                dots[item_id] = dots.get(item_id, 0.0) + query[term] * idf[term] * tf
            if allowed is not None:
                ids = np.fromiter(dots, np.int64, len(dots))
                dots = {i: dots[i] for i in ids[np.isin(ids, allowed)].tolist()}
            if not dots:
                return {}
            norms = dict(db.execute(_norms_query(sorted(query)), {"documents": documents}).all())
        return {item_id: dot / (query_norm * math.sqrt(norms[item_id])) for item_id, dot in dots.items()}


def _norms_query(query_terms: list[str]) -> Select:
    """Squared TF-IDF norms of the items holding any of the terms, at the current document counts: the
    database sums each candidate's rows, so a change of one document moves no stored norm."""
    weight = catalog_text.c.tf * (
        func.ln((1.0 + bindparam("documents")) / (1.0 + catalog_terms.c.documents)) + 1.0
    )
    candidates = select(catalog_text.c.item_id).where(catalog_text.c.term.in_(query_terms))
    return (
        select(catalog_text.c.item_id, func.sum(weight * weight))
        .join(catalog_terms, catalog_terms.c.term == catalog_text.c.term)
        .where(catalog_text.c.item_id.in_(candidates.scalar_subquery()))
        .group_by(catalog_text.c.item_id)
    )


def _documents(db: Connection) -> int:
    count = db.execute(
        select(catalog_terms.c.documents).where(catalog_terms.c.term == ALL_DOCUMENTS)
    ).scalar()
    return int(count or 0)


def _meanings(db: Connection, key: str) -> dict[str, float]:
    held = select(catalog_terms.c.term).where(catalog_terms.c.term != ALL_DOCUMENTS)
    if not key:
        return {}
    if db.execute(held.where(catalog_terms.c.term == key)).first():
        return {key: 1.0}
    pairs = sorted(bigrams(key))
    if not pairs:
        return {}
    # The terms sharing a letter pair with the word (the vocabulary grows far slower than the catalog).
    sharing = [catalog_terms.c.term.like(_like_pattern(pair), escape="\\") for pair in pairs]
    candidates = db.execute(held.where(or_(*sharing))).scalars()
    found = {term: likeness(key, term) for term in candidates}
    return {term: score for term, score in found.items() if score >= MIN_LIKENESS}


def _chunks(values: list, size: int = 10_000) -> Iterator[list]:
    """Lists short enough for one IN (...) of any database's bound parameters."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
