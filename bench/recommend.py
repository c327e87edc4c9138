"""/recommend's ranking on a large catalog: our Recommender against the one of an earlier commit (read from
git), on the same catalog and queries in one run, with a check that both answer the same.

    .venv/bin/python -m bench.recommend [--images 20000] [--queries 40] [--baseline d90cea6]

The catalog is tagged results built without models (tests.catalog_data: random 128-d embeddings; categories,
colours, prints and styles drawn at random; an outer in every third look) in SQLite with a local blob store.
Each query is a catalog item; its matches are asked for the two other regions, every other query with a
colour preference, its own image left out, as /recommend does for an `item_id`. Then `--changes` times one
image changes (a new image, then a tag correction, in turn) and the next request of each recommender is
timed: the one that must bring its state up to date (the baseline recommender runs on this commit's
catalog search, whose cached filters follow a change; the last columns time a cached filter after each
change, read again in full as the cache did before, and brought up to date; a look search read the images'
filter in full on every request before).
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from services.recommend.model import Preferences, Recommender
from services.search.catalog import CatalogStore
from services.search.service import CatalogSearch
from shared.blobs import create_blob_store
from shared.db import database_engine
from shared.settings import StorageSettings
from tests.catalog_data import VERSIONS, item, look

ROOT = Path(__file__).resolve().parents[1]
TOPS, BOTTOMS = ("티셔츠", "블라우스", "셔츠", "후드티"), ("스커트", "청바지", "팬츠", "조거팬츠")
COLOURS, PRINTS, STYLES = (
    ("블랙", "화이트", "네이비", "베이지", "레드"),
    ("스트라이프", "체크", "도트"),
    ("스트리트", "모던", "로맨틱"),
)


def baseline_module(revision: str, path: str = "services/recommend/model.py") -> ModuleType:
    """The module at `path` as it was at `revision`, loaded beside ours as baseline_<its name>."""
    source = subprocess.run(
        ["git", "show", f"{revision}:{path}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    name = f"baseline_{Path(path).stem}"
    folder = Path(tempfile.mkdtemp())
    (folder / f"{name}.py").write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def filled_catalog(images: int, folder: Path) -> CatalogSearch:
    blobs = create_blob_store(StorageSettings(), folder)
    search = CatalogSearch(
        CatalogStore(database_engine(f"sqlite:///{folder}/catalog.db"), blobs), blobs, VERSIONS
    )
    search.open()
    rng = random.Random(0)
    for n in range(images):
        search.add(f"{n}.jpg", f"image {n}".encode(), drawn_look(rng, n))
    return search


def drawn_look(rng: random.Random, n: int) -> dict:
    """The n-th generated look (tagged result) of a catalog drawn with `rng`: a top and a bottom, an outer in
    every third; tags at random, the vectors seeded by n."""
    items = [
        item("top", rng.choice(TOPS), rng.choice(COLOURS), rng.sample(PRINTS, rng.randint(0, 2)), 2 * n),
        item("bottom", rng.choice(BOTTOMS), rng.choice(COLOURS), [], 2 * n + 1),
    ]
    if n % 3 == 0:
        items.append(item("outer", "재킷", rng.choice(COLOURS), [], 10**7 + n))
    return look(rng.choice(STYLES), items)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--baseline", default="48fdea9", help="commit whose Recommender is the baseline")
    args = parser.parse_args()
    baseline = baseline_module(args.baseline)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; baseline {args.baseline}")
    print(
        "| images | items | first request, reading the catalog: baseline / ours ms "
        "| then baseline p50 / p95 ms | ours p50 / p95 ms | p50 ratio | same answers |"
    )
    print("|---|---|---|---|---|---|---|")
    after_changes: list[str] = []
    for images in args.images:
        with tempfile.TemporaryDirectory() as tmp:
            search = filled_catalog(images, Path(tmp))
            ours, theirs = Recommender(search), baseline.Recommender(search)
            looks = search.catalog.looks()
            times: dict[str, list[float]] = {"baseline": [], "ours": []}
            same = 0
            for n, row in enumerate(looks[:: max(1, len(looks) // args.queries)][: args.queries]):
                colours = {"color": ["블랙", "화이트"]} if n % 2 else {}
                turns = [
                    ("baseline", theirs, baseline.Preferences(colours, {})),
                    ("ours", ours, Preferences(colours, {})),
                ]
                same += _same_matches(search, row, turns, times)
            after_changes.append(_after_changes(search, ours, theirs, baseline, looks, args.changes))
            search.close()
            (b50, b95), (o50, o95) = (np.percentile(times[k][1:], [50, 95]) for k in ("baseline", "ours"))
            print(
                f"| {images:,} | {len(looks):,} | {times['baseline'][0]:.0f} / {times['ours'][0]:.0f} "
                f"| {b50:.1f} / {b95:.1f} | {o50:.1f} / {o95:.1f} "
                f"| x{o50 / b50:.2f} | {same} of {len(times['ours'])} |"
            )
    print(
        "\n| images | after a change of one image: baseline p50 / p95 ms | ours p50 / p95 ms | p50 ratio "
        "| a cached colour filter of items: read again against kept up to date, p50 / p95 ms "
        "| the same of images | same answers |"
    )
    print("|---|---|---|---|---|---|---|")
    for line in after_changes:
        print(line)


FILTER_TIMES = ("items read", "items kept", "images read", "images kept")


def _same_matches(
    search: CatalogSearch, row: dict, turns: list[tuple[str, Any, Any]], times: dict[str, list[float]]
) -> bool:
    """Each recommender's matches for a catalog item in the two other regions (its own image left out, as
    /recommend does for an `item_id`), timed into `times`; whether they agree in ids, support and
    compatibility."""
    query = {k: row[k] for k in ("id", "image_id", "region", "attributes", "style")}
    vector = search.indexes["items"].vector(row["id"])
    regions = [r for r in ("outer", "top", "bottom") if r != row["region"]]
    answers = []
    for name, recommender, preferences in turns:
        started = time.perf_counter()
        found = recommender.matching(query, vector, regions, 10, preferences, row["image_id"])
        times[name].append((time.perf_counter() - started) * 1000)
        answers.append(
            {r: [(x["item_id"], x["support"], x["compatibility"]) for x in v] for r, v in found.items()}
        )
    return answers[0] == answers[1]


def _after_changes(
    search: CatalogSearch,
    ours: Recommender,
    theirs: Any,
    baseline: ModuleType,
    looks: list[dict],
    changes: int,
) -> str:
    """The first request of each recommender after each of `changes` changes of one image."""
    rng = random.Random(1)
    times: dict[str, list[float]] = {name: [] for name in ("baseline", "ours", *FILTER_TIMES)}
    black = {"color": ["블랙"]}  # a filter searches used before the changes: cached for items and images
    search.allowed_items(black)
    search.allowed_images(black)
    same = 0
    images = len({row["image_id"] for row in looks})
    for n in range(changes):
        if n % 2:
            row = rng.choice(looks)
            search.update(row["image_id"], None, {row["id"]: {"color": rng.choice(COLOURS)}})
        else:
            items = [item("top", rng.choice(TOPS), rng.choice(COLOURS), [], 10**8 + 2 * n)]
            items.append(item("bottom", rng.choice(BOTTOMS), rng.choice(COLOURS), [], 10**8 + 2 * n + 1))
            search.add(f"changed {n}.jpg", f"changed {n}".encode(), look(rng.choice(STYLES), items))
        turns = [("baseline", theirs, baseline.Preferences({}, {})), ("ours", ours, Preferences({}, {}))]
        same += _same_matches(search, rng.choice(looks), turns[:: 1 if n % 2 else -1], times)  # first in turn
        # The cached filter after the change: read again in full (what the cache did before; a look search
        # read it on every request) or kept up to date.
        for name, call in zip(
            FILTER_TIMES,
            (search.catalog.item_ids, search.allowed_items, search.catalog.image_ids, search.allowed_images),
            strict=True,
        ):
            started = time.perf_counter()
            found = call(black)
            times[name].append((time.perf_counter() - started) * 1000)
            if name.endswith("read"):
                read = found
            else:
                same += read.tolist() == found.tolist()
    p50 = {name: np.percentile(values, 50) for name, values in times.items()}
    p95 = {name: np.percentile(values, 95) for name, values in times.items()}
    cells = [f"{p50[name]:.1f} / {p95[name]:.1f}" for name in times]
    return (
        f"| {images:,} | {cells[0]} | {cells[1]} | x{p50['ours'] / p50['baseline']:.3f} "
        f"| {cells[2]} against {cells[3]} | {cells[4]} against {cells[5]} | {same} of {3 * changes} |"
    )


if __name__ == "__main__":
    main()
