"""/catalog/images, /search and /recommend over HTTP on loopback, against /tagging measured in the same run:
what the catalog and the index add to the cost of tagging a photo.

    .venv/bin/python -m bench.search_api [--catalog 300] [--requests 60]

Starts the embedded server (`kfashion serve`, uvicorn) like the tests do, fills the catalog with generated
K-Fashion-format pictures scaled to 800x800 (JPEG q90), then times each kind of request one at a time.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import numpy as np

from bench.tagging import _pictures
from tests.servers import Server

BATCH = 16


def _timed(call: Callable[[int], httpx2.Response], requests: int) -> np.ndarray:
    for k in range(3):  # warm-up
        call(k)
    times = []
    for k in range(requests):
        started = time.perf_counter()
        response = call(k)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalog", type=int, default=300)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pictures = _pictures(folder / "pictures", args.catalog)
        env = {"KFASHION_DATA_DIR": str(folder / "data"), "KFASHION_GATEWAY__SYNC_MAX_IMAGES": str(BATCH)}
        server = Server([], env).start()
        client = httpx2.Client(base_url=server.url, timeout=300)
        try:
            rates = {}
            with_items = []  # photos in which garments were found: a photo search needs one
            for path in ("/tagging", "/catalog/images"):
                started = time.perf_counter()
                for start in range(0, len(pictures), BATCH):
                    chunk = pictures[start : start + BATCH]
                    response = client.post(path, files=[("files", item) for item in chunk])
                    assert response.status_code == 200, response.text
                    if path == "/tagging":
                        found = response.json()["body"]["results"]
                        with_items += [item for item, r in zip(chunk, found, strict=True) if r.get("items")]
                rates[path] = len(pictures) / (time.perf_counter() - started)
            items = client.get("/catalog/images/1").json()["body"]["items"]
            photo = lambda k: client.post(  # noqa: E731
                "/search", files=[("files", with_items[k % len(with_items)])], data={"top_k": "10"}
            )
            latencies = {
                "POST /tagging (1 photo)": _timed(
                    lambda k: client.post("/tagging", files=[("files", with_items[k % len(with_items)])]),
                    args.requests,
                ),
                "POST /search (photo, top 10)": _timed(photo, args.requests),
                "POST /search (text: 블랙 스커트)": _timed(
                    lambda k: client.post("/search", json={"text": "블랙 스커트", "top_k": 10}), args.requests
                ),
                "POST /search (text with a free word)": _timed(
                    lambda k: client.post("/search", json={"text": "black vacation", "top_k": 10}),
                    args.requests,
                ),
                "POST /recommend (catalog item)": _timed(
                    lambda k: client.post("/recommend", json={"item_id": items[0]["id"], "top_k": 10}),
                    args.requests,
                ),
            }
        finally:
            client.close()
            server.kill()
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}; "
        f"catalog {args.catalog} images 800x800"
    )
    print(
        f"ingest: /tagging {rates['/tagging']:.1f} images/s, /catalog/images {rates['/catalog/images']:.1f} "
        f"images/s (x{rates['/catalog/images'] / rates['/tagging']:.2f}), {BATCH} a request"
    )
    print("| request | p50 ms | p95 ms |")
    print("|---|---|---|")
    for name, times in latencies.items():
        print(f"| {name} | {np.median(times):.1f} | {np.percentile(times, 95):.1f} |")
    tagging = np.median(latencies["POST /tagging (1 photo)"])
    print(
        f"photo search / tagging p50: x{np.median(latencies['POST /search (photo, top 10)']) / tagging:.2f}"
    )


if __name__ == "__main__":
    main()
