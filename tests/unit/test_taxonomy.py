from __future__ import annotations

import pytest

from shared import taxonomy as tx


def test_counts_match_kfashion_md() -> None:
    assert tx.CATEGORY.size == 21
    by_region = {r: len(tx.CATEGORY.labels_for(r)) for r in tx.REGIONS}
    assert by_region == {"top": 7, "bottom": 5, "outer": 7, "onepiece": 2}
    assert tx.COLOR.size == 21
    assert tx.PRINT.size == 20
    assert tx.MATERIAL.size == 26
    assert tx.DETAIL.size == 40
    assert tx.LENGTH.size == 8
    assert tx.SLEEVE.size == 5
    assert tx.NECKLINE.size == 12
    assert tx.COLLAR.size == 10
    assert tx.FIT.size == 6
    assert tx.STYLE.size == 23
    # Shares of the guideline's sample, most common first; they add up to more than 1 because an
    # image can carry a sub-style too.
    assert len(tx.STYLE_SHARE) == 23 and list(tx.STYLE_SHARE) == sorted(tx.STYLE_SHARE, reverse=True)
    assert 1.4 < sum(tx.STYLE_SHARE) < 1.6


def test_ids_are_positions_and_stable() -> None:
    # Models are trained against these ids: a change here must be deliberate.
    assert tx.CATEGORY.lookup("탑").id == 0
    assert tx.CATEGORY.lookup("청바지").id == 7
    assert tx.CATEGORY.lookup("점프수트").id == 20
    assert tx.COLOR.lookup("실버").id == 20
    assert tx.STYLE.lookup("스트리트").id == 0
    assert tx.STYLE.lookup("펑크").id == 22
    for attribute in (*tx.ITEM_ATTRIBUTES, tx.STYLE):
        assert [label.id for label in attribute.labels] == list(range(attribute.size))
        assert attribute.by_id(attribute.size - 1) is attribute.labels[-1]


@pytest.mark.parametrize(
    ("attribute", "variant", "canonical"),
    [
        (tx.CATEGORY, "래깅스", "레깅스"),
        (tx.NECKLINE, "홀토넥", "홀터넥"),
        (tx.NECKLINE, "원 숄더", "원숄더"),
        (tx.COLLAR, "테일러칼라", "테일러드칼라"),
        (tx.LENGTH, "나렝스", "니렝스"),
        (tx.MATERIAL, "헤어니트", "헤어 니트"),
        (tx.PRINT, "하운드 투스", "하운즈 투스"),
        (tx.PRINT, "카무플라주", "카무플라쥬"),
        (tx.DETAIL, "블브레스티드", "더블브레스티드"),
        (tx.COLOR, "Gray", "그레이"),
    ],
)
def test_aliases(attribute: tx.Attribute, variant: str, canonical: str) -> None:
    label = attribute.lookup(variant)
    assert label is not None and label.ko == canonical


def test_lookup_by_either_language_ignoring_case_and_spacing() -> None:
    assert tx.CATEGORY.lookup("T-Shirt").ko == "티셔츠"
    assert tx.CATEGORY.lookup("tshirt").ko == "티셔츠"
    assert tx.CATEGORY.lookup(" 티셔츠 ").en == "t-shirt"
    assert tx.STYLE.lookup("Avant-Garde").ko == "아방가르드"
    assert tx.STYLE.lookup("키치/키덜트").en == "kitsch"
    # The same Korean word means different things in different attributes.
    assert tx.NECKLINE.lookup("후드").en == "hood" and tx.DETAIL.lookup("후드").en == "hood"
    assert tx.CATEGORY.lookup("패딩").en == "padding" and tx.DETAIL.lookup("패딩").id == 24


def test_unknown_value_is_none_not_an_error() -> None:
    assert tx.CATEGORY.lookup("수영복") is None
    assert tx.COLOR.lookup("") is None
    assert tx.STYLE.lookup("엘레강스") is None


def test_regions() -> None:
    assert tx.region_from_key("아웃터") == "outer"
    assert tx.region_from_key("아우터") == "outer"
    assert tx.region_from_key("원피스") == "onepiece"
    assert tx.region_from_key("bottom") == "bottom"
    assert tx.region_from_key("스타일") is None
    assert tx.region_of_category("조거팬츠") == "bottom"
    assert tx.region_of_category("가디건") == "outer"


def test_region_specific_labels() -> None:
    assert [lb.ko for lb in tx.LENGTH.labels_for("top")] == ["크롭", "노멀", "롱"]
    assert [lb.ko for lb in tx.LENGTH.labels_for("bottom")] == ["미니", "니렝스", "미디", "발목", "맥시"]
    assert [lb.ko for lb in tx.CATEGORY.labels_for("onepiece")] == ["드레스", "점프수트"]
    assert tx.SLEEVE.labels_for("bottom") == ()
    assert tx.FIT.labels_for("onepiece") == ()


def test_names_are_unambiguous_within_each_attribute() -> None:
    # Building the index raises when one spelling would name two labels.
    for attribute in (*tx.ITEM_ATTRIBUTES, tx.STYLE):
        for label in attribute.labels:
            assert attribute.lookup(label.ko) is label
            assert attribute.lookup(label.en) is label


def test_version_is_derived_from_content() -> None:
    assert tx.TAXONOMY_VERSION.startswith("kfashion-1+")
    assert f"kfashion-1+{tx._content_digest()}" == tx.TAXONOMY_VERSION
    original = tx.COLOR.labels
    try:
        object.__setattr__(tx.COLOR, "labels", (*original, tx.Label(21, "코랄", "coral")))
        assert tx._content_digest() != tx.TAXONOMY_VERSION.split("+")[1]
    finally:
        object.__setattr__(tx.COLOR, "labels", original)
