from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.labels import (
    ImageInfo,
    Item,
    LabelError,
    LabelRecord,
    StyleLabel,
    build_label,
    dumps_label,
    find_label_files,
    iter_records,
    parse_label,
    read_label,
    record_view,
    write_label,
)
from tests.conftest import SAMPLE_BOTTOM_ATTRIBUTES, SAMPLE_LABEL

DETAIL = "데이터셋 상세설명"


def labeling(doc: dict) -> dict:
    return doc["데이터셋 정보"][DETAIL]["라벨링"]


def rects(doc: dict) -> dict:
    return doc["데이터셋 정보"][DETAIL]["렉트좌표"]


def polygons(doc: dict) -> dict:
    return doc["데이터셋 정보"][DETAIL]["폴리곤좌표"]


# ------------------------------------------------------------------ the KFASHION.md sample


def test_reads_the_kfashion_sample() -> None:
    record = read_label(SAMPLE_LABEL)
    assert record.image == ImageInfo(16566, 800, 1066, "u_14859239888517400_1493917978.jpg")
    assert record.created_at == "2020-09-18 17:07:48"
    assert record.file_number == 16566
    assert [item.region for item in record.items] == ["top", "bottom"]  # outer and onepiece are [{}]
    top, bottom = record.items
    assert bottom.box == (210.5, 329.5, 322.0, 375.0)
    assert bottom.box[1] + bottom.box[3] == 704.5  # the rect ends where its polygon does (y=705)
    assert top.box == (180.5, 15.5, 325.0, 370.0)
    assert bottom.attributes == SAMPLE_BOTTOM_ATTRIBUTES
    assert top.attributes["collar"] == "차이나칼라"
    assert top.attributes["sleeve"] == "긴팔"
    assert top.attributes["neckline"] == "브이넥"
    assert record.styles == [StyleLabel("리조트", "컨트리")]
    assert record.unknown == []


def test_sample_polygon_quirk_pairs_by_number() -> None:
    record = read_label(SAMPLE_LABEL)
    top = record.items[0]
    # X좌표2 and Y좌표4 have no partner: dropped, reported, the rest kept in number order.
    assert top.polygon[0] == (300.0, 30.0)
    assert top.polygon[-1] == (385.0, 506.0)
    assert len(top.polygon) == 8
    assert any("unpaired" in w and "[2, 4]" in w for w in record.warnings)
    bottom = record.items[1]
    assert bottom.polygon[0] == (222.0, 522.0) and bottom.polygon[-1] == (256.0, 705.0)


def test_round_trip_of_the_sample() -> None:
    record = read_label(SAMPLE_LABEL)
    again = parse_label(json.loads(dumps_label(record)))
    assert again == record


def test_writer_emits_the_exact_schema(sample_doc: dict) -> None:
    document = build_label(read_label(SAMPLE_LABEL))
    assert list(document) == ["이미지 정보", "데이터셋 정보"]
    assert list(document["이미지 정보"]) == ["이미지 식별자", "이미지 높이", "이미지 파일명", "이미지 너비"]
    assert list(document["데이터셋 정보"]) == ["파일 생성일자", DETAIL, "파일 번호", "파일 이름"]
    assert list(rects(document)) == ["아우터", "하의", "원피스", "상의"]
    assert list(labeling(document)) == ["스타일", "아우터", "하의", "원피스", "상의"]
    assert rects(document)["아우터"] == [{}] and labeling(document)["원피스"] == [{}]
    assert rects(document)["하의"] == rects(sample_doc)["하의"]
    assert labeling(document)["하의"] == labeling(sample_doc)["하의"]
    assert labeling(document)["상의"] == labeling(sample_doc)["상의"]
    assert labeling(document)["스타일"] == labeling(sample_doc)["스타일"]
    # "가로"/"세로" stay integers when they are whole numbers, like the source.
    assert isinstance(rects(document)["하의"][0]["가로"], int)


def test_round_trip_of_a_built_record(tmp_path: Path) -> None:
    record = LabelRecord(
        image=ImageInfo(7, 800, 800, "a.jpg"),
        created_at="2020-01-01 00:00:00",
        file_number=7,
        file_name="a.jpg",
        items=[
            Item(
                "outer",
                (1.0, 2.5, 30.0, 40.25),
                [(1.0, 2.0), (3.0, 4.0), (5.5, 6.0)],
                {"category": "코트", "color": "카키", "sub_color": "블랙", "detail": ["단추", "포켓"]},
            ),
            Item("onepiece", None, [], {"category": "드레스"}),
        ],
        styles=[StyleLabel("모던", None)],
    )
    path = tmp_path / "a.json"
    write_label(record, path)
    assert read_label(path) == record


# ------------------------------------------------------------------ quirks of real files


def test_absent_region_and_style_as_empty_objects(sample_doc: dict) -> None:
    labeling(sample_doc)["스타일"] = [{}]
    for section in (rects(sample_doc), polygons(sample_doc), labeling(sample_doc)):
        section["상의"] = [{}]
    record = parse_label(sample_doc)
    assert [item.region for item in record.items] == ["bottom"]
    assert record.styles == []


@pytest.mark.parametrize("empty", [[{}], [], {}, None])
def test_every_spelling_of_absent(sample_doc: dict, empty: object) -> None:
    for section in (rects(sample_doc), polygons(sample_doc), labeling(sample_doc)):
        section["하의"] = empty
    assert [item.region for item in parse_label(sample_doc).items] == ["top"]


def test_polygon_keys_in_any_order(sample_doc: dict) -> None:
    polygons(sample_doc)["하의"] = [
        {
            "Y좌표3": 30.0,
            "X좌표1": 1.0,
            "X좌표3": 3.0,
            "Y좌표1": 10.0,
            "X좌표2": 2.0,
            "Y좌표2": 20.0,
            "Y좌표9": 99.0,
        }
    ]
    record = parse_label(sample_doc)
    assert record.items[1].polygon == [(1.0, 10.0), (2.0, 20.0), (3.0, 30.0)]
    assert any("[9]" in w for w in record.warnings)


def test_missing_attributes_are_left_out(sample_doc: dict) -> None:
    labeling(sample_doc)["하의"] = [{"카테고리": "스커트", "색상": "", "프린트": []}]
    item = parse_label(sample_doc).items[1]
    assert item.attributes == {"category": "스커트"}
    view = record_view(parse_label(sample_doc))
    assert "color" not in view["items"][1]["attributes"]


def test_string_for_list_and_list_for_string(sample_doc: dict) -> None:
    labeling(sample_doc)["하의"] = [
        {"카테고리": ["팬츠"], "디테일": "리본", "소재": "면", "색상": ["블랙", "화이트"]}
    ]
    record = parse_label(sample_doc)
    item = record.items[1]
    assert item.attributes["category"] == "팬츠"
    assert item.attributes["detail"] == ["리본"]
    assert item.attributes["material"] == ["면"]
    assert item.attributes["color"] == "블랙"
    # the second colour is not silently dropped: it is reported
    assert [(u.field, u.value) for u in record.unknown] == [("color", "화이트")]


def test_extra_keys_are_kept(sample_doc: dict) -> None:
    labeling(sample_doc)["상의"][0]["서브색상"] = "화이트"
    labeling(sample_doc)["상의"][0]["안감"] = "있음"
    record = parse_label(sample_doc)
    top = record.items[0]
    assert top.attributes["sub_color"] == "화이트"
    assert top.extra == {"안감": "있음"}
    assert [(u.region, u.field, u.value) for u in record.unknown] == [("top", "안감", "있음")]
    again = parse_label(build_label(record))
    assert again == record
    assert labeling(build_label(record))["상의"][0]["서브색상"] == "화이트"


def test_numbers_written_as_strings(sample_doc: dict) -> None:
    rects(sample_doc)["하의"] = [{"X좌표": "210.5", "Y좌표": "329.5", "가로": "322", "세로": 375}]
    sample_doc["이미지 정보"]["이미지 높이"] = "1066"
    record = parse_label(sample_doc)
    assert record.items[1].box == (210.5, 329.5, 322.0, 375.0)
    assert record.image.height == 1066


def test_aliases_are_known_and_kept_as_written(sample_doc: dict) -> None:
    labeling(sample_doc)["하의"][0]["카테고리"] = "래깅스"
    labeling(sample_doc)["상의"][0]["넥라인"] = "홀토넥"
    record = parse_label(sample_doc)
    assert record.items[1].attributes["category"] == "래깅스"
    assert record.items[0].attributes["neckline"] == "홀토넥"
    assert record.unknown == []


def test_unknown_values_are_kept_and_counted(sample_doc: dict) -> None:
    labeling(sample_doc)["하의"][0]["카테고리"] = "수영복"
    labeling(sample_doc)["하의"][0]["프린트"] = ["아가일", "헤링본"]
    labeling(sample_doc)["스타일"] = [{"스타일": "엘레강스", "서브스타일": "리조트"}]
    record = parse_label(sample_doc)
    assert record.items[1].attributes["category"] == "수영복"
    assert record.items[1].attributes["print"] == ["아가일", "헤링본"]
    assert record.styles == [StyleLabel("엘레강스", "리조트")]
    assert {(u.field, u.value) for u in record.unknown} == {
        ("category", "수영복"),
        ("print", "헤링본"),
        ("style", "엘레강스"),
    }


def test_region_key_variant_of_seed_000(sample_doc: dict) -> None:
    for section in (rects(sample_doc), polygons(sample_doc), labeling(sample_doc)):
        del section["아우터"]
    rects(sample_doc)["아웃터"] = [{"X좌표": 1, "Y좌표": 2, "가로": 3, "세로": 4}]
    labeling(sample_doc)["아웃터"] = [{"카테고리": "코트"}]
    record = parse_label(sample_doc)
    outer = record.items_of("outer")
    assert len(outer) == 1 and outer[0].box == (1.0, 2.0, 3.0, 4.0)
    assert outer[0].attributes == {"category": "코트"}


def test_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + SAMPLE_LABEL.read_bytes())
    assert read_label(path).image.id == 16566


# ------------------------------------------------------------------ files that cannot be read


def test_invalid_json_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"이미지 정보": {', encoding="utf-8")
    with pytest.raises(LabelError) as caught:
        read_label(path)
    assert "broken.json" in str(caught.value) and "line 1" in str(caught.value)


def test_bad_number_names_the_field(sample_doc: dict) -> None:
    rects(sample_doc)["하의"][0]["X좌표"] = "왼쪽"
    with pytest.raises(LabelError) as caught:
        parse_label(sample_doc, "x.json")
    assert caught.value.file == "x.json"
    assert caught.value.field_path == "데이터셋 정보.데이터셋 상세설명.렉트좌표.하의[0].X좌표"


def test_incomplete_rect_names_the_missing_field(sample_doc: dict) -> None:
    del rects(sample_doc)["상의"][0]["세로"]
    with pytest.raises(LabelError, match=r"상의\[0\]\.세로"):
        parse_label(sample_doc, "x.json")


def test_missing_image_info(sample_doc: dict) -> None:
    del sample_doc["이미지 정보"]
    with pytest.raises(LabelError, match="이미지 정보"):
        parse_label(sample_doc, "x.json")


def test_attribute_given_as_object_is_an_error(sample_doc: dict) -> None:
    labeling(sample_doc)["하의"][0]["색상"] = {"값": "블랙"}
    with pytest.raises(LabelError, match=r"하의\[0\]\.색상"):
        parse_label(sample_doc, "x.json")


# ------------------------------------------------------------------ dataset trees


def _copy_sample(path: Path, image: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SAMPLE_LABEL.read_bytes())
    if image:
        path.with_suffix(".jpg").write_bytes(b"jpeg")


def test_dataset_tree_and_flat_folders(tmp_path: Path) -> None:
    _copy_sample(tmp_path / "리조트" / "16566" / "u_1.json")
    _copy_sample(tmp_path / "flat" / "u_2.json", image=False)
    (tmp_path / "split.json").write_text('{"train": []}', encoding="utf-8")
    found = {f.label_path.name: f for f in find_label_files(tmp_path)}
    assert found["u_1.json"].style_folder == "리조트" and found["u_1.json"].work_no == "16566"
    assert found["u_1.json"].image_path == tmp_path / "리조트" / "16566" / "u_1.jpg"
    assert found["u_2.json"].style_folder is None and found["u_2.json"].image_path is None
    results = list(iter_records([tmp_path]))
    assert sorted(f.label_path.name for f, _ in results) == ["u_1.json", "u_2.json"]  # split.json is skipped


def test_a_bad_file_fails_alone(tmp_path: Path) -> None:
    _copy_sample(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"이미지 정보": 3, "데이터셋 정보": {}}', encoding="utf-8")
    _copy_sample(tmp_path / "c.json")
    results = {f.label_path.name: r for f, r in iter_records([tmp_path])}
    assert isinstance(results["b.json"], LabelError)
    assert isinstance(results["a.json"], LabelRecord) and isinstance(results["c.json"], LabelRecord)
