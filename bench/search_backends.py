"""The two index stores of the search service side by side on the same (clustered) vectors: FAISS in the
process (the default) and Milvus, a standalone server on loopback (.venv-milvus; `--milvus lite`: milvus-lite,
embedded in the process). Ingest rate, search p50 (top 10, unfiltered and with a filter allowing 1 in 7),
top-10 agreement with exact search, and the search process's memory once the vectors are in (with a
server, Milvus's own memory is the server's). Each store and size runs in a process of its own.

    .venv/bin/python -m bench.search_backends [--sizes 100000,1000000] [--queries 200] [--milvus lite]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.memory import rss_mb
from bench.search import clustered, exact_top
from tests.milvus_server import MilvusServer

DIM = 128  # bench/search.py's too


def _vectors(count: int, seed: int = 0) -> np.ndarray:
    """Clustered unit vectors, as embeddings are (bench/search.py's)."""
    return clustered(np.random.default_rng(seed), count)


def measure(store: str, count: int, queries: int, folder: str, milvus_uri: str = "") -> dict:
    """One store at one size, in this process."""
    from services.search.index import IndexConfig, VectorIndex

    config = IndexConfig(DIM)
    base_rss = rss_mb()
    ids = np.arange(1, count + 1, dtype=np.int64)
    vectors = _vectors(count)
    rng = np.random.default_rng(1)
    picks = rng.choice(count, queries, replace=False)
    asked = vectors[picks] + 0.3 * rng.standard_normal((queries, DIM)).astype(np.float32)
    asked /= np.linalg.norm(asked, axis=1, keepdims=True)
    allowed = ids[ids % 7 == 0]
    milvus = None
    started = time.perf_counter()
    if store == "faiss":
        index = VectorIndex(config)
        for start in range(0, count, 10_000):
            index.add(ids[start : start + 10_000], vectors[start : start + 10_000])
        ingest_s = time.perf_counter() - started
        if index.needs_rebuild():  # what the search service does past the flat limit: IVF-PQ
            began = time.perf_counter()
            index.rebuild()
            train_s = time.perf_counter() - began
        else:
            train_s = 0.0
    else:
        from services.search.milvus_index import MilvusIndexes

        # A server gets the index the `milvus` overlay asks for; milvus-lite answers exactly (FLAT).
        if milvus_uri:
            index_type, index_params, search_params = "HNSW", {"M": 16, "efConstruction": 200}, {"ef": 256}
        else:
            index_type, index_params, search_params = "FLAT", {}, {}
        milvus = MilvusIndexes(
            milvus_uri or str(Path(folder) / "bench.db"),
            prefix=f"bench{count}",
            index_type=index_type,
            index_params=index_params,
            search_params=search_params,
        )
        index = milvus.create("items", config, {})
        started = time.perf_counter()  # the collection made: ingest alone
        index.add(ids, vectors)
        ingest_s = time.perf_counter() - started
        began = time.perf_counter()
        milvus.publish("items", index)  # as a rebuild ends: flushed, its index built and loaded
        train_s = time.perf_counter() - began
    exact = exact_top(vectors, asked) + 1  # ids are rows + 1
    del vectors
    times, filtered, recall = [], [], []
    for q in range(queries):
        began = time.perf_counter()
        found = index.search(asked[q : q + 1], 10)[1][0]
        times.append((time.perf_counter() - began) * 1000)
        recall.append(len(set(found.tolist()) & set(exact[q].tolist())) / 10)
    for q in range(min(queries, 50)):
        began = time.perf_counter()
        index.search(asked[q : q + 1], 10, allowed)
        filtered.append((time.perf_counter() - began) * 1000)
    result = {
        "store": store,
        "count": count,
        "ingest_per_s": round(count / ingest_s),
        "train_s": round(train_s, 1),
        "search_p50_ms": round(float(np.median(times)), 2),
        "filtered_p50_ms": round(float(np.median(filtered)), 2),
        "recall_at_10": round(float(np.mean(recall)), 3),
        "rss_mb": round(rss_mb() - base_rss),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "kind": index.kind,
    }
    if milvus is not None:
        milvus.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--milvus",
        default="server",
        choices=["server", "lite"],
        help="a Milvus server (.venv-milvus) or milvus-lite",
    )
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # store count uri: run one, print JSON
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(measure(args.one[0], int(args.one[1]), args.queries, folder, args.one[2])))
        return
    with tempfile.TemporaryDirectory() as folder:
        server = MilvusServer(Path(folder)).start() if args.milvus == "server" else None
        try:
            _compare(args, server.uri if server else "")
        finally:
            if server:
                server.stop()


def _compare(args: argparse.Namespace, milvus_uri: str) -> None:
    machine = platform.processor() or platform.machine()
    print(f"{machine}, {args.queries} queries, top 10, dim {DIM}, Milvus: {milvus_uri or 'milvus-lite'}")
    for count in (int(s) for s in args.sizes.split(",")):
        rows = {}
        for store in ("faiss", "milvus"):
            command = [sys.executable, "-m", "bench.search_backends", "--one", store, str(count), milvus_uri]
            done = subprocess.run([*command, "--queries", str(args.queries)], capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            rows[store] = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(rows[store]))
        faiss, milvus = rows["faiss"], rows["milvus"]
        print(
            f"{count}: search p50 milvus/faiss {milvus['search_p50_ms'] / faiss['search_p50_ms']:.1f}x, "
            f"filtered {milvus['filtered_p50_ms'] / faiss['filtered_p50_ms']:.1f}x, ingest "
            f"{milvus['ingest_per_s'] / faiss['ingest_per_s']:.2f}x, memory "
            f"{milvus['rss_mb'] / max(1, faiss['rss_mb']):.2f}x"
        )


if __name__ == "__main__":
    main()
