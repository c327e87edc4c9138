"""Free words against the catalog's tags by TF-IDF (its postings in a SQLite database of the test's own),
and filters named in either language."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from services.search.query import merge_filters, normalize_filters
from services.search.text import MIN_LIKENESS, CatalogText, item_tags, likeness, terms
from shared.db import database_engine, migrate
from shared.errors import ApiError
from shared.schema import catalog_images, catalog_items, catalog_terms


def _item(item_id: int, file_name: str, category: str, colour: str) -> tuple[int, list[str]]:
    row = {
        "id": item_id,
        "region": "top",
        "attributes": {"category": category, "color": colour, "print": ["스트라이프"]},
        "style": "스트리트",
        "sub_style": None,
        "file_name": file_name,
    }
    return item_id, item_tags(row)


Document = tuple[int, list[str]]


def _engine(tmp_path: Path) -> Engine:
    engine = database_engine(f"sqlite:///{tmp_path / 'text.db'}")
    migrate(engine)
    return engine


def _update(engine: Engine, removed: list[int], documents: list[Document]) -> CatalogText:
    """Take out the removed items' documents and add these, in one transaction (the catalog's items the
    postings refer to are made here, one image holding them all)."""
    index = CatalogText(engine)
    with engine.begin() as db:
        if db.execute(select(catalog_images.c.id)).first() is None:
            db.execute(
                insert(catalog_images).values(
                    id=1, sha256="0" * 64, file_name="all.jpg", blob_key="k", width=8, height=8, styles=[],
                    created=datetime(2026, 1, 1), versions={},
                )
            )  # fmt: skip
        held = set(db.execute(select(catalog_items.c.id)).scalars())
        new = [
            {"id": i, "image_id": 1, "region": "top", "box": [0, 0, 1, 1], "score": 1.0, "attributes": {}}
            for i, _ in documents
            if i not in held
        ]
        if new:
            db.execute(insert(catalog_items), [row | {"embedding": b""} for row in new])
        index.remove(db, removed)
        index.add(db, documents)
    return index


def _built(tmp_path: Path, documents: list[Document]) -> CatalogText:
    return _update(_engine(tmp_path), [], documents)


def _reference_scores(documents: list[Document], words: list[str], index: CatalogText) -> dict[int, float]:
    """TF-IDF cosine computed here from the documents themselves (the query's terms as the index means
    them): what the database's sums must come to."""
    frequencies = {i: {t: 1.0 + math.log(c) for t, c in terms(texts).items()} for i, texts in documents}
    holding: dict[str, int] = {}
    for document in frequencies.values():
        for term in document:
            holding[term] = holding.get(term, 0) + 1
    idf = {t: math.log((1 + len(documents)) / (1 + n)) + 1 for t, n in holding.items()}
    query: dict[str, float] = {}
    for word in words:
        for term, weight in index.meanings(word).items():
            query[term] = query.get(term, 0.0) + weight * idf[term]
    query_norm = math.sqrt(sum(w * w for w in query.values()))
    scores = {}
    for i, document in frequencies.items():
        dot = sum(query[t] * idf[t] * tf for t, tf in document.items() if t in query)
        if dot:
            norm = math.sqrt(sum((tf * idf[t]) ** 2 for t, tf in document.items()))
            scores[i] = dot / (query_norm * norm)
    return scores


def test_item_documents_hold_both_languages_and_file_words() -> None:
    _, tags = _item(1, "jeju_vacation-2024.jpg", "셔츠", "블랙")
    assert {"셔츠", "shirt", "블랙", "black", "스트라이프", "stripe", "스트리트", "street"} <= set(tags)
    assert {"jeju", "vacation"} <= set(tags) and "2024" not in tags and "jpg" not in tags


def test_exact_words_rank_first_and_unlike_words_match_nothing(tmp_path: Path) -> None:
    index = _built(
        tmp_path,
        [
            _item(1, "jeju vacation.jpg", "셔츠", "블랙"),
            _item(2, "office.jpg", "셔츠", "화이트"),
            _item(3, "vacances.jpg", "티셔츠", "블랙"),
        ],
    )
    scores = index.scores(["vacation"])
    assert set(scores) == {1}  # "vacances" shares three letter pairs of seven: another word
    assert index.scores(["vacaton"]) == scores  # a typo finds what the word finds
    assert index.meanings("vacaton") == {"vacation": pytest.approx(10 / 13)}
    for unlike in ("qqxqq", "xyzzy", "vintage", "cozy", "summer"):
        assert index.scores([unlike]) == {} and index.meanings(unlike) == {}, unlike
    assert set(index.scores(["블랙진"], allowed=np.array([3]))) == {3}  # "블랙" in it
    assert index.meanings("블랙진") == {"블랙": pytest.approx(2 / 3)}


def test_likeness_of_words_and_terms() -> None:
    assert likeness("black", "black") == 1.0
    assert likeness("블랙진", "블랙") == pytest.approx(2 / 3)
    assert likeness("shirt", "tshirt") == pytest.approx(5 / 6)
    assert likeness("vacation", "vacances") < MIN_LIKENESS <= likeness("vacaton", "vacation")
    assert likeness("a", "b") == 0.0


def test_filters_accept_either_language_and_reject_unknowns() -> None:
    assert normalize_filters(
        {"color": "black", "카테고리": ["스커트", "skirt"], "style": "#street".lstrip("#")}
    ) == {
        "color": ["블랙"],
        "category": ["스커트"],
        "style": ["스트리트"],
    }
    assert normalize_filters({"region": ["하의", "top"]}) == {"region": ["bottom", "top"]}
    for bad in ({"mood": "happy"}, {"color": "plaid"}, {"region": "hat"}):
        with pytest.raises(ApiError) as raised:
            normalize_filters(bad)
        assert raised.value.status == 422 and raised.value.details


def test_merged_filters_keep_only_what_both_allow() -> None:
    merged = merge_filters({"color": ["블랙", "화이트"]}, {"color": ["화이트"], "region": ["top"]})
    assert merged == {"color": ["화이트"], "region": ["top"]}
    assert merge_filters({"color": ["블랙"]}, {"color": ["화이트"]}) == {"color": []}


def test_an_index_brought_up_to_date_scores_as_one_built_anew(tmp_path: Path) -> None:
    colours, categories = ("블랙", "화이트", "레드"), ("셔츠", "티셔츠", "블라우스", "스커트")
    documents = [
        _item(n, f"look {n} {('jeju', 'office')[n % 2]}.jpg", categories[n % 4], colours[n % 3])
        for n in range(1, 11)
    ]
    (tmp_path / "kept").mkdir()
    (tmp_path / "fresh").mkdir()
    engine = _engine(tmp_path / "kept")
    index = _update(engine, [], documents[:6])
    _update(engine, [1, 2, 3, 4, 99], [])  # 99: never held
    _update(engine, [], documents[6:])
    replacement = _item(5, "jeju vacation.jpg", "스커트", "레드")
    _update(engine, [], [replacement])  # a document it holds, replaced without being named as removed
    held = [replacement, *documents[5:]]
    fresh = _built(tmp_path / "fresh", held)
    assert index.documents() == fresh.documents() == 6
    with engine.connect() as db, fresh.engine.connect() as other:  # no term left that no document holds
        assert sorted(db.execute(select(catalog_terms)).all()) == sorted(
            other.execute(select(catalog_terms)).all()
        )
    for words in (["jeju"], ["office", "black"], ["vacation"], ["skirt", "red"], ["셔츠"], ["look"]):
        assert index.scores(words) == pytest.approx(fresh.scores(words), rel=1e-12), words
        assert index.scores(words) == pytest.approx(_reference_scores(held, words, index), rel=1e-9), words
        assert set(index.scores(words)) == set(fresh.scores(words)) != set(), words
    assert index.meanings("vacaton") == fresh.meanings("vacaton") == {"vacation": pytest.approx(10 / 13)}
    assert index.scores(["jeju"], allowed=np.array([5, 6, 7, 1000])).keys() == {5, 6}
    _update(engine, [5], [])
    assert index.meanings("vacaton") == {} and index.scores(["vacation"]) == {}


def test_like_patterns_take_the_word_literally(tmp_path: Path) -> None:
    index = _built(tmp_path, [_item(1, "50%_off.jpg", "셔츠", "블랙"), _item(2, "a_b.jpg", "셔츠", "블랙")])
    assert index.meanings("0%") == {} and index.meanings("_o") == {}  # no wildcard meets every term
