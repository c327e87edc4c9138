"""Photo queries: the nearest catalog items by embedding, re-ordered by how well each one's tags agree with
what the attribute model read on the query garment, and by whether they are of the query garment's region.

The embedding alone mixes up neighbouring colours more often than the colour head does (a gold jacket's
nearest jackets were wine, wine, gold, navy, yellow while the head said gold at 0.94). So among the
RERANK_POOL nearest items, each item's score is its cosine similarity plus, per tag, the weight times the
probability the query garment's head gave to that item's tag. Weights chosen on one generated catalog
(seed 31) and checked on two others (docs/experiments/benchmarks-log.md, "Search quality").

The nearest items are taken from every region, and an item of another region than the query garment's loses
OTHER_REGION_PENALTY. The detector reads some garments only as another region (60 of the 2,365 labelled
garments of the bootstrap data's validation and test splits: tops as outers, dresses as bottoms or tops), in
the catalog or in the query. A search held to the query's region could never find such a garment; with the
penalty only an item much closer than the query region's best (in practice the same garment) crosses over.
The pool is twice what a region-held search needed, so other regions' items do not crowd out the query
region's (docs/experiments/benchmarks-log.md, "Every region searched").
"""

from __future__ import annotations

RERANK_POOL = 40  # nearest items the re-ordering chooses from (the next 40 for results past the 40th)
TAG_WEIGHTS = {"color": 0.05, "category": 0.1}
OTHER_REGION_PENALTY = 0.1
# Cosine similarity from which an item is taken for the query's own garment (a resized, re-encoded copy of a
# catalog picture): it agrees with every tag and region, whatever the query's reading, since the models'
# reading of one garment can change between two encodings of it (joggers or leggings at 0.14 / 0.84). So
# among items this close the cosine alone decides. On the tests' 200 generated pictures (models of
# 2026-12-07): copies 0.908-1.0, 0.964 or more for 95%; another picture's garment reached 0.97 for 5 of the
# 200, at most 0.976; every copy then finds its own garment first (by 0.013 at the least; 198 without).
SAME_GARMENT_SIMILARITY = 0.97


def pool_size(top_k: int) -> int:
    """Nearest items to fetch for top_k results: whole blocks of RERANK_POOL."""
    return -(-top_k // RERANK_POOL) * RERANK_POOL


def rerank_by_tags(
    results: list[dict], query_item: dict, top_k: int, weights: dict[str, float] = TAG_WEIGHTS
) -> list[dict]:
    """The top_k of `results` (item results, best first, `score` the cosine similarity) by cosine plus tag
    agreement with the query item; each keeps its cosine as `similarity` and gets the new `score` and
    `rank`. `weights`: per tag key, what agreement adds (benchmarks compare others). A tag the head did not
    rank among its top-k adds nothing; an item of another region than the
    query item's loses OTHER_REGION_PENALTY; an item at SAME_GARMENT_SIMILARITY or closer agrees in full.
    Re-ordered in blocks of RERANK_POOL nearest (the 40 nearest, then the next 40, ...), so a page of
    results is the same whatever page size asked for it."""
    read = {
        key: {c["value"]: c["score"] for c in query_item["attributes"].get(key, {}).get("top_k", [])}
        for key in weights
    }
    for result in results:
        if result["score"] >= SAME_GARMENT_SIMILARITY:
            agreement = sum(weights.values())
        else:
            agreement = sum(
                weight * read[key].get(result["tags"].get(key), 0.0) for key, weight in weights.items()
            )
            if result["region"] != query_item["region"]:
                agreement -= OTHER_REGION_PENALTY
        result["similarity"] = result["score"]
        result["score"] = round(result["score"] + agreement, 6)
    ranked = [  # sorted is stable: ties keep the cosine order
        result
        for start in range(0, len(results), RERANK_POOL)
        for result in sorted(results[start : start + RERANK_POOL], key=lambda r: -r["score"])
    ][:top_k]
    for rank, result in enumerate(ranked, 1):
        result["rank"] = rank
    return ranked
