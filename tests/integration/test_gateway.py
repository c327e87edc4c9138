"""/tagging end to end against real servers (uvicorn on loopback), embedded and as microservices, with the
committed bootstrap models on generated K-Fashion-format pictures they never saw."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx2
import numpy as np
import pytest
from openpyxl import load_workbook
from PIL import Image

from shared.imaging import decode_image
from shared.settings import ImageLimits
from shared.taxonomy import ATTRIBUTES, REGIONS, STYLE
from tests.servers import MAX_BYTES, Server, all_running, gateway_env
from training.data import Sample
from training.metrics import labelled_items_found

# Share of labelled items found: a detection of the same region with IoU >= 0.5. Issue 4 asks 0.90. The
# bootstrap detector (trained on its images and their mirrors, threshold 0.2) finds 74/82 = 0.902 here and
# 563/608 = 0.926 on 300 such pictures (`python -m bench.detector_threshold`); the one before it 75/82 and
# 556/608, the one before that 76/82 and 544/608. Inference is deterministic, so the floor is the target.
BOX_MATCH_MIN = 0.90


@pytest.fixture(scope="module")
def microservices(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    folder = tmp_path_factory.mktemp("micro")
    services = {
        name: Server(["--service", name], log=folder / f"{name}.log").start(wait=False)
        for name in ("detector", "attributes", "style")
    }
    urls = [arg for name, s in services.items() for arg in (f"--{name}-url", s.url)]
    gateway = Server(
        ["--service", "gateway", *urls], gateway_env(folder / "data"), log=folder / "gateway.log"
    )
    with all_running({**services, "gateway": gateway}) as servers:
        yield servers


def _files(samples: list[Sample]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (s.image_path.name, s.image_path.read_bytes(), "image/jpeg")) for s in samples]


def _ok_results(response: httpx2.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["body"]["results"]


def _tag(url: str, samples: list[Sample], **params: object) -> list[dict]:
    results = []
    for start in range(0, len(samples), 8):
        response = httpx2.post(
            f"{url}/tagging", files=_files(samples[start : start + 8]), params=params, timeout=120
        )
        results.extend(_ok_results(response))
    return results


def _box_match(samples: list[Sample], results: list[dict]) -> tuple[int, int]:
    matched = total = 0
    for sample, result in zip(samples, results, strict=True):
        assert result["file"] == sample.image_path.name and result["status"] == "done"
        total += len(sample.record.items)
        matched += labelled_items_found(
            [(item.region, item.box) for item in sample.record.items],
            [(found["region"], found["box"]) for found in result["items"]],
        )
    return matched, total


def _assert_taxonomy_names(result: dict) -> None:
    assert STYLE.lookup(result["style"]) is not None
    assert [s["name"] for s in result["styles"]] and all(STYLE.lookup(s["name"]) for s in result["styles"])
    assert set(REGIONS) <= set(result)
    for item in result["items"]:
        assert item["region"] in REGIONS and len(item["box"]) == 4 and 0 < item["score"] <= 1
        for key, attribute in item["attributes"].items():
            values = attribute.get("values", [attribute]) + attribute["top_k"]
            for value in values:
                label = ATTRIBUTES[key].lookup(value["value"])
                assert label is not None and label.en == value["value_en"], (key, value)
                assert label in ATTRIBUTES[key].labels_for(item["region"])
        assert item["color"]["value"] == item["attributes"]["color"]["value"]
        assert item["color"]["hex"].startswith("#") and 0 <= item["color"]["share"] <= 1


@pytest.mark.parametrize("mode", ["embedded", "microservices"])
def test_tagging_finds_the_labelled_garments(
    mode: str, request: pytest.FixtureRequest, unseen: list[Sample]
) -> None:
    servers = request.getfixturevalue(mode)
    url = servers.url if mode == "embedded" else servers["gateway"].url
    results = _tag(url, unseen)
    matched, total = _box_match(unseen, results)
    assert matched / total >= BOX_MATCH_MIN, f"{matched}/{total} labelled items found"
    for result in results:
        _assert_taxonomy_names(result)
        for region in REGIONS:
            best = [i for i in result["items"] if i["region"] == region]
            assert bool(result[region]) == bool(best)  # {} where no garment, as in the labels


def test_both_modes_give_the_same_answer(
    embedded: Server, microservices: dict[str, Server], unseen: list[Sample]
) -> None:
    one, other = _tag(embedded.url, unseen[:4]), _tag(microservices["gateway"].url, unseen[:4])
    for a, b in zip(one, other, strict=True):
        assert [i["box"] for i in a["items"]] == [i["box"] for i in b["items"]]
        assert [i["attributes"] for i in a["items"]] == [i["attributes"] for i in b["items"]]
        assert a["styles"] == b["styles"]


def test_a_bad_file_in_a_batch_fails_alone(embedded: Server, unseen: list[Sample]) -> None:
    files = [*_files(unseen[:2]), ("files", ("notes.txt", b"not a picture", "text/plain"))]
    body = httpx2.post(f"{embedded.url}/tagging", files=files, timeout=60).json()["body"]
    assert body["counts"] == {"total": 3, "failed": 1, "done": 2}
    failed = body["results"][2]
    assert failed["file"] == "notes.txt" and failed["error"]["code"] == "UNSUPPORTED_IMAGE_FORMAT"


def _decoded_png(data: bytes) -> bytes:
    """The pixels the project's decoder reads from `data`, as a PNG (lossless)."""
    buffer = io.BytesIO()
    Image.fromarray(decode_image(data, ImageLimits()).pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_heic_and_avif_photos_are_tagged_as_their_pixels(embedded: Server, unseen: list[Sample]) -> None:
    # tests/data/person.heic: a generated picture saved as HEIC (by pillow-heif's encoder, once; the
    # project decodes with pi-heif, which has none). AVIF is written here by Pillow itself.
    heic = (Path(__file__).parents[1] / "data" / "person.heic").read_bytes()
    buffer = io.BytesIO()
    Image.open(unseen[0].image_path).save(buffer, format="AVIF", quality=90)
    avif = buffer.getvalue()
    files = [
        ("files", ("IMG_0001.HEIC", heic, "image/heic")),
        ("files", ("IMG_0001.png", _decoded_png(heic), "image/png")),
        ("files", ("look.avif", avif, "image/avif")),
        ("files", ("look.png", _decoded_png(avif), "image/png")),
    ]
    results = _ok_results(httpx2.post(f"{embedded.url}/tagging", files=files, timeout=120))
    assert [r["status"] for r in results] == ["done"] * 4
    for coded, decoded in (results[:2], results[2:]):
        assert coded["items"] and coded["items"] == decoded["items"] and coded["styles"] == decoded["styles"]
    # In the catalog the file stays as uploaded; browsers other than Safari ask for a JPEG of it.
    added = httpx2.post(f"{embedded.url}/catalog/images", files=files[:1], timeout=120).json()["body"]
    image_id = added["results"][0]["image_id"]
    try:
        original = httpx2.get(f"{embedded.url}/catalog/images/{image_id}/file", timeout=30)
        assert original.content == heic and original.headers["content-type"] == "image/heif"
        jpeg = httpx2.get(
            f"{embedded.url}/catalog/images/{image_id}/file", params={"format": "jpeg"}, timeout=30
        )
        assert jpeg.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(jpeg.content)).size == (360, 360)
    finally:
        httpx2.delete(f"{embedded.url}/catalog/images/{image_id}", timeout=30)


def test_archive_entries_are_tagged_and_bad_entries_fail_alone(
    embedded: Server, unseen: list[Sample]
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for sample in unseen[:2]:
            archive.writestr(f"shop/{sample.image_path.name}", sample.image_path.read_bytes())
        archive.writestr("shop/readme.txt", "prices")
        archive.writestr("__MACOSX/shop/._x.jpg", "resource fork")
    files = [("files", ("shop.zip", buffer.getvalue(), "application/zip"))]
    body = httpx2.post(f"{embedded.url}/tagging", files=files, timeout=60).json()["body"]
    assert [r["file"] for r in body["results"]] == [
        *(f"shop.zip/shop/{s.image_path.name}" for s in unseen[:2]),
        "shop.zip/shop/readme.txt",
    ]
    assert [r["status"] for r in body["results"]] == ["done", "done", "failed"]
    assert body["results"][2]["error"]["code"] == "UNSUPPORTED_ARCHIVE_ENTRY"


def test_urls_from_allowed_hosts_are_fetched(
    embedded: Server, image_host: tuple[str, list[str]], unseen: list[Sample]
) -> None:
    host, hits = image_host
    name = unseen[0].image_path.name
    data = {"urls": [f"{host}/{name}", f"{host}/missing.jpg"]}
    body = httpx2.post(f"{embedded.url}/tagging", data=data, timeout=60).json()["body"]
    assert [r["status"] for r in body["results"]] == ["done", "failed"]
    assert body["results"][0]["file"] == name and body["results"][0]["items"]
    assert body["results"][1]["error"]["code"] == "URL_FETCH_FAILED"
    assert f"/{name}" in hits


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 200, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _bad_inputs(unseen: list[Sample]) -> dict[str, tuple[list, dict, int, str]]:
    jpeg = unseen[0].image_path.read_bytes()
    noise = np.random.default_rng(0).integers(0, 255, MAX_BYTES + 10, dtype=np.uint8).tobytes()
    return {
        "not an image": (
            [("files", ("a.jpg", b"GIF89a? no, plain text", "image/jpeg"))],
            {},
            415,
            "UNSUPPORTED_IMAGE_FORMAT",
        ),
        "truncated image": (
            [("files", ("cut.jpg", jpeg[: len(jpeg) // 2], "image/jpeg"))],
            {},
            422,
            "CORRUPT_IMAGE",
        ),
        "too many pixels": (
            [("files", ("huge.png", _png(3000, 2100), "image/png"))],
            {},
            413,
            "IMAGE_TOO_MANY_PIXELS",
        ),
        "too large": (
            [("files", ("big.jpg", b"\xff\xd8\xff" + noise, "image/jpeg"))],
            {},
            413,
            "FILE_TOO_LARGE",
        ),
        "unsupported archive entry": (
            [("files", ("docs.zip", _zip({"prices.xls": b"x"}), "application/zip"))],
            {},
            415,
            "UNSUPPORTED_ARCHIVE_ENTRY",
        ),
        "empty request": ([], {}, 400, "EMPTY_REQUEST"),
        "host not allowed": ([], {"urls": ["http://localhost:9/a.jpg"]}, 403, "HOST_NOT_ALLOWED"),
        "too many files": (_files(unseen[:1]) * 17, {}, 413, "TOO_MANY_FILES"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not an image",
        "truncated image",
        "too many pixels",
        "too large",
        "unsupported archive entry",
        "empty request",
        "host not allowed",
        "too many files",
    ],
)
def test_bad_input_answers_the_envelope(case: str, embedded: Server, unseen: list[Sample]) -> None:
    files, data, status, code = _bad_inputs(unseen)[case]
    response = httpx2.post(f"{embedded.url}/tagging", files=files or None, data=data, timeout=60)
    assert response.status_code == status, response.text
    envelope = response.json()
    assert set(envelope) == {"resultCode", "resultMessage", "body", "responseDate"}
    assert envelope["resultCode"] == status and envelope["body"]["error"]["code"] == code
    assert envelope["resultMessage"]


def test_too_many_images_say_where_to_send_them(embedded: Server, unseen: list[Sample]) -> None:
    """Over the limit of a request, the message names what takes that many: a job for /tagging, several
    requests or the folder command for the catalog (which has no job form). Nothing is tagged or stored."""
    files, _, _, _ = _bad_inputs(unseen)["too many files"]

    def catalog_size() -> int:
        listed = httpx2.get(f"{embedded.url}/catalog/images", params={"limit": 1}, timeout=30)
        return listed.json()["body"]["total"]

    before = catalog_size()
    for path, hint in (("/tagging", "POST /tagging/jobs"), ("/catalog/images", "kfashion catalog add")):
        response = httpx2.post(f"{embedded.url}{path}", files=files, timeout=60)
        assert response.status_code == 413 and hint in response.json()["resultMessage"], response.text
    assert catalog_size() == before


def test_unknown_service(embedded: Server) -> None:
    response = httpx2.get(f"{embedded.url}/services/tagger")
    assert response.status_code == 404 and response.json()["body"]["error"]["code"] == "UNKNOWN_SERVICE"
    assert httpx2.get(f"{embedded.url}/services/detector").json()["body"]["ready"] is True
    started = subprocess.run(
        [sys.executable, "-m", "kfashion", "serve", "--service", "tagger"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2 and "unknown service 'tagger'" in started.stderr


def test_a_rejected_job_writes_nothing(embedded: Server, unseen: list[Sample]) -> None:
    data_dir = Path(embedded.env["KFASHION_DATA_DIR"])
    stored = lambda: sorted(p for p in (data_dir / "blobs").rglob("*") if p.is_file())  # noqa: E731
    before = stored()
    response = httpx2.post(
        f"{embedded.url}/tagging/jobs",
        files=_files(unseen[:2]),
        data={"urls": ["http://example.com/a.jpg"]},
        timeout=60,
    )
    assert response.status_code == 403 and response.json()["body"]["error"]["code"] == "HOST_NOT_ALLOWED"
    assert stored() == before


def test_tables_and_drawn_images(embedded: Server, unseen: list[Sample]) -> None:
    files = _files(unseen[:3])
    csv_text = httpx2.post(
        f"{embedded.url}/tagging", files=files, params={"format": "csv"}, timeout=60
    ).content
    rows = csv_text.decode("utf-8-sig").splitlines()
    assert len(rows) == 4 and rows[0].startswith("file,status,error,style")
    xlsx = httpx2.post(f"{embedded.url}/tagging", files=files, params={"format": "xlsx"}, timeout=60).content
    sheet = load_workbook(io.BytesIO(xlsx)).active
    table = list(sheet.values)
    assert len(table) == 4 and table[1][0] == unseen[0].image_path.name and table[1][1] == "done"
    header = list(table[0])
    for region in REGIONS:  # the region columns hold what the JSON's region summary holds
        column = header.index(f"{region}_category")
        assert all(STYLE.lookup(r[3]) for r in table[1:])
        assert all(r[column] is None or ATTRIBUTES["category"].lookup(r[column]) for r in table[1:])
    one = httpx2.post(
        f"{embedded.url}/tagging", files=files[:1], params={"format": "image", "size": 300}, timeout=60
    )
    assert one.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(one.content)).size) == 300
    several = httpx2.post(
        f"{embedded.url}/tagging", files=files, params={"format": "image", "size": 200}, timeout=60
    )
    assert len(zipfile.ZipFile(io.BytesIO(several.content)).namelist()) == 3


def test_a_picture_without_garments_gets_no_items_and_no_style(
    embedded: Server, unseen: list[Sample]
) -> None:
    """No garment, no look: no styles either (the style model would name noise for a bare picture)."""
    files = [("files", ("plain.png", _png(480, 640), "image/png")), *_files(unseen[:1])]
    plain, dressed = _ok_results(httpx2.post(f"{embedded.url}/tagging", files=files, timeout=60))
    assert plain["status"] == "done" and plain["items"] == []
    assert plain["style"] is None and plain["sub_style"] is None and plain["styles"] == []
    assert all(plain[region] == {} for region in REGIONS)
    assert dressed["items"] and STYLE.lookup(dressed["style"]) is not None
    table = httpx2.post(f"{embedded.url}/tagging", files=files, params={"format": "csv"}, timeout=60)
    row = table.content.decode("utf-8-sig").splitlines()[1].split(",")
    assert row[:6] == ["plain.png", "done", "", "", "", "0"]
    drawn = httpx2.post(
        f"{embedded.url}/tagging", files=files[:1], params={"format": "image", "size": 200}, timeout=60
    )
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/jpeg"


def test_metrics_and_openapi(embedded: Server) -> None:
    metrics = httpx2.get(f"{embedded.url}/metrics").text
    assert 'kfashion_model_inference_seconds_count{backend="onnxruntime",model="detector"}' in metrics
    assert "kfashion_http_requests_total" in metrics
    paths = httpx2.get(f"{embedded.url}/openapi.json").json()["paths"]
    assert {"/tagging", "/tagging/jobs", "/tagging/jobs/{job_id}/results", "/readyz", "/metrics"} <= set(
        paths
    )


def test_a_service_that_is_down_is_named(microservices: dict[str, Server], unseen: list[Sample]) -> None:
    microservices["style"].kill()
    response = httpx2.post(f"{microservices['gateway'].url}/tagging", files=_files(unseen[:1]), timeout=60)
    assert response.status_code == 503
    error = response.json()["body"]["error"]
    assert error["code"] == "SERVICE_UNAVAILABLE" and error["details"]["service"] == "style"
    assert "style" in response.json()["resultMessage"]
    assert httpx2.get(f"{microservices['gateway'].url}/readyz").status_code == 503
