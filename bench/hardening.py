"""Hostile inputs against the embedded server, each while a probe asks /healthz every 20 ms: how fast each
is refused, how much the data dir and the server's memory grow, and the slowest /healthz meanwhile.

    .venv/bin/python -m bench.hardening

Inputs: a 512 KB zip of 20 entries of 25 MB of zeros to /tagging/jobs; a 1 MB zip of 4 entries of 256 MB to
/tagging; a 3 MB search text; a 50 MB JSON body; a 36-megapixel PNG tagged (accepted, decoded off the
event loop).
"""

from __future__ import annotations

import io
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx2
import numpy as np
from PIL import Image

from bench.memory import peak_rss_mb
from tests.servers import Server


def _zip(entries: int, size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for n in range(entries):
            with archive.open(f"zeros{n}.jpg", "w", force_zip64=True) as entry:
                for _ in range(size // (1 << 20)):
                    entry.write(bytes(1 << 20))
    return buffer.getvalue()


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 200, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _probed(url: str, send: Callable[[], httpx2.Response]) -> tuple[httpx2.Response, float, float]:
    """The answer, its seconds, and the slowest /healthz (ms) while it ran."""
    slowest = [0.0]
    done = threading.Event()
    # Made and used once before the clock starts: making a client (its TLS context) holds this process's
    # GIL for a second or more, which would count against the server.
    client = httpx2.Client(timeout=30)
    client.get(f"{url}/healthz")

    def probe() -> None:
        while not done.is_set():
            began = time.perf_counter()
            client.get(f"{url}/healthz")
            slowest[0] = max(slowest[0], (time.perf_counter() - began) * 1000)
            time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        answer = send()
    finally:
        time.sleep(0.1)
        done.set()
        prober.join()
        client.close()
    # From the request sent to the answer's headers: this client's own work before sending (encoding a
    # form, under this process's GIL) is not the server's.
    return answer, answer.elapsed.total_seconds(), slowest[0]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        server = Server([], {"KFASHION_DATA_DIR": str(data)}).start()
        assert server.process is not None
        client = httpx2.Client(base_url=server.url, timeout=120)
        cases = {
            "512 KB zip, 20 x 25 MB of zeros, to /tagging/jobs": lambda: client.post(
                "/tagging/jobs", files=[("files", ("bomb.zip", _zip(20, 25 << 20)))]
            ),
            "zip, 4 x 256 MB of zeros, to /tagging": lambda: client.post(
                "/tagging", files=[("files", ("bomb.zip", _zip(4, 256 << 20)))]
            ),
            "3 MB search text": lambda: client.post("/search", json={"text": "a" * (3 << 20)}),
            "50 MB JSON body": lambda: client.post(
                "/search",
                content=b'{"text": "' + b"a" * (50 << 20) + b'"}',
                headers={"content-type": "application/json"},
            ),
            "36-megapixel PNG to /tagging": lambda: client.post(
                "/tagging", files=[("files", ("big.png", _png(7200, 5000)))]
            ),
        }
        try:
            for name, send in cases.items():
                before_bytes, before_rss = _folder_bytes(data), peak_rss_mb(server.process.pid)
                answer, seconds, slowest = _probed(server.url, send)
                grown = (_folder_bytes(data) - before_bytes) / 1e6
                code = (
                    answer.json().get("body", {}).get("error", {}).get("code", "") if answer.content else ""
                )
                peak = peak_rss_mb(server.process.pid) - before_rss
                print(
                    f"{name}: {answer.status_code} {code} in {seconds:.2f} s; data dir +{grown:.2f} MB, "
                    f"peak RSS +{peak:.0f} MB; slowest /healthz {slowest:.0f} ms"
                )
        finally:
            server.kill()


if __name__ == "__main__":
    main()
