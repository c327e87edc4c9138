"""Folder links (`folders`): a web server's index page of a folder, and an S3 bucket listing, tagged image
by image, against a real HTTP server and a real S3-protocol server on loopback and the embedded gateway."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from shared.blobs import S3BlobStore
from shared.settings import StorageSettings
from tests.conftest import serve_folder
from tests.servers import Server
from training.data import Sample

SUBFOLDER = "레트로"  # K-Fashion's folders are named in Korean: the index page's links are percent-encoded


@pytest.fixture(scope="module")
def shop_host(
    tmp_path_factory: pytest.TempPathFactory, unseen: list[Sample]
) -> Iterator[tuple[str, list[str]]]:
    """shop/: two images, one in a subfolder beside its label JSON, a damaged image and a text file; next to
    shop/: an image outside it, a folder holding only a text file, and a folder of 17 images."""
    root = tmp_path_factory.mktemp("folders")
    (root / "shop" / SUBFOLDER).mkdir(parents=True)
    (root / "shop" / "a.jpg").write_bytes(unseen[0].image_path.read_bytes())
    (root / "shop" / SUBFOLDER / "b.jpg").write_bytes(unseen[1].image_path.read_bytes())
    (root / "shop" / SUBFOLDER / "b.json").write_text("{}")
    (root / "shop" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "shop" / "prices.txt").write_text("not an image")
    (root / "outside.jpg").write_bytes(unseen[2].image_path.read_bytes())
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("no images here")
    (root / "many").mkdir()
    for k in range(17):  # the embedded test server takes 16 images per request
        (root / "many" / f"{k:02d}.jpg").write_bytes(unseen[3].image_path.read_bytes())
    yield from serve_folder(root)


def _tag(server: Server, folders: list[str], path: str = "/tagging") -> httpx2.Response:
    return httpx2.post(f"{server.url}{path}", data={"folders": folders}, timeout=120)


def test_an_index_page_is_tagged_image_by_image(embedded: Server, shop_host: tuple[str, list[str]]) -> None:
    host, hits = shop_host
    response = _tag(embedded, [f"{host}/shop/"])
    assert response.status_code == 200, response.text
    results = {r["file"]: r for r in response.json()["body"]["results"]}
    assert set(results) == {"a.jpg", "broken.jpg", f"{SUBFOLDER}/b.jpg"}
    assert results["a.jpg"]["status"] == "done" and results["a.jpg"]["items"]
    assert results[f"{SUBFOLDER}/b.jpg"]["status"] == "done"
    assert results["broken.jpg"]["error"]["code"] in ("CORRUPT_IMAGE", "UNSUPPORTED_IMAGE_FORMAT")  # alone
    assert not [hit for hit in hits if hit.endswith((".txt", ".json", "/outside.jpg"))]  # skipped, not left
    # Without the trailing slash the link still names the folder; a Korean folder name may come unencoded.
    again = _tag(embedded, [f"{host}/shop"]).json()["body"]["results"]
    assert sorted(r["file"] for r in again) == sorted(results)
    korean = _tag(embedded, [f"{host}/shop/{SUBFOLDER}/"]).json()["body"]["results"]
    assert [r["file"] for r in korean] == ["b.jpg"] and korean[0]["status"] == "done"


def test_folder_links_that_cannot_be_tagged(embedded: Server, shop_host: tuple[str, list[str]]) -> None:
    host, hits = shop_host
    empty = _tag(embedded, [f"{host}/notes/"])
    assert empty.status_code == 422 and empty.json()["body"]["error"]["code"] == "EMPTY_FOLDER"
    missing = _tag(embedded, [f"{host}/no-such-folder/"])
    assert missing.status_code == 502 and missing.json()["body"]["error"]["code"] == "URL_FETCH_FAILED"
    asked = len(hits)
    too_many = _tag(embedded, [f"{host}/many/"])
    assert too_many.status_code == 413 and too_many.json()["body"]["error"]["code"] == "TOO_MANY_FILES"
    assert "/tagging/jobs" in too_many.json()["resultMessage"]
    assert len(hits) == asked + 1  # the listing only: no image was fetched
    elsewhere = _tag(embedded, [f"{host}/shop/", "http://localhost:9/shop/"])
    assert elsewhere.status_code == 403 and elsewhere.json()["body"]["error"]["code"] == "HOST_NOT_ALLOWED"
    assert len(hits) == asked + 1  # refused before the first listing was read


def test_a_job_takes_a_folder_link(embedded: Server, shop_host: tuple[str, list[str]]) -> None:
    host, _ = shop_host
    created = _tag(embedded, [f"{host}/many/"], path="/tagging/jobs")
    assert created.status_code == 202, created.text
    job = created.json()["body"]
    assert job["counts"]["total"] == 17
    deadline = time.monotonic() + 120
    while job["status"] != "done" and time.monotonic() < deadline:
        time.sleep(0.2)
        job = httpx2.get(f"{embedded.url}/tagging/jobs/{job['id']}", timeout=10).json()["body"]
    assert job["counts"] == {"total": 17, "done": 17, "failed": 0, "pending": 0}
    # The fetched images are kept as the job's inputs: they download drawn, as uploads do.
    drawn = httpx2.get(f"{embedded.url}/tagging/jobs/{job['id']}/images", params={"size": 128}, timeout=60)
    with zipfile.ZipFile(io.BytesIO(drawn.content)) as bundle:
        assert len(bundle.namelist()) == 17


def test_an_s3_bucket_listing_is_tagged(embedded: Server, s3_endpoint: str, unseen: list[Sample]) -> None:
    settings = StorageSettings(
        backend="s3", endpoint=s3_endpoint, bucket="kfashion-folders", prefix="shop",
        access_key="test", secret_key="test", secure=False, region="us-east-1",
    )  # fmt: skip
    store = S3BlobStore(settings)
    store.put("a.jpg", unseen[0].image_path.read_bytes(), "image/jpeg")
    store.put(f"{SUBFOLDER}/b.jpg", unseen[1].image_path.read_bytes(), "image/jpeg")
    store.put(f"{SUBFOLDER}/b.json", b"{}", "application/json")
    # One key per page: the listing's continuation is followed.
    listing = f"http://{s3_endpoint}/kfashion-folders?list-type=2&prefix=shop/&max-keys=1"
    private = _tag(embedded, [listing])  # the bucket lists, its objects refuse: every input failed
    error = private.json()["body"]["error"]
    assert private.status_code == 502 and error["code"] == "URL_FETCH_FAILED"
    assert [f["error"]["code"] for f in error["details"]["failures"]] == ["URL_FETCH_FAILED"] * 2
    # A shop makes such a bucket readable with a policy, as on MinIO and S3.
    readable = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["*"]},
                "Action": ["s3:GetObject"],
                "Resource": ["arn:aws:s3:::kfashion-folders/*"],
            }
        ],
    }
    store.client.set_bucket_policy("kfashion-folders", json.dumps(readable))
    first_version = f"http://{s3_endpoint}/kfashion-folders/?prefix=shop/&max-keys=1"  # pages by marker
    for link in (listing, first_version):
        response = _tag(embedded, [link])
        assert response.status_code == 200, response.text
        results = response.json()["body"]["results"]
        assert sorted(r["file"] for r in results) == ["a.jpg", f"{SUBFOLDER}/b.jpg"]
        assert all(r["status"] == "done" and r["items"] for r in results)


def test_catalog_add_takes_a_folder_link(shop_host: tuple[str, list[str]], tmp_path: Path) -> None:
    """`kfashion catalog add LINK`: the command's own choice of host (no allow-list); 17 copies of one
    picture are stored once; the damaged image of shop/ fails alone."""
    host, _ = shop_host
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFASHION_")}

    def add(link: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "kfashion", "catalog", "add", link, "--data-dir", str(tmp_path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)

    many = add(f"{host}/many/")
    assert many.returncode == 0, many.stderr
    assert json.loads(many.stdout) == {"images": 17, "added": 1, "exists": 16, "failed": 0}
    shop = add(f"{host}/shop/")
    assert shop.returncode == 1 and "broken.jpg" in shop.stderr
    assert json.loads(shop.stdout) == {"images": 3, "added": 2, "exists": 0, "failed": 1}
    empty = add(f"{host}/notes/")
    assert empty.returncode == 1 and "lists no images" in empty.stderr
