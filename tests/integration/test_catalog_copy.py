"""`kfashion catalog copy`: the embedded default's catalog (SQLite, local disk) moved to the scale-out's
(the real PostgreSQL, an S3-protocol server) with every id, file, product, collection and saved index, and
its tagging jobs with their results and waiting inputs; a copy stopped part-way taken up again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.inputs import Source
from gateway.jobs import JobStore, copy_jobs
from services.search import copy as catalog_copy
from services.search.catalog import CatalogStore
from services.search.collections import CollectionStore
from services.search.service import CatalogSearch
from shared.blobs import BlobStore, create_blob_store
from shared.db import database_engine
from shared.errors import ApiError, ErrorCode
from shared.settings import StorageSettings
from tests.catalog_data import VERSIONS, item, look
from tests.databases import database_url


def _open(engine: object, blobs: BlobStore) -> CatalogSearch:
    search = CatalogSearch(CatalogStore(engine, blobs), blobs, VERSIONS, None, 0.05)
    search.open()
    return search


def _embedded_catalog(folder: Path) -> tuple[object, BlobStore, list[int]]:
    """Six images (one with a product), a collection, and the last image deleted: its id is not to be
    handed out again by the copy."""
    engine = database_engine(f"sqlite:///{folder / 'kfashion.db'}")
    blobs = create_blob_store(StorageSettings(), folder)
    search = _open(engine, blobs)
    ids = []
    for n in range(6):
        tagged = look(
            "모던",
            [item("top", "셔츠", "블랙", [], 2 * n), item("bottom", "스커트", "화이트", [], 2 * n + 1)],
        )
        product = {"product_id": "SKU-1", "product": {"price": 39000}} if n == 1 else None
        ids.append(search.add(f"{n}.jpg", f"image {n}".encode(), tagged, product)[0])
    CollectionStore(engine).create("picks", "for the copy")
    CollectionStore(engine).add("picks", [{"image_id": ids[1], "note": "kept"}])
    search.delete(ids[-1])
    search.close()  # saves the indexes
    return engine, blobs, ids[:-1]


def _jobs(engine: object, blobs: BlobStore) -> tuple[JobStore, str, str]:
    """A job with one image tagged and one that failed on arrival, and a newer one still waiting, with a
    callback to make."""
    store = JobStore(engine, blobs)
    bad = ApiError(ErrorCode.UNSUPPORTED_IMAGE_FORMAT, "not an image")
    done = store.create([Source("a.jpg", b"image a"), Source("b.txt", error=bad)], {"format": "json"})
    store.finish(done, 0, {"file": "a.jpg", "status": "done", "items": [{"region": "top"}]})
    waiting = store.create([Source("c.jpg", b"image c")], {"catalog": True}, "http://shop.example/hook")
    return store, done, waiting


def test_tagging_jobs_move_with_their_results_and_waiting_inputs(
    tmp_path: Path, request: pytest.FixtureRequest, s3_endpoint: str
) -> None:
    source = database_engine(f"sqlite:///{tmp_path / 'kfashion.db'}")
    here, done, waiting = _jobs(source, create_blob_store(StorageSettings(), tmp_path))
    target = database_engine(database_url("postgresql", tmp_path, request))
    storage = StorageSettings(
        backend="s3", endpoint=s3_endpoint, bucket="kfashion-copy", prefix=f"jobs-{tmp_path.name}",
        access_key="test", secret_key="test", secure=False, region="us-east-1",
    )  # fmt: skip
    there = JobStore(target, create_blob_store(storage, tmp_path))

    def stop_after_a_job(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_jobs(source, here.blobs, target, there.blobs, stop_after_a_job)
    assert there.newest(0, 10)[0] == 1  # the oldest job, whole
    heard: list[int] = []
    assert copy_jobs(source, here.blobs, target, there.blobs, heard.append) == 1 and sum(heard) == 2
    for job_id in (done, waiting):
        assert there.get(job_id) == here.get(job_id)
        assert there.results(job_id) == here.results(job_id)
    assert there.get(waiting)["callback"]["status"] == "waiting"
    # The target's worker finds the waiting image and its bytes.
    assert [(row["job_id"], row["position"]) for row in there.pending(10, set())] == [(waiting, 0)]
    assert there.input_bytes(waiting, 0) == b"image c"
    assert copy_jobs(source, here.blobs, target, there.blobs) == 0  # nothing twice


def test_a_catalog_moves_to_postgresql_and_s3_with_its_ids(
    tmp_path: Path, request: pytest.FixtureRequest, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, source_blobs, kept = _embedded_catalog(tmp_path / "embedded")
    target = database_engine(database_url("postgresql", tmp_path, request))
    storage = StorageSettings(
        backend="s3", endpoint=s3_endpoint, bucket="kfashion-copy", prefix=f"run-{tmp_path.name}",
        access_key="test", secret_key="test", secure=False, region="us-east-1",
    )  # fmt: skip
    target_blobs = create_blob_store(storage, tmp_path)

    # Stopped after its first page of two images, then run again: it goes on where it stopped.
    monkeypatch.setattr(catalog_copy, "PAGE", 2)
    heard: list[int] = []

    def stop_after_a_page(n: int) -> None:
        heard.append(n)
        if sum(heard) >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        catalog_copy.copy_catalog(source, source_blobs, target, target_blobs, stop_after_a_page)
    assert CatalogStore(target, target_blobs).list_images()[0] == 2
    heard.clear()
    counts = catalog_copy.copy_catalog(source, source_blobs, target, target_blobs, heard.append)
    assert counts == {"images": 3, "items": 6, "collections": 1} and sum(heard) == 5

    here, there = CatalogStore(source, source_blobs), CatalogStore(target, target_blobs)
    for image_id in kept:
        assert there.get(image_id) == here.get(image_id)
        assert there.image_bytes(image_id) == here.image_bytes(image_id)
    assert there.get(kept[1])["product"] == {"price": 39000}
    assert CollectionStore(target).get("picks") == CollectionStore(source).get("picks")
    # Run again: nothing is copied twice.
    assert catalog_copy.copy_catalog(source, source_blobs, target, target_blobs) == {
        "images": 0, "items": 0, "collections": 0,
    }  # fmt: skip
    moved = _open(target, target_blobs)
    assert moved.rebuilt == {}  # the saved indexes came along and fit the copied rows
    original = _open(source, source_blobs)
    _, _, vectors = here.embeddings()
    assert [h.id for h in moved.similar_items(vectors[3], 4)] == [
        h.id for h in original.similar_items(vectors[3], 4)
    ]
    # The deleted sixth image's id is not handed out again, nor its items'.
    new_id, _ = moved.add("new.jpg", b"new", look("모던", [item("top", "셔츠", "블랙", [], 99)]))
    assert new_id == kept[-1] + 2
    assert there.get(new_id)["items"][0]["id"] == 13
    moved.close()
    original.close()

    # Once the target has its own images, or into another catalog: refused, nothing written.
    with pytest.raises(catalog_copy.CopyRefused):
        catalog_copy.copy_catalog(source, source_blobs, target, target_blobs)
    other = database_engine(f"sqlite:///{tmp_path / 'other.db'}")
    other_blobs = create_blob_store(StorageSettings(), tmp_path / "other")
    CatalogStore(other, other_blobs).add("x.jpg", b"another shop", look("모던", []), VERSIONS)
    with pytest.raises(catalog_copy.CopyRefused):
        catalog_copy.copy_catalog(other, other_blobs, target, target_blobs)


def test_the_copy_command_reads_its_target_from_an_env_file(tmp_path: Path) -> None:
    engine, blobs, _ = _embedded_catalog(tmp_path / "embedded")
    _, _, waiting = _jobs(engine, blobs)
    target_dir = tmp_path / "scaled"
    env_file = tmp_path / "target.env"
    env_file.write_text(
        f"KFASHION_DATA_DIR={target_dir}\nKFASHION_DATABASE=sqlite:///{target_dir}/moved.db\n"
    )
    command = [sys.executable, "-m", "kfashion", "catalog", "copy", "--to", str(env_file)]
    copied = subprocess.run(
        [*command, "--data-dir", str(tmp_path / "embedded")], capture_output=True, text=True
    )
    assert copied.returncode == 0, copied.stderr
    assert json.loads(copied.stdout) == {"images": 5, "items": 10, "collections": 1, "jobs": 2}
    moved_engine = database_engine(f"sqlite:///{target_dir}/moved.db")
    moved = CatalogStore(moved_engine, create_blob_store(StorageSettings(), target_dir))
    assert moved.list_images()[0] == 5 and moved.image_bytes(2) == b"image 1"
    assert JobStore(moved_engine, moved.blobs).input_bytes(waiting, 0) == b"image c"
    env_file.write_text(f"KFASHION_DATA_DIR={tmp_path / 'embedded'}\n")
    itself = subprocess.run(
        [*command, "--data-dir", str(tmp_path / "embedded")], capture_output=True, text=True
    )
    assert itself.returncode == 2 and "the source itself" in itself.stderr
