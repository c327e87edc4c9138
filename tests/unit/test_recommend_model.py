"""Compatibility learned from looks, and the parsing of attribute changes (no models, no database; the
counts kept in the database are tests/integration/test_catalog_changes.py's)."""

from __future__ import annotations

import pytest

from services.recommend.model import ItemFeatures, target_regions
from services.recommend.operations import parse_change
from services.search.look_counts import Compatibility, features
from shared.errors import ApiError


def _look(image_id: int, top: str, bottom: str, colour: str = "블랙") -> list[dict]:
    return [
        {
            "id": 2 * image_id,
            "image_id": image_id,
            "product_id": None,
            "region": "top",
            "attributes": {"category": top, "color": colour},
            "style": None,
        },
        {
            "id": 2 * image_id + 1,
            "image_id": image_id,
            "product_id": None,
            "region": "bottom",
            "attributes": {"category": bottom, "color": "블랙"},
            "style": None,
        },
    ]


def _counted(looks: list[dict]) -> Compatibility:
    """The counts of these looks, as the catalog writes them."""
    return Compatibility.counted(looks)


def _score(compatibility: Compatibility, query: dict, candidate: dict) -> float:
    return float(ItemFeatures.of([candidate]).scores(query, compatibility)[0])


def _looks() -> list[dict]:
    # Blouses are worn with skirts, hoodies with jogger pants, never the other way round.
    looks = []
    for n in range(30):
        looks += _look(n, "블라우스", "스커트") if n % 2 else _look(n, "후드티", "조거팬츠")
    return looks


def test_pairs_seen_together_score_above_pairs_never_seen() -> None:
    compatibility = _counted(_looks())
    blouse = {"region": "top", "attributes": {"category": "블라우스"}}
    skirt = {"region": "bottom", "attributes": {"category": "스커트"}}
    joggers = {"region": "bottom", "attributes": {"category": "조거팬츠"}}
    assert _score(compatibility, blouse, skirt) > 0.5
    assert _score(compatibility, blouse, joggers) < -0.5
    assert -1 <= _score(compatibility, blouse, joggers) < _score(compatibility, blouse, skirt) <= 1
    # Colour is always black below: independent of the top, so near zero, not a strong signal.
    assert abs(compatibility.npmi(("top", "color", "블랙"), ("bottom", "color", "블랙"))) < 0.2
    unknown = {"region": "bottom", "attributes": {"category": "청바지"}}
    assert _score(compatibility, blouse, unknown) < _score(compatibility, blouse, skirt)
    assert _score(compatibility, blouse, {"region": "bottom", "attributes": {}}) == 0.0


def test_every_item_is_scored_at_once_as_the_mean_over_its_pairs() -> None:
    looks = _looks()
    compatibility = _counted(looks)
    candidates = [
        *looks[:6],
        {"region": "bottom", "attributes": {}},  # shares nothing: 0
        {
            "region": "bottom",
            "attributes": {"category": "스커트", "print": ["도트", "체크"]},
            "style": ["모던"],
        },
    ]
    query = {
        "region": "top",
        "attributes": {"category": "블라우스", "color": "블랙"},
        "style": ["모던", "로맨틱"],
    }
    scores = ItemFeatures.of(candidates).scores(query, compatibility)
    for candidate, score in zip(candidates, scores, strict=True):
        pairs = [
            compatibility.npmi((query["region"], key, mine), (candidate["region"], key, theirs))
            for key, theirs in features(candidate)
            for other_key, mine in features(query)
            if other_key == key
        ]
        assert score == pytest.approx(sum(pairs) / len(pairs) if pairs else 0.0, abs=1e-12)
    assert scores[6] == 0.0 and scores[7] != 0.0


def test_an_empty_catalog_has_no_opinion() -> None:
    compatibility = _counted([])
    top = {"region": "top", "attributes": {"category": "블라우스"}}
    assert _score(compatibility, top, {"region": "bottom", "attributes": {"category": "스커트"}}) == 0.0


def test_target_regions() -> None:
    assert target_regions("top", None) == ["outer", "bottom"]
    assert target_regions("onepiece", None) == ["outer"]
    assert target_regions("top", ["bottom", "top"]) == ["bottom"]


@pytest.mark.parametrize(
    ("text", "attribute", "before", "to"),
    [
        ("length: 미니 -> 롱", "length", "미니", "롱"),
        ("기장: mini -> long", "length", "mini", "롱"),
        ("category: 셔츠 → 티셔츠", "category", "셔츠", "티셔츠"),
        ("미니 -> 맥시", "length", "미니", "맥시"),
        ("color: -> white", "color", None, "화이트"),
        ({"attribute": "color", "to": "navy"}, "color", None, "네이비"),
    ],
)
def test_changes_are_read_in_both_languages(
    text: object, attribute: str, before: str | None, to: str
) -> None:
    change = parse_change(text)
    assert (change.attribute, change.before, change.to) == (attribute, before, to)


@pytest.mark.parametrize("text", ["length: 미니", "mood: happy -> sad", "length: 미니 -> 하늘색", "-> "])
def test_bad_changes_are_rejected(text: str) -> None:
    with pytest.raises(ApiError) as raised:
        parse_change(text)
    assert raised.value.status == 422
