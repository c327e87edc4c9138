"""Several search services over one Milvus server and one PostgreSQL database, as the `milvus` Kubernetes
overlay runs them: each answers what the other added, and one killed while adding photos, then restarted,
leaves the database and the collection holding the same items. Tagged photos are built by hand
(tests/catalog_data.py): the search service takes them already tagged, so no model runs here."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.catalog_data import item, look
from tests.databases import database_url
from tests.milvus_server import MilvusServer
from tests.servers import Server

COLOURS = ("블랙", "화이트", "네이비", "베이지")


@pytest.fixture(scope="module")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    server = MilvusServer(tmp_path_factory.mktemp("milvus")).start()
    yield server
    server.stop()


def _photo(n: int) -> tuple[str, bytes, dict]:
    name = f"look{n}.jpg"
    colour = COLOURS[n % len(COLOURS)]
    tagged = look(
        "모던", [item("top", "티셔츠", colour, [], 2 * n), item("bottom", "스커트", colour, [], 2 * n + 1)]
    )
    return name, f"photo {n}".encode(), {"file": name, "status": "done", **tagged}


def _add(url: str, photos: list[tuple[str, bytes, dict]]) -> httpx2.Response:
    files = [("files", (name, data, "image/jpeg")) for name, data, _ in photos]
    tagged = json.dumps([t for _, _, t in photos])
    return httpx2.post(f"{url}/catalog/images", files=files, data={"tagged": tagged}, timeout=60)


def _add_until_gone(url: str, photos: list[tuple[str, bytes, dict]]) -> None:
    """Add photos one by one until the service is killed (its connection reset ends the loop)."""
    with contextlib.suppress(httpx2.TransportError):
        for photo in photos:
            _add(url, [photo])


def _search(url: str, photo: dict, **fields: object) -> list[int]:
    answer = httpx2.post(f"{url}/search", json={"photo": photo, "top_k": 10, **fields}, timeout=60)
    assert answer.status_code == 200, answer.text
    return [r["item_id"] for r in answer.json()["body"]["results"]]


def _same(first: str, second: str, photo: dict, **fields: object) -> bool:
    """Both services give the same results, once the second sees the first's writes: a service reads its
    own writes at once (Milvus's Session consistency), another's within Milvus's sync interval."""
    deadline = time.monotonic() + 10
    while (ours := _search(first, photo, **fields)) != _search(second, photo, **fields):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return bool(ours)


def test_two_search_services_share_one_milvus(
    milvus: MilvusServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = {
        "KFASHION_DATA_DIR": str(tmp_path / "data"),  # the photos' files: one disk here, S3 in a cluster
        "KFASHION_DATABASE": database_url("postgresql", tmp_path, request),
        "KFASHION_SEARCH__BACKEND": "milvus",
        "KFASHION_SEARCH__MILVUS_URI": milvus.uri,
        "KFASHION_SEARCH__MILVUS_PREFIX": f"t{uuid.uuid4().hex[:10]}",
    }
    first = Server(["--service", "search"], env, log=tmp_path / "first.log").start()
    second = Server(["--service", "search"], env, log=tmp_path / "second.log").start()
    photos = [_photo(n) for n in range(40)]
    try:
        assert _add(first.url, photos[:12]).status_code == 200
        for _, _, tagged in photos[:12:3]:  # the other service answers the same
            assert _same(first.url, second.url, tagged)
            assert _same(first.url, second.url, tagged, filters={"color": "블랙"})
        assert _add(second.url, photos[12:16]).status_code == 200
        assert _search(first.url, photos[14][2])[0] in _search(second.url, photos[14][2])[:2]

        # The first is killed while it adds photos one by one, then started again.
        adding = threading.Thread(target=_add_until_gone, args=(first.url, photos[16:]))
        adding.start()
        while httpx2.get(f"{second.url}/catalog/images", params={"limit": 1}).json()["body"]["total"] < 22:
            pass
        first.kill(signal.SIGKILL)
        adding.join()
        first = Server(["--service", "search"], env, log=tmp_path / "first-again.log").start()
        total = httpx2.get(f"{first.url}/catalog/images", params={"limit": 1}).json()["body"]["total"]
        assert 22 <= total < 40
        status = httpx2.get(f"{first.url}/readyz").json()["body"]
        assert status["indexes"]["items"]["vectors"] == 2 * total, status  # the collection holds every item
        for _, _, tagged in photos[:total:5]:
            assert _same(first.url, second.url, tagged)
    finally:
        first.kill()
        second.kill()
