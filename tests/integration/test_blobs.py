"""Stored files on a local folder and on a real S3-protocol server (moto's, started on loopback here; it
does not check credentials, so this tests the protocol, not authentication)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.blobs import BlobStore, LocalBlobStore, S3BlobStore, create_blob_store
from shared.errors import ApiError, ErrorCode
from shared.settings import StorageSettings


def _s3(endpoint: str, prefix: str) -> StorageSettings:
    return StorageSettings(
        backend="s3", endpoint=endpoint, bucket="kfashion-test", prefix=prefix,
        access_key="test", secret_key="test", secure=False, region="us-east-1",
    )  # fmt: skip


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return create_blob_store(StorageSettings(), tmp_path)
    return create_blob_store(_s3(request.getfixturevalue("s3_endpoint"), f"run-{tmp_path.name}"), tmp_path)


def test_put_get_replace_list_delete(store: BlobStore) -> None:
    assert isinstance(store, LocalBlobStore | S3BlobStore)
    store.put("catalog/ab/abcd.jpg", b"\xff\xd8 image", "image/jpeg")
    store.put("jobs/1/000000", b"input")
    assert store.get("catalog/ab/abcd.jpg") == b"\xff\xd8 image"
    store.put("jobs/1/000000", b"replaced")
    assert store.get("jobs/1/000000") == b"replaced"
    assert store.exists("jobs/1/000000") and not store.exists("jobs/1/000001")
    assert sorted(store.keys()) == ["catalog/ab/abcd.jpg", "jobs/1/000000"]
    assert list(store.keys("jobs/")) == ["jobs/1/000000"]
    # A prefix is a string prefix, not only a folder, and a missing folder lists nothing.
    assert list(store.keys("catalog/ab/ab")) == ["catalog/ab/abcd.jpg"] and list(store.keys("jobs/10")) == []
    assert list(store.keys("jobs/2/")) == [] and list(store.keys("cat")) == ["catalog/ab/abcd.jpg"]
    store.delete("jobs/1/000000")
    assert not store.exists("jobs/1/000000") and list(store.keys("jobs/")) == []
    with pytest.raises(ApiError) as raised:
        store.get("jobs/1/000000")
    assert raised.value.code == ErrorCode.NOT_FOUND


@pytest.mark.parametrize("key", ["", "/etc/passwd", "a/../../b", "dir/", "a\\b"])
def test_keys_cannot_leave_the_store(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, b"x")


def test_prefixes_share_a_bucket(s3_endpoint: str) -> None:
    one = S3BlobStore(_s3(s3_endpoint, "tenant-one"))
    two = S3BlobStore(_s3(s3_endpoint, "tenant-two"))
    one.put("a.jpg", b"1")
    assert not two.exists("a.jpg") and list(two.keys()) == []
    assert list(one.keys()) == ["a.jpg"]


def test_folders_left_empty_go_with_their_last_file(tmp_path: Path) -> None:
    """A deleted job's folder does not stay behind on the local disk; a folder still holding a file does."""
    store = LocalBlobStore(tmp_path / "blobs")
    store.put("jobs/abc/000000", b"one")
    store.put("jobs/abc/000001", b"two")
    store.put("jobs/def/000000", b"three")
    store.delete("jobs/abc/000000")
    assert (tmp_path / "blobs" / "jobs" / "abc").is_dir()
    store.delete("jobs/abc/000001")
    assert not (tmp_path / "blobs" / "jobs" / "abc").exists() and (tmp_path / "blobs" / "jobs").is_dir()
    store.delete("jobs/def/000000")
    assert not (tmp_path / "blobs" / "jobs").exists() and (tmp_path / "blobs").is_dir()
    store.put("jobs/abc/000000", b"again")  # a folder removed is made again
    assert store.get("jobs/abc/000000") == b"again"
