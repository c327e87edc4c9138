"""Free-word text search with its postings in the catalog's database (ours) against the in-memory TF-IDF
index it replaced (read from git: every item's document in the process, brought up to date from each
changed image), both on the same catalog and changes in one run, with a check that both answer the same.

    .venv/bin/python -m bench.text_index [--images 2000 20000] [--changes 20] [--baseline 8369427]

The catalog is bench.recommend's (tests.catalog_data: tags drawn at random, an outer in every third look,
SQLite and a local blob store). Each change is a new image or a tag correction, in turn; after it, both
answer the same free-word queries (scores compared to 1e-9), each query timed on both (the baseline's
first query after a change includes its update). Memory: what the baseline's index of the whole catalog
holds (tracemalloc); ours holds nothing between queries (its tables' size on disk is printed beside).
"""

from __future__ import annotations

import argparse
import platform
import random
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from bench.recommend import BOTTOMS, COLOURS, STYLES, TOPS, baseline_module, filled_catalog
from services.search.service import CatalogSearch
from services.search.text import item_documents
from tests.catalog_data import item, look

TEXT_AUTOINDEXES = ("sqlite_autoindex_catalog_text_1", "sqlite_autoindex_catalog_terms_1")
QUERIES = (["black"], ["skirt", "navy"], ["jeans"], ["블라우스", "모던"], ["stripe", "street"], ["changed"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--baseline", default="8369427", help="commit whose in-memory index is the baseline")
    args = parser.parse_args()
    baseline = baseline_module(args.baseline, "services/search/text.py")
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; baseline {args.baseline}")
    print(
        "| images | items | a query after a change: baseline (in memory) / ours (database) p50 ms | ratio "
        "| p95 ms | index memory: baseline MB / ours (text tables on disk MB) | same answers |"
    )
    print("|---|---|---|---|---|---|---|")
    for images in args.images:
        with tempfile.TemporaryDirectory() as tmp:
            search = filled_catalog(images, Path(tmp))
            tracemalloc.start()
            theirs = baseline.TextIndex(item_documents(search.catalog.looks()))
            memory = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            times: dict[str, list[float]] = {"baseline": [], "ours": []}
            rng = random.Random(1)
            same = 0
            for n in range(args.changes):
                before, image_id = _change(search, rng, n)
                theirs.update(before, item_documents(search.catalog.looks([image_id])))
                for words in QUERIES:
                    answers = []
                    for name, index in (("baseline", theirs), ("ours", search.text)):
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
                f"| {images:,} | {items:,} | {p50['baseline']:.2f} / {p50['ours']:.2f} "
                f"| x{p50['ours'] / p50['baseline']:.2f} | {p95['baseline']:.2f} / {p95['ours']:.2f} "
                f"| {memory / 2**20:.1f} / 0 ({_text_tables_mb(Path(tmp) / 'catalog.db'):.1f}) "
                f"| {same} of {args.changes * len(QUERIES)} |"
            )


def _text_tables_mb(database: Path) -> float:
    import sqlite3

    with sqlite3.connect(database) as db:
        try:
            rows = db.execute(
                "SELECT SUM(pgsize) FROM dbstat WHERE name IN (?, ?, ?, ?, ?)",
                ("catalog_text", "catalog_terms", "ix_catalog_text_term", *TEXT_AUTOINDEXES),
            ).fetchone()
        except sqlite3.OperationalError:  # a SQLite built without the dbstat table
            return float("nan")
    return (rows[0] or 0) / 2**20


def _change(search: CatalogSearch, rng: random.Random, n: int) -> tuple[list[int], int]:
    """A tag correction of a random item or a new image, in turn: (the image's items before, its id)."""
    if n % 2:
        row = rng.choice(search.catalog.looks())
        before = [i["id"] for i in search.catalog.get(row["image_id"])["items"]]
        search.update(row["image_id"], None, {row["id"]: {"color": rng.choice(COLOURS)}})
        return before, row["image_id"]
    items = [item("top", rng.choice(TOPS), rng.choice(COLOURS), [], 10**8 + 2 * n)]
    items.append(item("bottom", rng.choice(BOTTOMS), rng.choice(COLOURS), [], 10**8 + 2 * n + 1))
    image_id, _ = search.add(f"changed {n}.jpg", f"changed {n}".encode(), look(rng.choice(STYLES), items))
    return [], image_id


if __name__ == "__main__":
    main()
