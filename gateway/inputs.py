"""What a /tagging request brings: uploaded images, zip archives of images, image URLs and folder links from
allowed hosts. Each image becomes a Source; a source that cannot be read carries its error and fails alone.

A folder link is the URL of a folder of images, tagged image by image as an archive's entries are. Two kinds
of listing are read:
- an HTML index page, what a web server shows for a folder (nginx's autoindex, Apache's mod_autoindex,
  `python -m http.server`): links to its files and subfolders;
- an S3 bucket listing (ListObjects XML, either version) of a bucket that allows listing, e.g.
  `http://host:9000/bucket?list-type=2&prefix=shop/` or `http://host:9000/bucket/?prefix=shop/` (MinIO, S3).
Subfolders are followed to FOLDER_DEPTH levels below the link. Links that leave the folder (a parent, another
host, the sort-order links of index pages) are not followed, and files that are not images are skipped: a
K-Fashion dataset folder holds a label JSON beside every image. Listings, like images, come only from allowed
hosts and never through redirects.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit
from xml.etree import ElementTree

import httpx2
from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from shared.errors import ApiError, ErrorCode
from shared.settings import GatewaySettings, ImageLimits, Settings

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".avif", ".bmp", ".tif", ".tiff", ".gif", ".mpo"}
)
ZIP_MAGIC = b"PK\x03\x04"

log = logging.getLogger("kfashion.gateway")


def is_image_name(path: str) -> bool:
    """Whether a file name or path has an accepted image suffix."""
    return PurePosixPath(path).suffix.lower() in IMAGE_SUFFIXES


@dataclass
class Source:
    name: str
    data: bytes | None = None
    url: str | None = None
    error: ApiError | None = None


def is_archive(name: str, data: bytes) -> bool:
    return data.startswith(ZIP_MAGIC) or (name.lower().endswith(".zip") and bool(data))


def expand_archive(
    name: str, data: bytes, limits: ImageLimits, max_entries: int, max_bytes: int
) -> list[Source]:
    """The image entries of a zip archive as sources; other entries fail alone with their reason. The
    counts and sizes are read from the archive's directory before anything is inflated (an entry never
    inflates past its declared size: zipfile stops there)."""
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
    declared = sum(info.file_size for info in entries)
    if declared > max_bytes:
        raise ApiError(
            ErrorCode.FILE_TOO_LARGE,
            f"{name}: {declared} bytes once unpacked is over the limit of {max_bytes} per archive",
            {"file": name, "bytes": declared, "max_bytes": max_bytes},
        )
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
        elif info.file_size > BOMB_MIN_BYTES and info.file_size > BOMB_RATIO * max(1, info.compress_size):
            # Photos are compressed already (JPEG, PNG, WEBP: barely smaller in a zip): an entry that
            # shrank a hundredfold is a decompression bomb, refused before a byte of it is inflated.
            error = ApiError(
                ErrorCode.UNSUPPORTED_ARCHIVE_ENTRY,
                f"{entry}: compressed {info.file_size // max(1, info.compress_size)}:1, far more than any "
                "photo; refused as a decompression bomb",
                {"file": entry, "bytes": info.file_size, "compressed_bytes": info.compress_size},
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


BOMB_RATIO = 100  # uncompressed / compressed size over which an archive entry is refused
BOMB_MIN_BYTES = 1024 * 1024  # entries smaller than this are let through whatever their ratio


def upload_sources(
    uploads: list[tuple[str, bytes]], limits: ImageLimits, max_entries: int, max_bytes: int
) -> list[Source]:
    sources: list[Source] = []
    for name, data in uploads:
        if is_archive(name, data):
            sources.extend(expand_archive(name, data, limits, max_entries, max_bytes))
        else:
            sources.append(Source(name, data))
    return sources


def checked_url(
    url: str, hosts: list[str], what: str = "image URLs and folder links", setting: str = "URL_HOSTS"
) -> str:
    """The URL, stripped, if it is http(s) on one of `hosts`; else the request is refused before anything
    is fetched or written. `what` and `setting` name the allow-list in the refusal."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ApiError(ErrorCode.VALIDATION_FAILED, f"{url!r} is not an http(s) URL", {"url": url})
    if host not in {allowed.lower() for allowed in hosts}:
        raise ApiError(
            ErrorCode.HOST_NOT_ALLOWED,
            f"{host} is not an allowed host for {what} (KFASHION_GATEWAY__{setting})",
            {"url": url, "host": host},
        )
    return url.strip()


def url_sources(urls: list[str], settings: GatewaySettings) -> list[Source]:
    """URL sources, after checking every URL against the allow-list (checked_url)."""
    sources = []
    for url in urls:
        checked = checked_url(url, settings.url_hosts)
        parts = urlsplit(checked)
        sources.append(Source(PurePosixPath(parts.path).name or parts.hostname or checked, url=checked))
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
        # The client hears what went wrong in plain words; the exception (an errno, an inner address)
        # says more about this server's network than a client should learn, so it goes to the log only.
        log.info("fetching %s failed: %s: %s", url, type(exc).__name__, exc)
        reason = (
            "the host did not answer in time"
            if isinstance(exc, httpx2.TimeoutException)
            else "the host could not be reached"
            if isinstance(exc, httpx2.ConnectError)
            else "the download failed"
        )
        raise ApiError(ErrorCode.URL_FETCH_FAILED, f"{url}: {reason}", {"url": url}) from exc


FOLDER_DEPTH = 3  # subfolder levels followed below a link: a K-Fashion tree is <style>/<work_no>/<image>
MAX_LISTINGS = 200  # listing pages read per folder link, so a link to a huge tree fails fast
S3_NAMESPACE = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class _Links(HTMLParser):
    """The href of every <a> of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def _s3_listing(text: str) -> ElementTree.Element | None:
    """The parsed XML when the page is an S3 bucket listing, else None."""
    if "ListBucketResult" not in text[:1000]:
        return None
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return None
    return root if root.tag.endswith("ListBucketResult") else None


async def folder_sources(
    client: httpx2.AsyncClient, link: str, settings: Settings, limit: int
) -> list[Source]:
    """The images a folder link lists, each a URL source named by its path below the folder. Stops reading
    once more than `limit` are found (the caller refuses the request then). A listing that cannot be read,
    or a folder without images, is one failed source, so the request's other inputs are still tagged."""
    base = urlsplit(checked_url(link, settings.gateway.url_hosts))
    if not base.path.endswith("/") and not base.query:
        base = base._replace(path=base.path + "/")  # "…/shop" is the folder shop/ (servers redirect there)
    images: list[Source] = []
    # Links are known by their unquoted path: index pages percent-encode them, a user may type either form.
    pending, seen, read = [(urlunsplit(base), 0)], {unquote(base.path)}, 0
    while pending and len(images) <= limit:
        url, depth = pending.pop(0)
        if read == MAX_LISTINGS:
            return [_failed(link, ErrorCode.TOO_MANY_FILES, f"more than {MAX_LISTINGS} listing pages")]
        read += 1
        try:
            text = (await fetch(client, url, settings.image)).decode("utf-8", errors="replace")
        except ApiError as error:
            images.append(Source(_name(url, base.path) or url, url=url, error=error))
            continue
        listing = _s3_listing(text)
        if listing is not None:
            found, next_page = _s3_images(listing, url)
            images.extend(found)
            if next_page:
                pending.append((next_page, depth))
            continue
        parser = _Links()
        parser.feed(text)
        for href in parser.hrefs:
            target = urljoin(url, href)
            parts = urlsplit(target)
            path = unquote(parts.path)
            inside = parts.netloc == base.netloc and path.startswith(unquote(base.path))
            if not inside or parts.query or path in seen:  # elsewhere, a sort-order link, or read already
                continue
            seen.add(path)
            if parts.path.endswith("/"):
                if depth < FOLDER_DEPTH:
                    pending.append((target, depth + 1))
            elif is_image_name(parts.path):
                images.append(Source(_name(target, base.path), url=target))
    if not images:
        return [_failed(link, ErrorCode.EMPTY_FOLDER, "the folder lists no images")]
    return images


def _s3_images(listing: ElementTree.Element, url: str) -> tuple[list[Source], str | None]:
    """The listing's images as sources named by their key below the listed prefix, and the next page's
    URL when the listing is cut."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    prefix = query.get("prefix", "")
    bucket_url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/"
    keys = [key.text for key in listing.iter(f"{S3_NAMESPACE}Key") if key.text]
    images = [
        Source(key.removeprefix(prefix), url=bucket_url + quote(key)) for key in keys if is_image_name(key)
    ]
    if listing.findtext(f"{S3_NAMESPACE}IsTruncated") != "true":
        return images, None
    # The next page: ListObjectsV2 names a continuation token; the first version goes on after a key.
    token = listing.findtext(f"{S3_NAMESPACE}NextContinuationToken")
    if token:
        following = {"continuation-token": token}
    else:
        marker = listing.findtext(f"{S3_NAMESPACE}NextMarker") or (keys[-1] if keys else None)
        if not marker:
            return images, None
        following = {"marker": marker}
    return images, f"{bucket_url.rstrip('/')}?{urlencode(query | following)}"


def _name(url: str, folder_path: str) -> str:
    """A file's path below the folder link."""
    path, folder = unquote(urlsplit(url).path), unquote(folder_path).rstrip("/") + "/"
    return path[len(folder) :] if path.startswith(folder) else path


def _failed(link: str, code: ErrorCode, reason: str) -> Source:
    return Source(link, url=link, error=ApiError(code, f"{link}: {reason}", {"url": link}))


async def listed_sources(link: str, settings: Settings, limit: int | None = None) -> list[Source]:
    """The images of one folder link chosen by whoever runs a command (`kfashion catalog add`), so its host
    is allowed whatever KFASHION_GATEWAY__URL_HOSTS says; at most `limit` of them."""
    host = urlsplit(link.strip()).hostname or ""
    gateway = settings.gateway.model_copy(update={"url_hosts": [*settings.gateway.url_hosts, host]})
    allowed = settings.model_copy(update={"gateway": gateway})
    async with httpx2.AsyncClient(timeout=settings.gateway.url_timeout_s) as client:
        found = await folder_sources(client, link, allowed, limit or 10**9)
    return found[:limit] if limit else found


async def collect_sources(
    files: list[UploadFile] | None,
    urls: list[str] | None,
    settings: Settings,
    limit: int,
    over_limit_hint: str = "",
    folders: list[str] | None = None,
) -> list[Source]:
    """Every source of a request, checked before any image is fetched, tagged or written (folder links'
    listings are read here, to count their images). Over `limit` images, the error ends with
    `over_limit_hint`: where the caller can send that many instead."""
    url_list = [u for u in (urls or []) if u.strip()]
    folder_list = [checked_url(link, settings.gateway.url_hosts) for link in (folders or []) if link.strip()]
    sources = url_sources(url_list, settings.gateway)
    uploads = [(f.filename or f"file{i}", await f.read()) for i, f in enumerate(files or [])]
    # Unpacking archives is CPU work: off the event loop, so other requests are answered meanwhile.
    unpacked = await run_in_threadpool(
        upload_sources,
        uploads,
        settings.image,
        settings.gateway.archive_max_entries,
        settings.gateway.archive_max_bytes,
    )
    sources = unpacked + sources
    if folder_list:
        async with httpx2.AsyncClient(timeout=settings.gateway.url_timeout_s) as client:
            for link in folder_list:
                if len(sources) > limit:
                    break
                sources += await folder_sources(client, link, settings, limit - len(sources))
    if not sources:
        raise ApiError(
            ErrorCode.EMPTY_REQUEST,
            "no images: send files (multipart field 'files', repeated; zip archives too), 'urls' or "
            "'folders'",
        )
    if len(sources) > limit:
        raise ApiError(
            ErrorCode.TOO_MANY_FILES,
            f"{'more than ' if folder_list else ''}{len(sources)} images is over the limit of {limit} for "
            "this request" + (f"; {over_limit_hint}" if over_limit_hint else ""),
            {"images": len(sources), "limit": limit},
        )
    return sources
