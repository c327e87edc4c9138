"""/tagging/jobs: large inputs in the background, downloads, and surviving a killed worker."""

from __future__ import annotations

import io
import json
import signal
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import cv2
import httpx2
import numpy as np
import pytest
from openpyxl import load_workbook
from PIL import Image

from shared.imaging import decode_image, encode_jpeg
from shared.settings import ImageLimits
from tests.servers import Server, gateway_env
from training.data import Sample

BULK = 200


class _Receiver(BaseHTTPRequestHandler):
    """A shop backend's callback endpoint: records each POST; /broken answers 500 every time."""

    received: ClassVar[list[tuple[str, dict]]] = []  # each fixture makes a subclass with its own list

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((self.path, body))
        self.send_response(500 if self.path == "/broken" else 204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list]]:
    handler = type("Receiver", (_Receiver,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.received
    server.shutdown()


def _files(named: list[tuple[str, bytes]]) -> list:
    return [("files", (name, data, "image/jpeg")) for name, data in named]


def _wait(url: str, job_id: str, until: callable, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx2.get(f"{url}/tagging/jobs/{job_id}", timeout=10).json()["body"]
        if until(job):
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id}: {job}")


def test_job_results_download_as_json_csv_xlsx_and_images(embedded: Server, unseen: list[Sample]) -> None:
    named = [(s.image_path.name, s.image_path.read_bytes()) for s in unseen[:5]]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("more/notes.md", "not an image")
    files = [*_files(named), ("files", ("more.zip", archive.getvalue(), "application/zip"))]
    created = httpx2.post(f"{embedded.url}/tagging/jobs", files=files, timeout=60)
    assert created.status_code == 202 and created.json()["resultCode"] == 202
    job_id = created.json()["body"]["id"]
    job = _wait(embedded.url, job_id, lambda j: j["status"] == "done")
    assert job["counts"] == {"total": 6, "done": 5, "failed": 1, "pending": 0}
    listed = httpx2.get(f"{embedded.url}/tagging/jobs", params={"limit": 500}).json()["body"]
    assert job in listed["jobs"] and listed["total"] == len(listed["jobs"]) >= 1
    results = httpx2.get(f"{embedded.url}/tagging/jobs/{job_id}/results").json()["body"]["results"]
    assert [r["position"] for r in results] == list(range(6))
    assert [r["file"] for r in results[:5]] == [name for name, _ in named]
    assert results[5]["error"]["code"] == "UNSUPPORTED_ARCHIVE_ENTRY"
    csv_rows = httpx2.get(f"{embedded.url}/tagging/jobs/{job_id}/results", params={"format": "csv"}).content
    assert len(csv_rows.decode("utf-8-sig").splitlines()) == 7
    xlsx = httpx2.get(f"{embedded.url}/tagging/jobs/{job_id}/results", params={"format": "xlsx"}).content
    assert [row[1] for row in list(load_workbook(io.BytesIO(xlsx)).active.values)[1:]] == ["done"] * 5 + [
        "failed"
    ]
    drawn = httpx2.get(f"{embedded.url}/tagging/jobs/{job_id}/images/0", params={"size": 256})
    assert drawn.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(drawn.content)).size) == 256
    assert httpx2.get(f"{embedded.url}/tagging/jobs/{job_id}/images/5").status_code == 404
    assert httpx2.delete(f"{embedded.url}/tagging/jobs/{job_id}").status_code == 200
    missing = httpx2.get(f"{embedded.url}/tagging/jobs/{job_id}")
    assert missing.status_code == 404 and missing.json()["body"]["error"]["code"] == "NOT_FOUND"


def test_a_catalog_job_stores_its_images_as_one_product(embedded: Server, unseen: list[Sample]) -> None:
    url = embedded.url
    named = [(s.image_path.name, s.image_path.read_bytes()) for s in unseen[10:13]]
    files = _files([*named, ("broken.jpg", b"not an image")])
    lone = httpx2.post(f"{url}/tagging/jobs", files=files, data={"product_id": "SKU-J"}, timeout=60)
    assert lone.status_code == 422 and "catalog=true" in lone.json()["resultMessage"]
    form = {"catalog": "true", "product_id": "SKU-J", "product": json.dumps({"season": "spring"})}
    created = httpx2.post(f"{url}/tagging/jobs", files=files, data=form, timeout=60)
    assert created.status_code == 202, created.text
    job_id = created.json()["body"]["id"]
    job = _wait(url, job_id, lambda j: j["status"] == "done")
    assert job["counts"] == {"total": 4, "done": 3, "failed": 1, "pending": 0}
    results = httpx2.get(f"{url}/tagging/jobs/{job_id}/results").json()["body"]["results"]
    stored = [r["catalog"] for r in results[:3]]
    assert [s["status"] for s in stored] == ["added"] * 3 and "catalog" not in results[3]
    assert not any("embedding" in item for r in results[:3] for item in r["items"])  # not asked for
    listed = httpx2.get(f"{url}/catalog/images", params={"product_id": "SKU-J"}).json()["body"]["images"]
    assert sorted(i["id"] for i in listed) == sorted(s["image_id"] for s in stored)
    assert {(i["file_name"], i["product"]["season"]) for i in listed} == {(n, "spring") for n, _ in named}
    # Sent again: the catalog already holds the bytes; the product's new fields are set on them.
    form["product"] = json.dumps({"season": "summer"})
    again = httpx2.post(f"{url}/tagging/jobs", files=_files(named[:1]), data=form, timeout=60).json()["body"]
    _wait(url, again["id"], lambda j: j["status"] == "done")
    result = httpx2.get(f"{url}/tagging/jobs/{again['id']}/results").json()["body"]["results"][0]
    assert result["catalog"] == {"status": "exists", "image_id": stored[0]["image_id"]}
    image = httpx2.get(f"{url}/catalog/images/{stored[0]['image_id']}").json()["body"]
    assert image["product"] == {"season": "summer"}
    assert httpx2.delete(f"{url}/catalog/images", params={"product_id": "SKU-J"}).status_code == 200


def _bulk_images(unseen: list[Sample]) -> list[tuple[str, bytes]]:
    """200 distinct pictures: each unseen image at five sizes (small, so the job runs in seconds)."""
    named = []
    for k in range(BULK):
        sample = unseen[k % len(unseen)]
        pixels = decode_image(sample.image_path.read_bytes(), ImageLimits()).pixels
        width = 300 + 40 * (k // len(unseen))
        small = cv2.resize(
            pixels, (width, round(pixels.shape[0] * width / pixels.shape[1])), interpolation=cv2.INTER_AREA
        )
        named.append((f"bulk_{k:03d}.jpg", encode_jpeg(small)))
    return named


def test_a_done_job_is_posted_to_its_callback(
    embedded: Server, unseen: list[Sample], receiver: tuple[str, list]
) -> None:
    url, received = receiver
    files = _files([(s.image_path.name, s.image_path.read_bytes()) for s in unseen[:2]])
    hooked = httpx2.post(f"{embedded.url}/tagging/jobs", files=files, data={"callback_url": f"{url}/hook"})
    broken = httpx2.post(f"{embedded.url}/tagging/jobs", files=files, data={"callback_url": f"{url}/broken"})
    hooked_id, broken_id = hooked.json()["body"]["id"], broken.json()["body"]["id"]
    assert hooked.json()["body"]["callback"] == {"url": f"{url}/hook", "status": "waiting"}
    job = _wait(embedded.url, hooked_id, lambda j: j["callback"]["status"] == "delivered", timeout=120)
    assert job["callback"]["attempts"] == 1 and job["callback"]["http_status"] == 204
    posted = [body for path, body in received if path == "/hook"]
    assert len(posted) == 1 and posted[0]["resultCode"] == 200 and posted[0]["body"]["event"] == "job.done"
    sent = posted[0]["body"]["job"]
    assert sent["id"] == hooked_id and sent["status"] == "done" and sent["counts"]["done"] == 2
    # A job whose every input failed on arrival is refused as /tagging refuses it: no job, no callback.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("notes.md", "not an image")
    unreadable = [("files", ("notes.zip", archive.getvalue(), "application/zip"))]
    jobs_before = httpx2.get(f"{embedded.url}/tagging/jobs").json()["body"]["total"]
    at_once = httpx2.post(
        f"{embedded.url}/tagging/jobs", files=unreadable, data={"callback_url": f"{url}/hook"}
    )
    assert (
        at_once.status_code == 415 and at_once.json()["body"]["error"]["code"] == "UNSUPPORTED_ARCHIVE_ENTRY"
    )
    assert httpx2.get(f"{embedded.url}/tagging/jobs").json()["body"]["total"] == jobs_before
    assert [body["body"]["job"]["id"] for path, body in received if path == "/hook"] == [hooked_id]
    # A receiver that keeps failing is tried three times; the job says so.
    failed = _wait(embedded.url, broken_id, lambda j: j["callback"]["status"] == "failed", timeout=120)
    assert failed["callback"]["attempts"] == 3 and failed["callback"]["http_status"] == 500
    assert sum(path == "/broken" for path, _ in received) == 3
    # Only hosts the settings name; the refused job is not created.
    before = httpx2.get(f"{embedded.url}/tagging/jobs").json()["body"]["total"]
    elsewhere = httpx2.post(
        f"{embedded.url}/tagging/jobs", files=files, data={"callback_url": "http://callback.example/hook"}
    )
    assert elsewhere.status_code == 403 and elsewhere.json()["body"]["error"]["code"] == "HOST_NOT_ALLOWED"
    assert "KFASHION_GATEWAY__CALLBACK_HOSTS" in elsewhere.json()["resultMessage"]
    assert httpx2.get(f"{embedded.url}/tagging/jobs").json()["body"]["total"] == before


def test_a_killed_worker_resumes_without_losing_or_repeating(tmp_path: Path, unseen: list[Sample]) -> None:
    env = gateway_env(tmp_path / "data")
    server = Server([], env, log=tmp_path / "first.log").start()
    named = _bulk_images(unseen)
    try:
        job_id = httpx2.post(f"{server.url}/tagging/jobs", files=_files(named), timeout=120).json()["body"][
            "id"
        ]
        _wait(server.url, job_id, lambda j: j["counts"]["done"] >= BULK // 2)
        before = httpx2.get(f"{server.url}/tagging/jobs/{job_id}/results").json()["body"]["results"]
        server.kill(signal.SIGKILL)
    finally:
        server.kill()
    finished_before = {r["position"]: r for r in before if r["status"] == "done"}
    assert BULK // 2 <= len(finished_before) < BULK, "the worker must be killed half-way"

    restarted = Server([], env, log=tmp_path / "second.log").start()
    try:
        job = _wait(restarted.url, job_id, lambda j: j["status"] == "done")
        after = httpx2.get(f"{restarted.url}/tagging/jobs/{job_id}/results").json()["body"]["results"]
    finally:
        restarted.kill()
    assert job["counts"] == {"total": BULK, "done": BULK, "failed": 0, "pending": 0}
    assert len(after) == BULK
    assert [r["position"] for r in after] == list(range(BULK))
    assert [r["file"] for r in after] == [name for name, _ in named]
    for position, result in finished_before.items():  # done before the kill: kept, not redone
        assert after[position] == result
    assert np.mean([len(r["items"]) > 0 for r in after]) > 0.9


def _tagged_by(url: str) -> int:
    metrics = httpx2.get(f"{url}/metrics", timeout=10).text
    return int(float(next(line.split()[1] for line in metrics.splitlines() if line.startswith(JOB_METRIC))))


JOB_METRIC = "kfashion_job_images_tagged_total"
SHARED_JOB = 40


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_gateways_share_one_queue(
    database: str, tmp_path: Path, unseen: list[Sample], request: pytest.FixtureRequest
) -> None:
    """Two gateway processes over one database (and one file store): each waiting image is claimed and
    tagged by one of them, so the job ends with one result per image and the two processes' counts of
    images tagged add up to the job's size."""
    from tests.databases import database_url

    env = gateway_env(tmp_path / "data") | {"KFASHION_DATABASE": database_url(database, tmp_path, request)}
    first = Server([], env, log=tmp_path / "first.log").start()
    second = Server([], env, log=tmp_path / "second.log").start()
    try:
        named = _bulk_images(unseen)[:SHARED_JOB]
        job_id = httpx2.post(f"{first.url}/tagging/jobs", files=_files(named), timeout=120).json()["body"][
            "id"
        ]
        job = _wait(second.url, job_id, lambda j: j["status"] == "done")
        counts = [_tagged_by(server.url) for server in (first, second)]
    finally:
        first.kill()
        second.kill()
    assert job["counts"] == {"total": SHARED_JOB, "done": SHARED_JOB, "failed": 0, "pending": 0}
    assert sum(counts) == SHARED_JOB and min(counts) > 0, counts
