"""`kfashion stack up/down`: every service its own process, the models on a real Triton server, the
catalog in a schema of the real PostgreSQL and an S3-protocol server, all started by the command;
/tagging, /search and /recommend through its gateway answer as the embedded server does on the same inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.databases import POSTGRES_URL, database_url
from tests.servers import ROOT, Server, free_port, gateway_env
from tests.triton_server import require_triton
from training.data import Sample

CATALOG = 12


def _kfashion(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kfashion", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[str, Path]]:
    require_triton()
    folder = tmp_path_factory.mktemp("stack")
    # A schema of its own (skips without PostgreSQL, fails under CI; dropped afterwards): the stack uses it.
    schema = database_url("postgresql", folder, request).rsplit("search_path%3D", 1)[1]
    port = free_port()
    started = _kfashion(
        "stack", "up", "--dir", str(folder), "--port", str(port), "--triton", "--s3-server",
        "--database", POSTGRES_URL, "--schema", schema,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    url = json.loads(started.stdout)["gateway"]
    try:
        yield url, folder
    finally:
        stopped = _kfashion("stack", "down", "--dir", str(folder))
        assert stopped.returncode == 0
        names = json.loads(stopped.stdout)["stopped"]
        assert sorted(names) == ["attributes", "detector", "gateway", "s3", "search", "style", "triton"]
        assert json.loads(_kfashion("stack", "status", "--dir", str(folder)).stdout) == []


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("reference")
    server = Server([], gateway_env(folder / "data"), log=folder / "server.log").start()
    yield server.url
    server.kill()


def _files(samples: list[Sample]) -> list:
    return [("files", (s.image_path.name, s.image_path.read_bytes(), "image/jpeg")) for s in samples]


def _strip(results: list[dict]) -> list[dict]:
    """What must agree: everything but ids (each deployment numbers its own catalog)."""
    return [{k: v for k, v in r.items() if k not in ("image_id", "item_id", "image_url")} for r in results]


def test_the_stack_answers_as_the_embedded_server(
    stack: tuple[str, Path], reference: str, unseen: list[Sample]
) -> None:
    stack, folder = stack
    tagged = [
        httpx2.post(f"{url}/tagging", files=_files(unseen[:4]), timeout=120).json()["body"]
        for url in (stack, reference)
    ]
    assert tagged[0]["results"] == tagged[1]["results"]
    for url in (stack, reference):
        added = httpx2.post(f"{url}/catalog/images", files=_files(unseen[:CATALOG]), timeout=300).json()[
            "body"
        ]
        assert added["counts"]["added"] == CATALOG
    photo = _files(unseen[20:21])
    searches = [
        httpx2.post(f"{url}/search", files=photo, data={"top_k": "5"}, timeout=60).json()["body"]
        for url in (stack, reference)
    ]
    assert searches[0]["results"] and _strip(searches[0]["results"]) == _strip(searches[1]["results"])
    texts = [
        httpx2.post(f"{url}/search", json={"text": "black", "top_k": 20}).json()["body"]
        for url in (stack, reference)
    ]
    assert _strip(texts[0]["results"]) == _strip(texts[1]["results"])
    recommended = [
        httpx2.post(f"{url}/recommend", files=photo, data={"top_k": "3"}, timeout=60).json()["body"][
            "results"
        ][0]
        for url in (stack, reference)
    ]
    assert recommended[0]["status"] == "done"
    assert {r: _strip(v) for r, v in recommended[0]["matches"].items()} == {
        r: _strip(v) for r, v in recommended[1]["matches"].items()
    }
    # Microservices indeed: the gateway reports each service by URL, and the models run on Triton.
    services = httpx2.get(f"{stack}/services").json()["body"]
    assert services["mode"] == "microservices" and all(s["ready"] for s in services["services"].values())
    detector = services["services"]["detector"]["url"]
    runtime = httpx2.get(f"{detector}/readyz").json()["body"]["runtime"]
    assert runtime["backend"] == "triton"
    assert runtime["ready"]
    # Its own S3 server and PostgreSQL schema: nothing of the catalog on the local disk, no SQLite file.
    running = {
        p["name"]: p["alive"] for p in json.loads(_kfashion("stack", "status", "--dir", str(folder)).stdout)
    }
    assert running["s3"] and all(running.values())
    assert (
        not (folder / "data" / "blobs" / "catalog").exists()
        and not (folder / "data" / "kfashion.db").exists()
    )
