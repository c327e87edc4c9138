"""Cheap requests under a tagging load: text search latency alone, with its 8 searchers and no tagging (20 s:
how far the searchers queue behind each other), and beside 60 s of tagging at concurrency 16 (half the
clients tag one 800x800 photo at a time, half search by text), and the server's memory after
warm-up, after the load and after 30 s of idle. Two gateways in one run: ours (model calls on their own
bounded threads, `KFASHION_RUNTIME__WORKERS=2`) and the baseline, model calls on a pool as wide as the
shared thread pool (40 threads, the behaviour before), so the ratio is measured on one machine at one time.

    .venv/bin/python -m bench.mixed_load [--seconds 60] [--idle 30] [--catalog 60] [--search-every MS]

`--search-every MS` paces each searcher to one search every MS milliseconds (as an app's users search: a
bounded rate, not back-to-back), so the figure shows how long a search waits behind tagging rather than
behind the other searchers; 0 (the default) searches back-to-back.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx2
import numpy as np

from bench.memory import rss_mb
from bench.tagging import _pictures
from tests.servers import Server

TEXTS = [
    "블랙 티셔츠",
    "white shirt",
    "denim skirt",
    "스트리트 재킷",
    "check pants",
    "navy coat",
    "floral dress",
]
FORMS = {
    "ours (workers 2)": {"KFASHION_RUNTIME__WORKERS": "2"},
    "baseline (40 threads)": {
        "KFASHION_RUNTIME__WORKERS": "40",
        "KFASHION_RUNTIME__QUEUE": "10000",
        "KFASHION_RUNTIME__NICE": "0",
    },
}


def _search(client: httpx2.Client, k: int) -> float:
    started = time.perf_counter()
    answer = client.post("/search", json={"text": TEXTS[k % len(TEXTS)], "top_k": 10})
    assert answer.status_code == 200, answer.text
    return (time.perf_counter() - started) * 1000


def _load(
    url: str,
    pictures: list[tuple[str, bytes]],
    seconds: float,
    clients: int,
    tagging: bool = True,
    search_every_ms: float = 0,
) -> dict:
    """`clients` // 2 tag (none when not `tagging`: the searchers alone, to tell the load's share of the
    delay from the searchers' own queueing) and the rest search by text, each one request at a time,
    a searcher starting one every `search_every_ms` (0: back-to-back; a late one starts at once)."""
    deadline = time.monotonic() + seconds
    search_ms: list[float] = []
    tag_ms: list[float] = []
    statuses: Counter[int] = Counter()

    def tagger(n: int) -> None:
        with httpx2.Client(base_url=url, timeout=300) as client:
            k = n
            while time.monotonic() < deadline:
                name, data = pictures[k % len(pictures)]
                started = time.perf_counter()
                answer = client.post("/tagging", files=[("files", (name, data))])
                statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    tag_ms.append((time.perf_counter() - started) * 1000)
                k += clients

    def searcher(n: int) -> None:
        with httpx2.Client(base_url=url, timeout=300) as client:
            k = n
            next_start = time.monotonic() + search_every_ms / 1000 * n / max(1, clients)  # spread the starts
            while time.monotonic() < deadline:
                time.sleep(max(0.0, next_start - time.monotonic()))
                next_start = (
                    max(next_start, time.monotonic() - search_every_ms / 1000) + search_every_ms / 1000
                )
                search_ms.append(_search(client, k))
                k += 1

    threads = [threading.Thread(target=tagger, args=(n,)) for n in range(clients // 2 if tagging else 0)]
    threads += [threading.Thread(target=searcher, args=(n,)) for n in range(clients - clients // 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"search": np.array(search_ms), "tag": np.array(tag_ms), "statuses": dict(statuses)}


def _run(env: dict, pictures: list[tuple[str, bytes]], args: argparse.Namespace) -> dict:
    server = Server([], env).start()
    assert server.process is not None
    try:
        with httpx2.Client(base_url=server.url, timeout=300) as client:
            for start in range(0, len(pictures), 16):
                chunk = pictures[start : start + 16]
                assert client.post("/catalog/images", files=[("files", p) for p in chunk]).is_success
            for k in range(10):  # warm-up
                _search(client, k)
                client.post("/tagging", files=[("files", pictures[k % len(pictures)])])
            warm_rss = rss_mb(server.process.pid)
            alone = np.array([_search(client, k) for k in range(40)])
        searchers = _load(server.url, pictures, args.seconds / 3, args.clients, False, args.search_every)[
            "search"
        ]
        loaded = _load(server.url, pictures, args.seconds, args.clients, True, args.search_every)
        loaded_rss = rss_mb(server.process.pid)
        time.sleep(args.idle)
        idle_rss = rss_mb(server.process.pid)
    finally:
        server.kill()
    return {"alone": alone, "searchers": searchers, **loaded, "rss": (warm_rss, loaded_rss, idle_rss)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--idle", type=float, default=30)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--catalog", type=int, default=60)
    parser.add_argument("--search-every", type=float, default=0, help="ms between a searcher's searches")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pictures = _pictures(Path(tmp) / "pictures", args.catalog)
        pace = f"a search every {args.search_every:g} ms each" if args.search_every else "back-to-back"
        print(
            f"{platform.processor() or platform.machine()}, {args.clients} clients, {args.seconds:g} s, "
            f"searchers {pace}"
        )
        for number, (name, extra) in enumerate(FORMS.items()):
            env = {
                "KFASHION_DATA_DIR": str(Path(tmp) / f"form{number}"),
                "KFASHION_GATEWAY__SYNC_MAX_IMAGES": "16",
                "KFASHION_GATEWAY__RATE_LIMITS__PER_ADDRESS": "0",
                **extra,
            }
            got = _run(env, pictures, args)
            alone, loaded = float(np.median(got["alone"])), float(np.median(got["search"]))
            searchers = float(np.median(got["searchers"]))
            warm, after, idle = got["rss"]
            print(
                f"{name}: text search p50 alone {alone:.1f} ms, {args.clients - args.clients // 2} searchers "
                f"without tagging {searchers:.1f} ms ({searchers / alone:.1f}x), under load {loaded:.1f} ms "
                f"({loaded / alone:.1f}x; p95 {np.percentile(got['search'], 95):.0f} ms, "
                f"{len(got['search'])} searches); tagging p50 {np.median(got['tag']):.0f} ms, "
                f"{len(got['tag']) / args.seconds:.2f} images/s, statuses {got['statuses']}; "
                f"RSS warm {warm:.0f} MB, after load {after:.0f} MB, "
                f"after {args.idle:g} s idle {idle:.0f} MB ({idle / warm:.2f}x)"
            )


if __name__ == "__main__":
    main()
