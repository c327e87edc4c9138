"""Text queries in Korean and English map to the same taxonomy tags; photo queries choose and re-order."""

from __future__ import annotations

import pytest

from services.search.products import distinct_results
from services.search.query import parse_query

SAME_TAGS = [
    ("블랙 미니 스커트", "black mini skirt", {"color": ["블랙"], "length": ["미니"], "category": ["스커트"]}),
    ("블랙미니스커트", "Black Mini-Skirt", {"color": ["블랙"], "length": ["미니"], "category": ["스커트"]}),
    ("#스트리트", "#street", {"style": ["스트리트"]}),
    ("7부소매 니트", "3/4 sleeve knitwear", {"sleeve": ["7부소매"], "category": ["니트웨어"]}),
]


@pytest.mark.parametrize(("korean", "english", "tags"), SAME_TAGS)
def test_korean_and_english_give_the_same_tags(korean: str, english: str, tags: dict) -> None:
    assert parse_query(korean).tags == tags
    assert parse_query(english).tags == tags
    assert parse_query(korean).words == parse_query(english).words == []


def test_unknown_words_are_kept_for_free_text_search() -> None:
    parsed = parse_query("여름 휴가 #리조트 린넨 원피스")
    assert parsed.tags == {
        "style": ["리조트"],
        "material": ["린넨"],
        "category": ["드레스"],
    }  # 원피스 = dress
    assert parsed.words == ["여름", "휴가"]
    assert parse_query("   ").tags == {} and parse_query("#").words == []


def test_plurals_and_participles_name_the_same_tags() -> None:
    assert (
        parse_query("navy striped shirts").tags
        == parse_query("navy stripe shirt").tags
        == {
            "color": ["네이비"],
            "print": ["스트라이프"],
            "category": ["셔츠"],
        }
    )
    assert parse_query("dotted dresses").tags == {"print": ["도트"], "category": ["드레스"]}
    assert parse_query("knitted blouses").tags == {"material": ["니트"], "category": ["블라우스"]}
    assert parse_query("3/4 sleeves").tags == parse_query("3/4 sleeve").tags != {}
    assert parse_query("jeans pants dress").tags == {"category": ["청바지", "팬츠", "드레스"]}  # not "jean"
    assert parse_query("boots gloss").words == ["boots", "gloss"]  # no such tags


def test_region_words() -> None:
    # "top" alone is also a category (탑) in English, so the Korean region word is the unambiguous one.
    assert parse_query("상의 화이트 셔츠").tags == {
        "region": ["top"],
        "color": ["화이트"],
        "category": ["셔츠"],
    }
    assert parse_query("아우터").tags == {"region": ["outer"]}


def test_photo_results_are_reordered_by_tag_agreement() -> None:
    from services.search.rerank import rerank_by_tags

    def result(item_id: int, score: float, category: str, color: str, region: str = "outer") -> dict:
        tags = {"category": category, "color": color}
        return {"item_id": item_id, "score": score, "rank": 0, "region": region, "tags": tags}

    query = {
        "region": "outer",
        "attributes": {
            "category": {
                "value": "재킷",
                "top_k": [{"value": "재킷", "score": 0.9}, {"value": "코트", "score": 0.1}],
            },
            "color": {"value": "골드", "top_k": [{"value": "골드", "score": 0.94}]},
        },
    }
    nearest = [
        result(1, 0.95, "재킷", "와인"),  # closest, but a colour the head did not read
        result(2, 0.94, "재킷", "골드"),  # agrees on both: 0.94 + 0.05 * 0.94 + 0.1 * 0.9
        result(3, 0.93, "점퍼", "골드"),  # agrees on colour only
        result(4, 0.90, "코트", "골드"),
    ]
    ranked = rerank_by_tags(nearest, query, 3)
    assert [r["item_id"] for r in ranked] == [2, 1, 3]
    assert [r["rank"] for r in ranked] == [1, 2, 3]
    assert ranked[0]["similarity"] == 0.94 and ranked[0]["score"] == pytest.approx(0.94 + 0.047 + 0.09)
    assert ranked[1]["score"] == pytest.approx(0.95 + 0.1 * 0.9)


def test_items_of_another_region_cross_over_only_when_much_closer() -> None:
    """A garment the detector read as another region in the catalog is still found, if it is nearer than the
    query region's items by more than the penalty (the same garment, in practice)."""
    from services.search.rerank import OTHER_REGION_PENALTY, rerank_by_tags

    query = {"region": "onepiece", "attributes": {}}

    def result(item_id: int, score: float, region: str) -> dict:
        return {"item_id": item_id, "score": score, "rank": 0, "region": region, "tags": {}}

    margin = OTHER_REGION_PENALTY / 2
    nearest = [result(1, 0.90, "top"), result(2, 0.90 - margin, "onepiece"), result(3, 0.85, "onepiece")]
    assert [r["item_id"] for r in rerank_by_tags(nearest, query, 3)] == [2, 3, 1]
    nearest = [result(1, 0.95, "top"), result(2, 0.95 - 3 * margin, "onepiece")]
    ranked = rerank_by_tags(nearest, query, 2)
    assert [r["item_id"] for r in ranked] == [1, 2]
    assert ranked[0]["score"] == pytest.approx(0.95 - OTHER_REGION_PENALTY)
    assert ranked[0]["similarity"] == 0.95


def test_the_same_garment_agrees_with_the_query_whatever_it_was_read_as() -> None:
    """A re-encoded copy of a catalog picture, whose bottom the models read as leggings where the catalog's
    copy was read as joggers (measured: 0.979 against another picture's leggings at 0.950), finds its own
    garment first; so does a copy read as another region."""
    from services.search.rerank import SAME_GARMENT_SIMILARITY, TAG_WEIGHTS, rerank_by_tags

    query = {
        "region": "bottom",
        "attributes": {
            "category": {
                "value": "레깅스",
                "top_k": [{"value": "레깅스", "score": 0.7}, {"value": "조거팬츠", "score": 0.11}],
            },
            "color": {"value": "블랙", "top_k": [{"value": "블랙", "score": 0.99}]},
        },
    }

    def result(item_id: int, score: float, category: str, region: str = "bottom") -> dict:
        tags = {"category": category, "color": "블랙"}
        return {"item_id": item_id, "score": score, "rank": 0, "region": region, "tags": tags}

    own = SAME_GARMENT_SIMILARITY + 0.009
    ranked = rerank_by_tags([result(1, own, "조거팬츠"), result(2, 0.950, "레깅스")], query, 2)
    assert [r["item_id"] for r in ranked] == [1, 2]
    assert ranked[0]["score"] == pytest.approx(own + sum(TAG_WEIGHTS.values()))
    ranked = rerank_by_tags([result(1, own, "원피스", "onepiece"), result(2, 0.950, "레깅스")], query, 2)
    assert [r["item_id"] for r in ranked] == [1, 2]
    # Below the line, the reading of the query decides as before.
    below = SAME_GARMENT_SIMILARITY - 0.01
    ranked = rerank_by_tags([result(1, below, "조거팬츠"), result(2, 0.950, "레깅스")], query, 2)
    assert [r["item_id"] for r in ranked] == [2, 1]


def test_a_photo_query_is_about_the_item_read_most_surely() -> None:
    from services.search.operations import query_item
    from shared.errors import ApiError

    def item(region: str, detected: float, category: float, color: float) -> dict:
        tags = {"category": {"value": "-", "score": category}, "color": {"value": "-", "score": color}}
        return {"region": region, "score": detected, "attributes": tags}

    photo = {
        "items": [
            item("top", 0.9, 0.5, 0.6),  # best detected, read least surely: 0.27
            item("bottom", 0.7, 0.9, 0.8),  # 0.504
            item("outer", 0.8, 0.7, 0.8),  # 0.448
        ]
    }
    assert query_item(photo, None)["region"] == "bottom"
    assert query_item(photo, "top")["region"] == "top"
    with pytest.raises(ApiError) as raised:
        query_item(photo, "onepiece")
    assert raised.value.details["regions_found"] == ["bottom", "outer", "top"]


def test_reordering_works_in_blocks_so_pages_agree() -> None:
    """Results past the 40th are re-ordered among the next 40 nearest, never pulled into the first block:
    a page is the same whatever page size asked for it (POST /search's offset)."""
    from services.search.rerank import RERANK_POOL, pool_size, rerank_by_tags

    query = {"region": "top", "attributes": {}}

    def nearest() -> list[dict]:
        # Cosines falling by 0.001; every third item of another region (it loses the penalty).
        return [
            {
                "item_id": i,
                "score": 0.9 - i / 1000,
                "rank": 0,
                "region": "top" if i % 3 else "bottom",
                "tags": {},
            }
            for i in range(3 * RERANK_POOL)
        ]

    whole = rerank_by_tags(nearest(), query, 3 * RERANK_POOL)
    assert {r["item_id"] for r in whole[:RERANK_POOL]} == set(range(RERANK_POOL))
    assert [r["region"] for r in whole[: RERANK_POOL - RERANK_POOL // 3 - 1]] == ["top"] * (
        RERANK_POOL - RERANK_POOL // 3 - 1
    )
    for size in (1, 7, 40, 41, 100):
        assert [r["item_id"] for r in rerank_by_tags(nearest(), query, size)] == [
            r["item_id"] for r in whole[:size]
        ]
    assert [pool_size(k) for k in (1, 40, 41, 80, 81)] == [40, 40, 80, 80, 120]


def test_distinct_results_ask_for_more_until_a_page_is_distinct() -> None:
    # 40 results: product A on every other one; the rest each their own image without a product.
    catalog = [
        {"image_id": n, "product_id": "A" if n % 2 == 0 else None, "rank": n + 1, "score": 1 - n / 100}
        for n in range(40)
    ]
    asked: list[int] = []

    def ranked(k: int) -> list[dict]:
        asked.append(k)
        return [dict(r) for r in catalog[:k]]

    page = distinct_results(ranked, 6, "product")
    assert [r["image_id"] for r in page] == [0, 1, 3, 5, 7, 9] and [r["rank"] for r in page] == list(
        range(1, 7)
    )
    assert asked == [6, 24]
    asked.clear()
    assert len(distinct_results(ranked, 30, "product")) == 21  # all there is: 20 bare images and product A
    assert asked == [30, 120]
    assert [r["image_id"] for r in distinct_results(ranked, 5, "image")] == [0, 1, 2, 3, 4]
