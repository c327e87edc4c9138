"""Free words against the catalog's tags by TF-IDF, and filters named in either language."""

from __future__ import annotations

import numpy as np
import pytest

from services.search.query import merge_filters, normalize_filters
from services.search.text import MIN_LIKENESS, REMOVED, TextIndex, item_tags, likeness
from shared.errors import ApiError


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


def test_item_documents_hold_both_languages_and_file_words() -> None:
    _, tags = _item(1, "jeju_vacation-2024.jpg", "셔츠", "블랙")
    assert {"셔츠", "shirt", "블랙", "black", "스트라이프", "stripe", "스트리트", "street"} <= set(tags)
    assert {"jeju", "vacation"} <= set(tags) and "2024" not in tags and "jpg" not in tags


def test_exact_words_rank_first_and_unlike_words_match_nothing() -> None:
    index = TextIndex(
        [
            _item(1, "jeju vacation.jpg", "셔츠", "블랙"),
            _item(2, "office.jpg", "셔츠", "화이트"),
            _item(3, "vacances.jpg", "티셔츠", "블랙"),
        ]
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


def test_an_index_brought_up_to_date_scores_as_one_built_anew() -> None:
    colours, categories = ("블랙", "화이트", "레드"), ("셔츠", "티셔츠", "블라우스", "스커트")
    documents = [
        _item(n, f"look {n} {('jeju', 'office')[n % 2]}.jpg", categories[n % 4], colours[n % 3])
        for n in range(1, 11)
    ]
    index = TextIndex(documents[:6])
    index.update([1, 2, 3, 4, 99], [])  # 99: never held
    assert REMOVED not in index.ids  # most of its entries were taken out: rows and entries made again
    index.update([], documents[6:])
    replacement = _item(5, "jeju vacation.jpg", "스커트", "레드")
    index.update([], [replacement])  # a document it holds, replaced without being named as removed
    fresh = TextIndex([replacement, *documents[5:]])
    assert index.documents == fresh.documents == 6
    for words in (["jeju"], ["office", "black"], ["vacation"], ["skirt", "red"], ["셔츠"], ["look"]):
        assert index.scores(words) == pytest.approx(fresh.scores(words), rel=1e-12), words
        assert set(index.scores(words)) == set(fresh.scores(words)) != set(), words
    assert index.meanings("vacaton") == fresh.meanings("vacaton") == {"vacation": pytest.approx(10 / 13)}
    index.update([5], [])
    assert index.meanings("vacaton") == {} and index.scores(["vacation"]) == {}
