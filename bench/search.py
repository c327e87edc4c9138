"""Vector search speed and recall at 100 k and 1 M vectors: our index (IVF-PQ + exact re-ranking) against a
numpy brute-force scan (the seeds' method), both on the same generated vectors in one run.

    .venv/bin/python -m bench.search [--sizes 100000 1000000] [--queries 200]

Vectors: 128-d unit vectors around 2,000 cluster centres (like embeddings of similar garments). Recall@10 is
measured against exact search. Latency is per query, one query per call (how /search calls it).
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace
from functools import partial

import numpy as np

from services.search.index import IndexConfig, VectorIndex

DIM = 128


def clustered(rng: np.random.Generator, n: int, clusters: int = 2000) -> np.ndarray:
    centres = rng.normal(size=(clusters, DIM)).astype(np.float32)
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = centres[rng.integers(0, clusters, m)] + 0.4 * rng.normal(size=(m, DIM)).astype(np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    scores = queries @ vectors.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return np.take_along_axis(top, np.take_along_axis(scores, top, 1).argsort(1)[:, ::-1], 1)


def exact_subset(vectors: np.ndarray, allowed: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """numpy brute force over the allowed rows only (what a filter leaves)."""
    return allowed[exact_top(vectors[allowed], queries, 10)]


def per_query_ms(search, queries: np.ndarray) -> tuple[float, float]:
    times = []
    for q in queries:
        started = time.perf_counter()
        search(q[None])
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument(
        "--filtered",
        type=float,
        nargs="*",
        default=[0.3],
        help="shares of the ids a filter allows (default nprobe)",
    )
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; d={DIM}, k=10")
    print("| vectors | method | build s | p50 ms/query | p95 ms | recall@10 | speed-up vs numpy |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        rng = np.random.default_rng(size)
        vectors = clustered(rng, size)
        queries = clustered(np.random.default_rng(7), args.queries)
        ids = np.arange(size, dtype=np.int64)
        truth = exact_top(vectors, queries, 10)
        numpy_p50, numpy_p95 = per_query_ms(partial(exact_top, vectors, k=10), queries[:30])
        print(f"| {size:,} | numpy brute force | 0 | {numpy_p50:.2f} | {numpy_p95:.2f} | 1.000 | 1.0x |")
        index = VectorIndex(IndexConfig(DIM, flat_limit=50_000))
        started = time.perf_counter()
        index.add(ids, vectors)
        index.rebuild()
        build = time.perf_counter() - started
        for nprobe in args.nprobe:
            index.config = replace(index.config, nprobe=nprobe)
            found = np.concatenate([index.search(q[None], 10)[1] for q in queries])
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
            p50, p95 = per_query_ms(partial(index.search, k=10), queries)
            method = (
                f"IVF-PQ {index.config.pq_bytes} B + re-rank x{index.config.refine_factor}, nprobe {nprobe}"
            )
            print(
                f"| {size:,} | {method} | {build:.0f} | {p50:.2f} | {p95:.2f} | {recall:.3f} | "
                f"{numpy_p50 / p50:.0f}x |"
            )
        # A filter (a region, a colour) allows a share of the ids: numpy scans those rows, the index
        # searches with them as its selector.
        index.config = replace(index.config, nprobe=IndexConfig(DIM).nprobe)
        for share in args.filtered:
            allowed = np.sort(rng.choice(ids, int(share * size), replace=False))
            subset_truth = exact_subset(vectors, allowed, queries)
            subset_p50, subset_p95 = per_query_ms(partial(exact_subset, vectors, allowed), queries[:30])
            print(
                f"| {size:,} | numpy brute force over the allowed {share:.0%} | 0 | {subset_p50:.2f} "
                f"| {subset_p95:.2f} | 1.000 | 1.0x |"
            )
            found = np.concatenate([index.search(q[None], 10, allowed)[1] for q in queries])
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, subset_truth, strict=True)])
            p50, p95 = per_query_ms(partial(index.search, k=10, allowed=allowed), queries)
            print(
                f"| {size:,} | the index, filtered to {share:.0%} (nprobe {index.config.nprobe}) "
                f"| {build:.0f} | {p50:.2f} | {p95:.2f} | {recall:.3f} | {subset_p50 / p50:.0f}x |"
            )
        del index, vectors


if __name__ == "__main__":
    main()
