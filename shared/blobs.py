"""Where stored files (catalog images, job inputs, index files) live: one interface, two implementations.
A local folder (the embedded default) or S3-compatible object storage (MinIO, S3) through `minio`."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Protocol

from shared.errors import ApiError, ErrorCode
from shared.settings import StorageSettings


def check_key(key: str) -> str:
    """Keys are relative POSIX paths without '..' (they become file paths and object names)."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or key.endswith("/") or "\\" in key:
        raise ValueError(f"invalid blob key {key!r}")
    return str(path)


def _missing(key: str) -> ApiError:
    return ApiError(ErrorCode.NOT_FOUND, f"no stored file {key}", {"key": key})


class BlobStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str = "") -> Iterator[str]: ...


class LocalBlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        # Written beside the target and renamed: a reader never sees half a file, a crash leaves none.
        for attempt in range(3):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
                break
            except FileNotFoundError:  # a delete removed the folder, empty, in between
                if attempt == 2:
                    raise
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise _missing(key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Folders left empty go too (a deleted job's); one still holding a file, or a new one, stays.
        for folder in path.parents:
            if folder == self.root or self.root not in folder.parents:
                break
            try:
                folder.rmdir()
            except OSError:
                break

    def keys(self, prefix: str = "") -> Iterator[str]:
        # Only the prefix's folder is walked: a job's few inputs are not looked for among every image.
        folder = prefix.rpartition("/")[0]
        start = self._path(folder) if folder else self.root
        for path in sorted(start.rglob("*")):
            if path.is_file() and not path.name.startswith(".partial-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key


class S3BlobStore:
    def __init__(self, settings: StorageSettings):
        from minio import Minio

        self.bucket = settings.bucket
        self.prefix = settings.prefix.strip("/")
        self.client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
        )
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

    def _name(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(self.bucket, self._name(key), io.BytesIO(data), len(data), content_type)

    def get(self, key: str) -> bytes:
        from minio.error import S3Error

        try:
            response = self.client.get_object(self.bucket, self._name(key))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise _missing(key) from exc
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self.client.stat_object(self.bucket, self._name(key))
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, self._name(key))

    def keys(self, prefix: str = "") -> Iterator[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        for item in self.client.list_objects(self.bucket, prefix=start + prefix, recursive=True):
            yield item.object_name[len(start) :]


def create_blob_store(settings: StorageSettings, data_dir: Path) -> BlobStore:
    if settings.backend == "s3":
        return S3BlobStore(settings)
    return LocalBlobStore(data_dir / "blobs")
