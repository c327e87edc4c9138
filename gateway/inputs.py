"""What a /tagging request brings: uploaded images, zip archives of images, and image URLs from allowed
hosts. Each becomes a Source; a source that cannot be read carries its error and fails alone."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import httpx2
from fastapi import UploadFile

from shared.errors import ApiError, ErrorCode
from shared.settings import GatewaySettings, ImageLimits, Settings

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".mpo"})
ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class Source:
    name: str
    data: bytes | None = None
    url: str | None = None
    error: ApiError | None = None


def is_archive(name: str, data: bytes) -> bool:
    return data.startswith(ZIP_MAGIC) or (name.lower().endswith(".zip") and bool(data))


def expand_archive(name: str, data: bytes, limits: ImageLimits, max_entries: int) -> list[Source]:
    """The image entries of a zip archive as sources; other entries fail alone with their reason."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return [
            Source(name, error=ApiError(ErrorCode.CORRUPT_ARCHIVE, f"{name}: not a readable zip archive"))
        ]
    entries = [
        info
        for info in archive.infolist()
        if not info.is_dir()
        and not info.filename.startswith("__MACOSX/")
        and not PurePosixPath(info.filename).name.startswith(".")
    ]
    if len(entries) > max_entries:
        raise ApiError(
            ErrorCode.TOO_MANY_FILES,
            f"{name}: {len(entries)} entries is over the limit of {max_entries}",
            {"file": name, "entries": len(entries), "max_entries": max_entries},
        )
    if not entries:
        return [Source(name, error=ApiError(ErrorCode.EMPTY_FILE, f"{name}: the archive holds no files"))]
    sources = []
    for info in entries:
        entry = f"{name}/{info.filename}"
        suffix = PurePosixPath(info.filename).suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            error = ApiError(
                ErrorCode.UNSUPPORTED_ARCHIVE_ENTRY,
                f"{entry}: not an image file ({suffix or 'no extension'})",
                {"file": entry, "accepted": sorted(IMAGE_SUFFIXES)},
            )
            sources.append(Source(entry, error=error))
        elif info.file_size > limits.max_bytes:
            error = ApiError(
                ErrorCode.FILE_TOO_LARGE,
                f"{entry}: {info.file_size} bytes is over the limit of {limits.max_bytes}",
                {"file": entry, "bytes": info.file_size, "max_bytes": limits.max_bytes},
            )
            sources.append(Source(entry, error=error))
        else:
            try:
                sources.append(Source(entry, archive.read(info)))
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                error = ApiError(ErrorCode.CORRUPT_ARCHIVE, f"{entry}: cannot be extracted ({exc})")
                sources.append(Source(entry, error=error))
    return sources


def upload_sources(uploads: list[tuple[str, bytes]], limits: ImageLimits, max_entries: int) -> list[Source]:
    sources: list[Source] = []
    for name, data in uploads:
        if is_archive(name, data):
            sources.extend(expand_archive(name, data, limits, max_entries))
        else:
            sources.append(Source(name, data))
    return sources


def url_sources(urls: list[str], settings: GatewaySettings) -> list[Source]:
    """URL sources, after checking every URL against the allow-list: one host not on it rejects the
    request before anything is fetched or written."""
    allowed = {host.lower() for host in settings.url_hosts}
    sources = []
    for url in urls:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise ApiError(ErrorCode.VALIDATION_FAILED, f"{url!r} is not an http(s) URL", {"url": url})
        if host not in allowed:
            raise ApiError(
                ErrorCode.HOST_NOT_ALLOWED,
                f"{host} is not an allowed host for image URLs (KFASHION_GATEWAY__URL_HOSTS)",
                {"url": url, "host": host},
            )
        name = PurePosixPath(parts.path).name or host
        sources.append(Source(name, url=url.strip()))
    return sources


async def fetch(client: httpx2.AsyncClient, url: str, limits: ImageLimits) -> bytes:
    """The bytes at `url`, at most max_bytes; redirects are not followed (they could leave the allow-list)."""
    try:
        async with client.stream("GET", url, follow_redirects=False) as response:
            if response.status_code != 200:
                raise ApiError(
                    ErrorCode.URL_FETCH_FAILED,
                    f"{url}: the host answered HTTP {response.status_code}",
                    {"url": url, "status": response.status_code},
                )
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limits.max_bytes:
                    raise ApiError(
                        ErrorCode.FILE_TOO_LARGE,
                        f"{url}: more than {limits.max_bytes} bytes",
                        {"url": url, "max_bytes": limits.max_bytes},
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx2.HTTPError as exc:
        raise ApiError(
            ErrorCode.URL_FETCH_FAILED, f"{url}: {type(exc).__name__}: {exc}", {"url": url}
        ) from exc


async def collect_sources(
    files: list[UploadFile] | None,
    urls: list[str] | None,
    settings: Settings,
    limit: int,
    over_limit_hint: str = "",
) -> list[Source]:
    """Every source of a request, checked before anything is fetched, tagged or written. Over `limit`
    images, the error ends with `over_limit_hint`: where the caller can send that many instead."""
    url_list = [u for u in (urls or []) if u.strip()]
    sources = url_sources(url_list, settings.gateway)
    uploads = [(f.filename or f"file{i}", await f.read()) for i, f in enumerate(files or [])]
    sources = upload_sources(uploads, settings.image, settings.gateway.archive_max_entries) + sources
    if not sources:
        raise ApiError(
            ErrorCode.EMPTY_REQUEST,
            "no images: send files (multipart field 'files', repeated; zip archives too) or 'urls'",
        )
    if len(sources) > limit:
        raise ApiError(
            ErrorCode.TOO_MANY_FILES,
            f"{len(sources)} images is over the limit of {limit} for this request"
            + (f"; {over_limit_hint}" if over_limit_hint else ""),
            {"images": len(sources), "limit": limit},
        )
    return sources
