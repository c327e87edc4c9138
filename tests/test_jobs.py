"""/tagging/jobs: large inputs in the background, downloads, and surviving a killed worker."""

from __future__ import annotations

import io
import signal
import time
import zipfile
from pathlib import Path

import cv2
import httpx2
import numpy as np
from openpyxl import load_workbook
from PIL import Image

from shared.imaging import decode_image, encode_jpeg
from shared.settings import ImageLimits
from tests.servers import Server, gateway_env
from training.data import Sample

BULK = 200


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
