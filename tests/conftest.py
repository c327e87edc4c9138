"""Fixtures every lane shares: the K-Fashion sample label, generated datasets, real servers.

The lanes: tests/unit runs in-process with no server (`scripts/test.sh --fast`, under 2 minutes);
tests/integration starts real servers (uvicorn processes, PostgreSQL, an S3 server, Triton) or runs the
model pipeline end to end (training, export, evaluation, the real photo sets); tests/system drives a browser
or renders the Kubernetes manifests. CI runs all three."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.servers import Server, free_port, gateway_env
from training.data import Sample, load_samples
from training.synth.dataset import generate_dataset

DATA = Path(__file__).parent / "data"
SAMPLE_LABEL = DATA / "kfashion_sample.json"
# The bottom item of the sample, as `labels show` prints its attributes.
SAMPLE_BOTTOM_ATTRIBUTES = {
    "category": "팬츠",
    "color": "블랙",
    "print": ["아가일"],
    "material": ["울/캐시미어"],
    "detail": ["리본"],
    "length": "발목",
    "fit": "루즈",
}
SYNTH_COUNT = 200
SYNTH_SEED = 11
UNSEEN_SEED = 777  # the bootstrap models were trained on seed 0
UNSEEN_COUNT = 40


@pytest.fixture
def sample_doc() -> dict:
    """The KFASHION.md / seed 004 sample label as a fresh dict (safe to modify)."""
    return copy.deepcopy(json.loads(SAMPLE_LABEL.read_text(encoding="utf-8")))


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 generated images in the K-Fashion layout (about 15 s on 2 cores)."""
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, SYNTH_COUNT, SYNTH_SEED, workers=2)
    return root


@pytest.fixture(scope="session")
def unseen(tmp_path_factory: pytest.TempPathFactory) -> list[Sample]:
    root = tmp_path_factory.mktemp("unseen")
    generate_dataset(root, UNSEEN_COUNT, UNSEEN_SEED, workers=2)
    return load_samples(root)[0]


class _CountingHandler(SimpleHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        super().do_GET()

    def log_message(self, *_: object) -> None:
        return None


def serve_folder(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback serving `folder` (Python's own: files, and an HTML index page for
    each folder); yields its URL and every path asked for, then stops."""
    handler = type("Handler", (_CountingHandler,), {"hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.hits
    server.shutdown()


@pytest.fixture(scope="session")
def image_host(
    tmp_path_factory: pytest.TempPathFactory, unseen: list[Sample]
) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback serving two of the images; records every path asked for."""
    folder = tmp_path_factory.mktemp("host")
    for sample in unseen[:2]:
        (folder / sample.image_path.name).write_bytes(sample.image_path.read_bytes())
    yield from serve_folder(folder)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-protocol server (moto's) on loopback, for the whole run; it does not check credentials."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("embedded")
    server = Server([], gateway_env(folder / "data"), log=folder / "server.log").start()
    yield server
    server.kill()
