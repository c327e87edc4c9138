"""Search quality on a shop-sized catalog (issue 5): top-5 same category and colour, per photo and garment.

    .venv/bin/python -m bench.search_quality [--models models] [--catalog-seed 11] [--catalog 1000]
        [--weights 0.05:0.1 0.1:0.2 ...]

Starts the embedded server on the given models, adds a catalog of generated pictures through
/catalog/images, and asks 300 unseen generated photos (seed 777):
- per photo, as tests/integration/test_search_api.py's shop-sized test does (the same scoring code): the
  query item is
  the garment the models read most surely; "judged" photos are those whose query item is labelled and has
  an item of its category and colour in the catalog;
- per garment: every labelled garment of every photo in turn, with `region` set to its region; a photo in
  which no garment of that region is found counts as a miss; "answerable" garments are those with an item
  of their category and colour in the catalog (as "judged" per photo).
Seed 11 is the test's catalog; another seed is a catalog the search weights were not chosen on.
With `--weights COLOUR:CATEGORY ...`, instead of the per-garment figures, the per-photo figure for each
pair of tag weights of the re-ordering (services/search/rerank.py), from the same answers: each photo's
RERANK_POOL nearest items asked once, re-ordered here by each pair (the served pair gives the served
answer).
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from services.search import rerank
from tests.conftest import UNSEEN_SEED
from tests.integration.test_search_api import (
    CATALOG_BATCH,
    SHOP_QUERIES,
    _add_to_catalog,
    _judging,
    _label_pair,
    _photo_search,
    _top5_same_category_colour,
)
from tests.servers import Server, gateway_env
from training.data import Sample, load_samples
from training.synth.dataset import generate_dataset


@dataclass
class PerGarment:
    """Per region: garments asked, and those whose 5 results hold an item of their category and colour;
    and how many garments have such an item in the catalog (only those can be hits)."""

    asked: Counter = field(default_factory=Counter)
    hits: Counter = field(default_factory=Counter)
    answerable: int = 0


def per_garment(url: str, catalog: list[Sample], queries: list[Sample]) -> PerGarment:
    truth, in_catalog = _judging(catalog, queries)
    score = PerGarment()
    for sample in queries:
        data = sample.image_path.read_bytes()
        for item in sample.record.items:
            wanted = _label_pair(item)
            score.asked[item.region] += 1
            score.answerable += bool(in_catalog[wanted])
            response = _photo_search(url, sample.image_path.name, data, top_k="5", region=item.region)
            if response.status_code != 200:  # no garment of that region found
                continue
            found = [truth.get((r["file_name"], r["region"])) for r in response.json()["body"]["results"]]
            score.hits[item.region] += wanted in found
    return score


def per_weights(
    url: str, catalog: list[Sample], queries: list[Sample], weights: list[tuple[float, float]]
) -> dict[tuple[float, float], float]:
    """Per (colour, category) tag weight pair: the judged photos' top-5 share, re-ordered from one answer of
    RERANK_POOL results per photo."""
    truth, in_catalog = _judging(catalog, queries)
    answers = []
    for sample in queries:
        data = sample.image_path.read_bytes()
        response = _photo_search(url, sample.image_path.name, data, top_k=str(rerank.RERANK_POOL))
        if response.status_code != 200:
            continue
        body = response.json()["body"]
        wanted = truth.get((sample.image_path.name, body["query"]["item"]["region"]))
        if wanted is not None and in_catalog[wanted]:
            answers.append((wanted, body["query"]["item"], body["results"]))
    shares = {}
    for colour, category in weights:
        hits = 0
        for wanted, item, results in answers:
            nearest = sorted(
                ({**r, "score": r["similarity"]} for r in results), key=lambda r: -r["similarity"]
            )
            top5 = rerank.rerank_by_tags(nearest, item, 5, {"color": colour, "category": category})
            hits += wanted in [truth.get((r["file_name"], r["region"])) for r in top5]
        shares[(colour, category)] = hits / len(answers)
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--catalog-seed", type=int, default=11)
    parser.add_argument("--catalog", type=int, default=1000, help="catalog images")
    parser.add_argument("--weights", nargs="*", default=[], help="COLOUR:CATEGORY tag weights to compare")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate_dataset(folder / "catalog", args.catalog, args.catalog_seed, workers=2)
        generate_dataset(folder / "queries", SHOP_QUERIES, UNSEEN_SEED, workers=2)
        catalog, queries = load_samples(folder / "catalog")[0], load_samples(folder / "queries")[0]
        env = gateway_env(folder / "data") | {
            "KFASHION_GATEWAY__SYNC_MAX_IMAGES": str(CATALOG_BATCH),
            "KFASHION_MODELS_DIR": str(args.models.resolve()),
        }
        server = Server([], env, log=folder / "server.log").start()
        try:
            _add_to_catalog(server.url, catalog)
            photo = _top5_same_category_colour(server.url, catalog, queries)
            pairs = [tuple(float(v) for v in w.split(":")) for w in args.weights]
            by_weights = per_weights(server.url, catalog, queries, pairs) if pairs else {}
            garments = None if pairs else per_garment(server.url, catalog, queries)
        finally:
            server.kill()
    print(f"models {args.models}, catalog of {args.catalog} images (seed {args.catalog_seed})")
    print(
        f"per photo: {photo.judged_hits}/{photo.judged} judged = {photo.judged_hits / photo.judged:.3f}; "
        f"hits / all {photo.hits}/{SHOP_QUERIES}"
    )
    for (colour, category), share in by_weights.items():
        print(f"tag weights colour {colour}, category {category}: per photo, judged {share:.3f}")
    if garments is None:
        return
    asked, hits = garments.asked, garments.hits
    total_hits, total = sum(hits.values()), sum(asked.values())
    regions = ", ".join(f"{r} {hits[r] / asked[r]:.2f}" for r in sorted(asked))
    print(f"per garment: {total_hits}/{total} = {total_hits / total:.3f} ({regions})")
    print(
        f"per garment, answerable: {total_hits}/{garments.answerable} = "
        f"{total_hits / garments.answerable:.3f}"
    )


if __name__ == "__main__":
    main()
