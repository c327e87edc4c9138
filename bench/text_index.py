"""The first text search after a change of the catalog: our text index, brought up to date from the changed
image, against the code before (read from git), which read every item and built the index again; both on
the same catalog and changes in one run, with a check that both answer the same.

    .venv/bin/python -m bench.text_index [--images 2000 20000] [--changes 20] [--baseline b465c0e]

The catalog is bench.recommend's (tests.catalog_data: tags drawn at random, an outer in every third look,
SQLite and a local blob store). Each change is a new image or a tag correction, in turn; after it, both
indexes answer the same free-word queries (scores compared to 1e-9), and each query is timed on both.
Memory is what each index built from the whole catalog holds (tracemalloc).
"""

from __future__ import annotations

import argparse
import platform
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.recommend import BOTTOMS, COLOURS, STYLES, TOPS, baseline_module, filled_catalog
from services.search.service import CatalogSearch
from services.search.text import TextIndex, item_documents
from tests.catalog_data import item, look

QUERIES = (["black"], ["skirt", "navy"], ["jeans"], ["블라우스", "모던"], ["stripe", "street"], ["changed"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--baseline", default="b465c0e", help="commit whose text index is the baseline")
    args = parser.parse_args()
    baseline = baseline_module(args.baseline, "services/search/text.py")
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; baseline {args.baseline}")
    print(
        "| images | items | after a change of one image: baseline (every item read, index built) "
        "p50 / p95 ms | ours (the image read, index updated) p50 / p95 ms | p50 ratio "
        "| a query: baseline / ours p50 ms | index memory: baseline / ours MB | same answers |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for images in args.images:
        with tempfile.TemporaryDirectory() as tmp:
            search = filled_catalog(images, Path(tmp))
            documents = list(item_documents(search.catalog.looks()))
            memory = [_allocated(build, documents) for build in (baseline.TextIndex, TextIndex)]
            search.text_index()
            times: dict[str, list[float]] = {
                name: [] for name in ("baseline", "ours", "baseline query", "ours query")
            }
            rng = random.Random(1)
            same = 0
            for n in range(args.changes):
                _change(search, rng, n)
                started = time.perf_counter()
                theirs = baseline.TextIndex(item_documents(search.catalog.looks()))
                times["baseline"].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                ours = search.text_index()
                ours.norms()  # computed by the first query after a change: counted with the update
                times["ours"].append((time.perf_counter() - started) * 1000)
                for words in QUERIES:
                    answers = []
                    for name, index in (("baseline query", theirs), ("ours query", ours)):
                        started = time.perf_counter()
                        answers.append(index.scores(words))
                        times[name].append((time.perf_counter() - started) * 1000)
                    same += answers[0].keys() == answers[1].keys() and all(
                        abs(answers[0][i] - answers[1][i]) <= 1e-9 for i in answers[0]
                    )
            items = len(search.catalog.looks())
            search.close()
            p50 = {name: np.percentile(values, 50) for name, values in times.items()}
            p95 = {name: np.percentile(values, 95) for name, values in times.items()}
            print(
                f"| {images:,} | {items:,} | {p50['baseline']:.1f} / {p95['baseline']:.1f} "
                f"| {p50['ours']:.1f} / {p95['ours']:.1f} | x{p50['ours'] / p50['baseline']:.3f} "
                f"| {p50['baseline query']:.2f} / {p50['ours query']:.2f} "
                f"| {memory[0] / 2**20:.1f} / {memory[1] / 2**20:.1f} "
                f"| {same} of {args.changes * len(QUERIES)} |"
            )


def _allocated(build: Callable[[Any], Any], argument: Any) -> int:
    """Bytes held by what `build(argument)` returns (tracemalloc, while it is alive)."""
    tracemalloc.start()
    built = build(argument)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del built
    return held


def _change(search: CatalogSearch, rng: random.Random, n: int) -> None:
    """A tag correction of a random item or a new image, in turn."""
    if n % 2:
        row = rng.choice(search.catalog.looks())
        search.update(row["image_id"], None, {row["id"]: {"color": rng.choice(COLOURS)}})
    else:
        items = [item("top", rng.choice(TOPS), rng.choice(COLOURS), [], 10**8 + 2 * n)]
        items.append(item("bottom", rng.choice(BOTTOMS), rng.choice(COLOURS), [], 10**8 + 2 * n + 1))
        search.add(f"changed {n}.jpg", f"changed {n}".encode(), look(rng.choice(STYLES), items))


if __name__ == "__main__":
    main()
