"""The gateway built in-process over model services the test controls (`create_app(settings, services=...)`):
the tagging pipeline's composition, the search request's validation and the job routes, with no model and
no server. The fake below stands for the three model services only (their real answers are tested in
test_services.py and, over HTTP, in tests/integration); everything else is the real gateway, its real
embedded search service and job store on SQLite in a temporary folder."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from gateway.app import create_app
from gateway.clients import ImageInput
from services.attributes.schemas import AttributesRequest, AttributesResponse, ItemAttributes
from services.detector.schemas import DetectedItem, DetectResponse
from services.style.schemas import StyleRequest, StyleResponse, StyleScore
from shared.inference import ModelSpec
from shared.settings import Settings, load_settings


class FakeModelServices:
    """In-memory model services: a top and a bottom in every picture wider than 100 pixels, none in a
    narrower one; attributes and style that say which request they answer."""

    mode = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def predict(self, spec: ModelSpec, image: ImageInput, request: Any) -> Any:
        self.calls.append((spec.name, request))
        width = image.pixels.shape[1]
        if spec.name == "detector":
            if width <= 100:
                return DetectResponse(items=[])
            return DetectResponse(
                items=[
                    DetectedItem(region="top", box=[10, 10, 80, 60], score=0.9),
                    DetectedItem(region="bottom", box=[10, 70, 80, 60], score=0.8),
                ]
            )
        if spec.name == "attributes":
            assert isinstance(request, AttributesRequest)
            return AttributesResponse(
                items=[self._item(i.region, list(i.box), request.top_k) for i in request.items]
            )
        assert isinstance(request, StyleRequest)
        return StyleResponse(
            style="스트리트",
            style_en="street",
            sub_style=None,
            sub_style_en=None,
            styles=[StyleScore(name="스트리트", name_en="street", score=0.7)],
        )

    @staticmethod
    def _item(region: str, box: list[float], top_k: int | None) -> ItemAttributes:
        category = "티셔츠" if region == "top" else "청바지"
        single = {
            "value": category,
            "value_en": category,
            "score": 0.8,
            "top_k": [{"value": category, "value_en": category, "score": 0.8}] * (top_k or 1),
        }
        colour = {"value": "블랙", "value_en": "black", "score": 0.9, "top_k": []}
        return ItemAttributes(
            region=region,
            box=box,
            attributes={"category": single, "color": colour, "print": {"values": [], "top_k": []}},
            color={"value": "블랙", "value_en": "black", "hex": "#000000", "share": 0.5},
            embedding=[1.0] + [0.0] * 127,
        )

    def readiness(self) -> tuple[bool, dict]:
        return True, {"mode": self.mode}

    def ensure_ready(self) -> None:
        return None

    def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


def jpeg(width: int, height: int) -> bytes:
    pixels = np.random.default_rng(width).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data")


@pytest.fixture
def fake() -> FakeModelServices:
    return FakeModelServices()


@pytest.fixture
def client(settings: Settings, fake: FakeModelServices) -> Iterator[TestClient]:
    with TestClient(create_app(settings, services=fake)) as test_client:
        deadline = time.monotonic() + 30
        while test_client.get("/readyz").status_code != 200:  # the search service opens its indexes
            assert time.monotonic() < deadline, test_client.get("/readyz").json()
            time.sleep(0.05)
        yield test_client


def test_tagging_composes_detection_attributes_and_style(client: TestClient, fake: FakeModelServices) -> None:
    response = client.post("/tagging", files=[("files", ("look.jpg", jpeg(200, 150)))], params={"top_k": 2})
    assert response.status_code == 200
    (result,) = response.json()["body"]["results"]
    assert result["status"] == "done" and (result["width"], result["height"]) == (200, 150)
    assert [(i["region"], i["attributes"]["category"]["value"]) for i in result["items"]] == [
        ("top", "티셔츠"),
        ("bottom", "청바지"),
    ]
    assert result["items"][0]["box"] == [10, 10, 80, 60] and "embedding" not in result["items"][0]
    assert result["top"] == {"category": "티셔츠", "color": "블랙"} and result["outer"] == {}
    assert result["style"] == "스트리트"
    names = [name for name, _ in fake.calls]
    assert names[0] == "detector" and sorted(names[1:]) == ["attributes", "style"]
    attributes_request = next(r for n, r in fake.calls if n == "attributes")
    assert attributes_request.top_k == 2 and [i.region for i in attributes_request.items] == ["top", "bottom"]
    style_request = next(r for n, r in fake.calls if n == "style")
    assert style_request.boxes == [(10, 10, 80, 60), (10, 70, 80, 60)]


def test_no_garment_means_no_attribute_or_style_call(client: TestClient, fake: FakeModelServices) -> None:
    body = client.post("/tagging", files=[("files", ("cup.jpg", jpeg(80, 80)))]).json()["body"]
    (result,) = body["results"]
    assert result["items"] == [] and result["style"] is None and result["styles"] == []
    assert [name for name, _ in fake.calls] == ["detector"]


def test_a_bad_file_fails_alone_and_tables_list_both(client: TestClient) -> None:
    files = [("files", ("good.jpg", jpeg(200, 150))), ("files", ("bad.jpg", b"not an image"))]
    body = client.post("/tagging", files=files).json()["body"]
    assert body["counts"] == {"total": 2, "failed": 1, "done": 1}
    assert [r["status"] for r in body["results"]] == ["done", "failed"]
    table = client.post("/tagging", files=files, params={"format": "csv"}).text.splitlines()
    assert len(table) == 3 and table[1].startswith("good.jpg,done") and table[2].startswith("bad.jpg,failed")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "EMPTY_REQUEST"),
        ({"text": "블랙", "top_k": 0}, 422, "VALIDATION_FAILED"),
        ({"text": "블랙", "scope": "everything"}, 422, "VALIDATION_FAILED"),
        ({"text": "블랙", "offset": 5000}, 422, "VALIDATION_FAILED"),
        ({"filters": {"region": "hat"}}, 422, "VALIDATION_FAILED"),
        ({"text": "블랙", "scope": "look"}, 422, "VALIDATION_FAILED"),
        ({"text": "블랙", "region": "hat"}, 422, "VALIDATION_FAILED"),
    ],
)
def test_search_requests_are_validated(client: TestClient, body: dict, status: int, code: str) -> None:
    response = client.post("/search", json=body)
    assert response.status_code == status, response.json()
    assert response.json()["body"]["error"]["code"] == code


def test_search_bad_json_says_where(client: TestClient) -> None:
    response = client.post("/search", content=b'{"text": ', headers={"content-type": "application/json"})
    assert response.status_code == 400 and "line 1" in response.json()["body"]["error"]["message"]


def test_a_photo_search_finds_the_catalog_image(client: TestClient) -> None:
    photo = jpeg(200, 150)
    added = client.post("/catalog/images", files=[("files", ("shop.jpg", photo))]).json()["body"]
    assert added["counts"]["added"] == 1
    results = client.post("/search", files=[("files", ("query.jpg", photo))]).json()["body"]["results"]
    assert results and results[0]["image_id"] == added["results"][0]["image_id"]


def test_job_routes(client: TestClient) -> None:
    files = [("files", ("a.jpg", jpeg(200, 150))), ("files", ("b.jpg", jpeg(120, 120)))]
    created = client.post("/tagging/jobs", files=files, data={"top_k": "1"})
    assert created.status_code == 202
    job_id = created.json()["body"]["id"]
    deadline = time.monotonic() + 30
    while (job := client.get(f"/tagging/jobs/{job_id}").json()["body"])["status"] != "done":
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["counts"]["done"] == 2 and job["options"]["top_k"] == 1
    results = client.get(f"/tagging/jobs/{job_id}/results").json()["body"]["results"]
    assert [r["file"] for r in results] == ["a.jpg", "b.jpg"] and all(r["items"] for r in results)
    assert client.get(f"/tagging/jobs/{job_id}/images/0").headers["content-type"] == "image/jpeg"
    listed = client.get("/tagging/jobs").json()["body"]
    assert listed["total"] == 1 and listed["jobs"][0]["id"] == job_id
    assert client.get(f"/tagging/jobs/{job_id}/results", params={"format": "image"}).status_code == 422
    assert client.delete(f"/tagging/jobs/{job_id}").status_code == 200
    assert client.get(f"/tagging/jobs/{job_id}").status_code == 404


def test_a_job_without_images_is_refused(client: TestClient) -> None:
    response = client.post("/tagging/jobs", data={"top_k": "1"})
    assert response.status_code == 400 and response.json()["body"]["error"]["code"] == "EMPTY_REQUEST"


def test_tables_never_hold_a_formula(client: TestClient) -> None:
    """A file's name is the shop's text: a spreadsheet must show it, never run it."""
    from openpyxl import load_workbook

    files = [("files", ("=1+2.jpg", jpeg(200, 150))), ("files", ("@SUM(A1).jpg", b"not an image"))]
    table = client.post("/tagging", files=files, params={"format": "csv"}).content.decode("utf-8-sig")
    lines = table.splitlines()
    assert lines[1].startswith("'=1+2.jpg,done") and lines[2].startswith("'@SUM(A1).jpg,failed")
    book = client.post("/tagging", files=files, params={"format": "xlsx"}).content
    sheet = load_workbook(io.BytesIO(book)).active
    assert [sheet.cell(row, 1).value for row in (2, 3)] == ["=1+2.jpg", "@SUM(A1).jpg"]
    assert [sheet.cell(row, 1).data_type for row in (2, 3)] == ["s", "s"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/collections/%01", None, 404),  # a control character in a forwarded path
        ("GET", "/catalog/images/%05/file", None, 422),
        ("GET", "/catalog/images/9223372036854775808", None, 422),  # over the 64-bit ids
        ("GET", "/catalog/images?offset=9223372036854775808", None, 422),
        ("GET", "/tagging/jobs?offset=9223372036854775808", None, 422),
        ("POST", "/recommend", b'{"item_id": 9223372036854775808}', 422),
        ("PATCH", "/catalog/images/1", b'{"items": {"9223372036854775808": {"color": "red"}}}', 422),
        ("POST", "/search", b'{"text": "\\ud800"}', 422),  # a lone surrogate
        ("POST", "/collections", b'{"name": "c", "description": "\\udfff"}', 422),
        ("POST", "/search", b"[" * 5000 + b"]" * 5000, 400),  # nested past the parser's stack
        ("POST", "/collections", b"[" * 5000 + b"]" * 5000, 400),  # the same, forwarded
    ],
)
def test_bad_client_input_is_a_client_error(
    client: TestClient, method: str, path: str, body: bytes | None, status: int
) -> None:
    response = client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["body"]["error"]["code"] in ("NOT_FOUND", "VALIDATION_FAILED", "BAD_REQUEST")


def test_a_collection_with_a_bad_entry_is_not_created(client: TestClient) -> None:
    response = client.post("/collections", json={"name": "c", "entries": [{}]})
    assert response.status_code == 422 and "image_id" in response.json()["body"]["error"]["message"]
    assert client.get("/collections/c").status_code == 404  # a retry is not answered 409


def test_a_decompression_bomb_is_refused_unopened(client: TestClient) -> None:
    """Entries that shrank a hundredfold are no photos: each fails alone before it is inflated, and the
    photo beside them in the archive is tagged."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(20):
            archive.writestr(f"zeros{index}.jpg", bytes(5 * 1024 * 1024))
        archive.writestr("look.jpg", jpeg(200, 150))
    assert len(buffer.getvalue()) < 200_000
    body = client.post("/tagging", files=[("files", ("bomb.zip", buffer.getvalue()))]).json()["body"]
    assert body["counts"] == {"total": 21, "failed": 20, "done": 1}
    refused = [r["error"] for r in body["results"] if r["status"] == "failed"]
    assert {e["code"] for e in refused} == {"UNSUPPORTED_ARCHIVE_ENTRY"}
    assert "decompression bomb" in refused[0]["message"]


def test_another_sites_page_cannot_change_anything(client: TestClient) -> None:
    """No keys set (the default): a form posted from another site's page in the operator's browser is
    refused; the server's own console (same origin) and clients that send no Origin are not."""
    evil = {"Origin": "https://evil.example"}
    refused = client.post("/collections", json={"name": "mine"}, headers=evil)
    assert refused.status_code == 403 and refused.json()["body"]["error"]["code"] == "FORBIDDEN"
    assert client.get("/collections/mine").status_code == 404
    assert client.get("/collections", headers=evil).status_code == 200  # reading is not a change
    same_site = client.post("/collections", json={"name": "mine"}, headers={"Origin": "http://testserver"})
    assert same_site.status_code == 201
    assert client.post("/collections", json={"name": "other"}).status_code == 201


def test_answers_are_never_sniffed_or_framed(client: TestClient) -> None:
    refused = client.post("/collections", json={"name": "x"}, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403  # answered by a check before any route
    for response in (client.get("/taxonomy"), client.get("/collections/none"), client.get("/"), refused):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"


def test_answers_are_counted_by_route_and_status(client: TestClient) -> None:
    for _ in range(2):
        client.get("/collections/none")
    client.post("/collections", json={"name": "x"}, headers={"Origin": "https://evil.example"})
    metrics = client.get("/metrics").text
    assert 'kfashion_http_requests_total{route="/collections/{name}",service="gateway",status="404"} 2.0' in (
        metrics
    )
    # A refusal is answered before routing: counted, under no route.
    assert 'kfashion_http_requests_total{route="unmatched",service="gateway",status="403"} 1.0' in metrics


def test_search_text_is_bounded(client: TestClient) -> None:
    response = client.post("/search", json={"text": "블랙 " * 400})
    assert response.status_code == 422 and response.json()["body"]["error"]["code"] == "VALIDATION_FAILED"


@pytest.mark.parametrize("path", ["/search", "/collections"])
def test_a_huge_json_body_is_refused_unparsed(client: TestClient, path: str) -> None:
    body = b'{"text": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["body"]["error"]["code"] == "FILE_TOO_LARGE"


def test_catalog_answers_never_say_where_files_are_stored(client: TestClient) -> None:
    added = client.post("/catalog/images", files=[("files", ("shop.jpg", jpeg(200, 150)))]).json()["body"]
    image_id = added["results"][0]["image_id"]
    one = client.get(f"/catalog/images/{image_id}").json()["body"]
    listed = client.get("/catalog/images").json()["body"]["images"]
    assert one["file_name"] == "shop.jpg" and listed[0]["id"] == image_id
    assert "blob_key" not in one and all("blob_key" not in image for image in listed)
    assert client.get(f"/catalog/images/{image_id}/file").status_code == 200  # still served
    assert client.delete(f"/catalog/images/{image_id}").status_code == 200
    assert client.get(f"/catalog/images/{image_id}/file").status_code == 404


def test_a_request_whose_every_input_failed_answers_the_error(client: TestClient) -> None:
    """One status rule for /tagging, /catalog/images and /recommend: some done, 200 with each outcome;
    all failed, the error (one input: its own; several: the code they share, else ALL_INPUTS_FAILED)."""
    text, empty = ("files", ("notes.jpg", b"not an image")), ("files", ("empty.jpg", b""))
    one = client.post("/tagging", files=[text]).json()
    assert one["resultCode"] == 415 and one["body"]["error"]["code"] == "UNSUPPORTED_IMAGE_FORMAT"
    both = client.post("/tagging", files=[text, empty], params={"format": "csv"})
    error = both.json()["body"]["error"]
    assert both.status_code == 422 and error["code"] == "ALL_INPUTS_FAILED"
    assert [(f["file"], f["error"]["code"]) for f in error["details"]["failures"]] == [
        ("notes.jpg", "UNSUPPORTED_IMAGE_FORMAT"),
        ("empty.jpg", "EMPTY_FILE"),
    ]
    same = client.post("/tagging", files=[text, ("files", ("more.jpg", b"more text"))])
    assert same.status_code == 415 and same.json()["resultMessage"].startswith("all 2 inputs failed")
    added = client.post("/catalog/images", files=[text])
    assert added.status_code == 415 and added.json()["body"]["error"]["code"] == "UNSUPPORTED_IMAGE_FORMAT"
    assert client.get("/catalog/images").json()["body"]["total"] == 0
    matched = client.post("/recommend", files=[text])
    assert matched.status_code == 415, matched.text
    unknown = client.post("/recommend", json={"item_id": 12345})
    assert unknown.status_code == 404 and unknown.json()["body"]["error"]["code"] == "NOT_FOUND"


def test_requests_are_limited_per_address(tmp_path: Path, fake: FakeModelServices) -> None:
    settings = load_settings(data_dir=tmp_path / "data", gateway={"rate_limits": {"per_address": 5}})
    with TestClient(create_app(settings, services=fake)) as limited:
        statuses = [limited.get("/catalog/images").status_code for _ in range(8)]
        assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 3
        refused = limited.get("/collections")
        assert refused.json()["body"]["error"]["code"] == "RATE_LIMITED"
        assert int(refused.headers["retry-after"]) == 12  # one request in 60 / 5 seconds
        assert limited.get("/healthz").status_code == 200  # probes are never counted
