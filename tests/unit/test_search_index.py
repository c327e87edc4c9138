"""The vector index of services/search: exact while small, IVF-PQ with exact re-ranking once large,
filters inside the search, add and remove without a rebuild, a rebuild that runs beside changes, and
persistence that refuses an index built from other versions."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from services.search.index import IndexConfig, VectorIndex

DIM = 64
VERSIONS = {"taxonomy": "kfashion-1+test", "attributes": "1"}


def clustered(rng: np.random.Generator, n: int, clusters: int = 200) -> np.ndarray:
    """Unit vectors around cluster centres, like embeddings of similar garments."""
    centres = rng.normal(size=(clusters, DIM)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.4 * rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    return ids[np.argsort(-(queries @ vectors.T), axis=1)[:, :k]]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    vectors = clustered(rng, 20_000)
    ids = rng.permutation(10**6)[:20_000].astype(np.int64)  # ids are not positions
    return ids, vectors, clustered(rng, 50)


@pytest.fixture(scope="module")
def large(data: tuple) -> VectorIndex:
    ids, vectors, _ = data
    index = VectorIndex(IndexConfig(DIM, flat_limit=5_000, exact_subset_limit=500), VERSIONS)
    index.add(ids, vectors)
    assert index.needs_rebuild()
    index.rebuild()
    assert index.kind == "ivf-pq" and not index.needs_rebuild()
    return index


def filled(config: IndexConfig, data: tuple, large: VectorIndex) -> VectorIndex:
    """An index of every vector under `config`, to change freely: exact when they fit its flat limit, else a
    copy of the module's trained IVF-PQ index (through its saved form), since training one on 20,000
    vectors takes most of this file's time."""
    ids, vectors, _ = data
    if len(ids) <= config.flat_limit:
        index = VectorIndex(config, VERSIONS)
        index.add(ids, vectors)
        index.rebuild()
        return index
    copy = VectorIndex.loads(large.dumps(), config, VERSIONS)
    assert copy is not None and copy.kind == "ivf-pq"
    return copy


def test_small_index_is_exact(data: tuple) -> None:
    ids, vectors, queries = data
    index = VectorIndex(IndexConfig(DIM), VERSIONS)
    index.add(ids[:3000], vectors[:3000])
    scores, found = index.search(queries, 10)
    assert index.kind == "flat"
    np.testing.assert_array_equal(found, brute_force(queries, vectors[:3000], ids[:3000], 10))
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_large_index_recall_against_exact_search(data: tuple, large: VectorIndex) -> None:
    ids, vectors, queries = data
    _, found = large.search(queries, 10)
    truth = brute_force(queries, vectors, ids, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.9, recall


@pytest.mark.parametrize("share", [0.01, 0.3])  # exact over the allowed subset, and IVF with a selector
def test_filters_are_applied_inside_the_search(data: tuple, large: VectorIndex, share: float) -> None:
    ids, vectors, queries = data
    rng = np.random.default_rng(1)
    allowed = ids[rng.random(len(ids)) < share]
    _scores, found = large.search(queries, 10, allowed)
    assert np.isin(found, allowed).all() and (found >= 0).all()  # k came back: k allowed ones exist
    mask = np.isin(ids, allowed)
    truth = brute_force(queries, vectors[mask], ids[mask], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.9, recall


def test_fewer_allowed_than_k_returns_them_all(large: VectorIndex, data: tuple) -> None:
    ids, _, queries = data
    scores, found = large.search(queries[:3], 10, ids[:4])
    assert all(set(row[:4]) == set(ids[:4]) for row in found)
    assert (found[:, 4:] == -1).all() and np.isneginf(scores[:, 4:]).all()


def test_a_filter_follows_adds_and_removals(data: tuple, large: VectorIndex) -> None:
    """The filter's ids are looked up in the sorted stored ids, sorted again after every change: ids not
    stored are left out, a removed one is gone at once, one added back is found again."""
    ids, vectors, queries = data
    for flat_limit in (50_000, 5_000):  # exact over the allowed ones, and IVF with a bitmap of them
        index = filled(IndexConfig(DIM, flat_limit=flat_limit, exact_subset_limit=10), data, large)
        allowed = np.concatenate([ids[:30], [10**9, 10**9 + 1]])  # two ids never stored
        _, found = index.search(queries[:5], 40, allowed)
        assert set(found[:, :30].ravel()) == set(ids[:30]) and (found[:, 30:] == -1).all()
        index.remove(ids[:10])
        _, found = index.search(queries[:5], 40, allowed)
        assert set(found[:, :20].ravel()) == set(ids[10:30]) and (found[:, 20:] == -1).all()
        index.add(ids[:5], vectors[:5])
        _, found = index.search(queries[:5], 40, allowed)
        assert set(found[:, :25].ravel()) == set(ids[:5]) | set(ids[10:30])
    with pytest.raises(ValueError, match="negative"):
        index.add(np.array([-1]), vectors[:1])
    assert len(index) == len(ids) - 5


def test_removed_vectors_never_come_back_and_add_replaces(data: tuple, large: VectorIndex) -> None:
    ids, _, queries = data
    for flat_limit in (50_000, 5_000):  # both regimes
        index = filled(IndexConfig(DIM, flat_limit=flat_limit), data, large)
        _, before = index.search(queries, 5)
        gone = np.unique(before[:, 0])
        assert index.remove(gone) == len(gone) and len(index) == len(ids) - len(gone)
        _, after = index.search(queries, 5)
        assert not np.isin(after, gone).any()
        moved = ids[0]
        index.add(np.array([moved]), queries[:1])  # same id, new vector: found as the query's own
        assert index.search(queries[:1], 1)[1][0, 0] == moved and len(index) == len(ids) - len(gone)


def test_rebuild_runs_beside_changes(data: tuple) -> None:
    ids, vectors, queries = data
    index = VectorIndex(IndexConfig(DIM, flat_limit=5_000), VERSIONS)
    index.add(ids, vectors)
    builder = threading.Thread(target=index.rebuild)
    builder.start()
    removed = ids[:100]
    index.remove(removed)
    index.add(np.array([10**7]), queries[:1])
    assert index.search(queries[:1], 1)[1][0, 0] == 10**7  # queries work while it builds
    builder.join()
    assert index.kind == "ivf-pq"
    assert index.search(queries[:1], 1)[1][0, 0] == 10**7
    _, found = index.search(vectors[:100], 3)
    assert not np.isin(found, removed).any()


def test_saved_index_loads_only_for_the_same_versions(large: VectorIndex, data: tuple) -> None:
    _, _, queries = data
    large.stamp = {"items": len(large)}
    saved = large.dumps()
    config = large.config
    loaded = VectorIndex.loads(saved, config, VERSIONS)
    assert loaded is not None and loaded.kind == "ivf-pq" and len(loaded) == len(large)
    assert loaded.stamp == {"items": len(large)}
    np.testing.assert_array_equal(loaded.search(queries, 10)[1], large.search(queries, 10)[1])
    assert VectorIndex.loads(saved, config, VERSIONS | {"attributes": "2"}) is None
    assert VectorIndex.loads(saved[: len(saved) // 2], config, VERSIONS) is None  # truncated
    flat = VectorIndex(config, VERSIONS)
    flat.add(np.arange(3), queries[:3])
    reloaded = VectorIndex.loads(flat.dumps(), config, VERSIONS)
    assert reloaded is not None and reloaded.kind == "flat" and reloaded.search(queries[:1], 1)[1][0, 0] == 0
