"""`kfashion labels ...` run as a user runs it: the installed command in a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import SAMPLE_BOTTOM_ATTRIBUTES, SAMPLE_LABEL

ISSUE_KEYS = ["file", "image", "items", "styles", "unknown"]


def kfashion(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfashion", *args], capture_output=True, text=True, timeout=120
    )


def test_labels_show_prints_one_object_per_file(tmp_path: Path) -> None:
    for name in ("a", "b"):
        folder = tmp_path / "리조트" / name
        folder.mkdir(parents=True)
        shutil.copy(SAMPLE_LABEL, folder / f"{name}.json")
    result = kfashion("labels", "show", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    view = json.loads(lines[0])
    assert list(view)[:5] == ISSUE_KEYS
    assert view["image"] == {
        "id": 16566,
        "width": 800,
        "height": 1066,
        "file_name": "u_14859239888517400_1493917978.jpg",
    }
    bottom = next(item for item in view["items"] if item["region"] == "bottom")
    assert bottom["box"] == [210.5, 329.5, 322.0, 375.0]
    assert bottom["attributes"] == SAMPLE_BOTTOM_ATTRIBUTES
    assert view["styles"] == [{"style": "리조트", "sub_style": "컨트리"}]
    assert view["unknown"] == []


def test_labels_show_reports_unknown_values_and_bad_files(tmp_path: Path) -> None:
    doc = json.loads(SAMPLE_LABEL.read_text(encoding="utf-8"))
    doc["데이터셋 정보"]["데이터셋 상세설명"]["라벨링"]["하의"][0]["카테고리"] = "수영복"
    (tmp_path / "odd.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "zbad.json").write_text(
        '{"이미지 정보": {"이미지 식별자": "x"}, "데이터셋 정보": {}}', encoding="utf-8"
    )
    result = kfashion("labels", "show", str(tmp_path))
    assert result.returncode == 1
    views = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(views) == 1  # the good file is still printed
    assert views[0]["unknown"] == [
        {"region": "bottom", "field": "category", "value": "수영복", "reason": "not in taxonomy"}
    ]
    assert "zbad.json" in result.stderr and "이미지 식별자" in result.stderr


def test_labels_show_missing_path() -> None:
    result = kfashion("labels", "show", "/no/such/place")
    assert result.returncode == 2
    assert "no such file" in result.stderr


def test_labels_stats_counts(tmp_path: Path) -> None:
    shutil.copy(SAMPLE_LABEL, tmp_path / "a.json")
    result = kfashion("labels", "stats", str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["files"] == 1
    assert report["items_per_region"] == {"top": 1, "bottom": 1}
    assert report["attributes"]["category"] == {"브라탑": 1, "팬츠": 1}
    assert report["styles"] == {"리조트": 1}


def test_taxonomy_json_lists_every_attribute() -> None:
    result = kfashion("taxonomy", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    sizes = {a["key"]: len(a["labels"]) for a in data["attributes"]}
    assert sizes["category"] == 21 and sizes["style"] == 23 and sizes["detail"] == 40
    assert data["version"].startswith("kfashion-1+")
