"""The catalog and its indexes kept in step (services/search/service.py), without models: on SQLite and the
real PostgreSQL, with the FAISS indexes on the local disk and on an S3-protocol server, and with the
indexes in Milvus (milvus-lite, the engine embedded in this process)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from services.search import service
from services.search.catalog import CatalogStore
from services.search.index import IndexConfig, VectorIndex
from services.search.query import normalize_filters
from services.search.service import INDEX_KEYS, CatalogSearch, look_vectors
from shared.blobs import BlobStore, create_blob_store
from shared.db import database_engine
from shared.errors import ApiError, ErrorCode
from shared.settings import StorageSettings
from tests.catalog_data import VERSIONS, item, look
from tests.databases import database_url

COLOURS = ("블랙", "화이트", "네이비", "베이지")


@dataclass
class Stack:
    engine: object
    blobs: BlobStore
    milvus: Path | None = None  # the milvus-lite file holding the indexes; None: FAISS

    def open(self, versions: dict[str, str] = VERSIONS, config: IndexConfig | None = None) -> CatalogSearch:
        store = None
        if self.milvus is not None:
            from services.search.milvus_index import MilvusIndexes

            store = MilvusIndexes(str(self.milvus))
        catalog = CatalogStore(self.engine, self.blobs)
        search = CatalogSearch(catalog, self.blobs, versions, config, 0.05, store=store)
        search.open()
        return search


@pytest.fixture(
    params=["sqlite-local", "sqlite-s3", "postgresql-local", "postgresql-s3", "postgresql-milvus"]
)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    database, storage = request.param.split("-")
    if storage == "milvus":
        engine = database_engine(database_url(database, tmp_path, request))
        yield Stack(engine, create_blob_store(StorageSettings(), tmp_path), tmp_path / "milvus.db")
        engine.dispose()
        return
    engine = database_engine(database_url(database, tmp_path, request))
    settings = StorageSettings()
    if storage == "s3":
        settings = StorageSettings(
            backend="s3", endpoint=request.getfixturevalue("s3_endpoint"), bucket="kfashion-service",
            prefix=f"run-{tmp_path.name}", access_key="test", secret_key="test", secure=False,
            region="us-east-1",
        )  # fmt: skip
    yield Stack(engine, create_blob_store(settings, tmp_path))
    engine.dispose()


def _fill(search: CatalogSearch, images: int, seed: int = 0) -> list[int]:
    ids = []
    for n in range(images):
        colour = COLOURS[n % len(COLOURS)]
        tagged = look(
            "스트리트" if n % 2 else "모던",
            [
                item("top", "티셔츠", colour, [], seed + 2 * n),
                item("bottom", "스커트", colour, [], seed + 2 * n + 1),
            ],
        )
        ids.append(search.add(f"{n}.jpg", f"image {seed} {n}".encode(), tagged)[0])
    return ids


def test_indexes_follow_the_catalog_and_survive_reopening(stack: Stack) -> None:
    search = stack.open()
    assert search.rebuilt == {"items": "missing", "looks": "missing"}
    image_ids = _fill(search, 12)
    ids, _, vectors = search.catalog.embeddings()
    assert len(search.indexes["items"]) == 24 and len(search.indexes["looks"]) == 12
    hits = search.similar_items(vectors[5], 3)
    assert hits[0].id == ids[5] and hits[0].score == pytest.approx(1.0, abs=1e-5)
    black = search.similar_items(vectors[5], 50, {"color": ["블랙"]})
    assert len(black) == 6 and {h.id for h in black} <= set(search.catalog.item_ids({"color": ["블랙"]}))
    removed = search.delete(image_ids[2])
    assert not {h.id for h in search.similar_items(vectors[4], 30)} & set(removed)
    before = [h.id for h in search.similar_items(vectors[7], 5)]
    search.close()
    assert stack.milvus is not None or all(stack.blobs.exists(key) for key in INDEX_KEYS.values())

    reopened = stack.open()
    assert reopened.rebuilt == {}
    assert [h.id for h in reopened.similar_items(vectors[7], 5)] == before
    reopened.close()


def test_a_stale_or_foreign_index_is_rebuilt_from_the_database(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "REBUILD_PAGE_IMAGES", 2)  # a rebuild reads the 5 images in 3 pages
    first = stack.open()
    _fill(first, 4)
    first.close()
    # Another writer added images while this index was saved: the stamps differ.
    other = CatalogStore(stack.engine, stack.blobs)
    other.add("late.jpg", b"late", look("모던", [item("outer", "코트", "블랙", [], 99)]), VERSIONS)
    stale = stack.open()
    assert stale.rebuilt == {"items": "out of date", "looks": "out of date"}
    assert len(stale.indexes["items"]) == 9 and len(stale.indexes["looks"]) == 5
    ids, image_ids, vectors = stale.catalog.embeddings()
    for item_id, vector in zip(ids, vectors, strict=True):
        np.testing.assert_allclose(stale.indexes["items"].vector(item_id), vector, atol=1e-6)
    for image_id, vector in zip(*look_vectors(image_ids, vectors), strict=True):
        np.testing.assert_allclose(stale.indexes["looks"].vector(image_id), vector, atol=1e-6)
    stale.close()
    foreign = stack.open(versions=VERSIONS | {"attributes": "2"})
    assert foreign.rebuilt == {"items": "damaged or other versions", "looks": "damaged or other versions"}
    foreign.close()
    if stack.milvus is not None:
        return  # a damaged saved file is the FAISS store's case
    stack.blobs.put(INDEX_KEYS["items"], b"not an index")
    damaged = stack.open(versions=VERSIONS | {"attributes": "2"})
    assert damaged.rebuilt == {"items": "damaged or other versions"}
    assert len(damaged.indexes["items"]) == 9
    damaged.close()


def test_changes_made_elsewhere_are_picked_up(stack: Stack) -> None:
    server = stack.open()
    _fill(server, 3)
    assert not server.refresh_if_stale()
    elsewhere = stack.open()  # `kfashion catalog add` beside a running server
    _fill(elsewhere, 2, seed=100)
    elsewhere.close()
    assert server.refresh_if_stale()
    assert len(server.indexes["items"]) == 10 and len(server.indexes["looks"]) == 5
    ids, _, vectors = server.catalog.embeddings()
    assert server.similar_items(vectors[-1], 1)[0].id == ids[-1]
    server.close()


def test_large_catalogs_move_to_ivf_pq_and_keep_filters_exact(stack: Stack) -> None:
    if stack.milvus is not None:
        pytest.skip("FAISS's own IVF-PQ regime; Milvus builds its index itself")
    config = IndexConfig(128, flat_limit=200, exact_subset_limit=10, nprobe=8, train_sample=1_000)
    search = stack.open(config=config)
    _fill(search, 160)  # 320 items: over the flat limit
    index = search.indexes["items"]
    deadline = time.monotonic() + 60
    while index.kind != "ivf-pq" and time.monotonic() < deadline:  # trained in a background thread
        time.sleep(0.05)
    assert index.kind == "ivf-pq"
    ids, _, vectors = search.catalog.embeddings()
    assert [h.id for h in search.similar_items(vectors[:1][0], 1)] == [ids[0]]
    navy = set(search.catalog.item_ids({"color": ["네이비"], "region": ["top"]}))
    found = search.similar_items(vectors[0], 25, {"color": ["네이비"], "region": ["top"]})
    assert len(found) == min(25, len(navy)) and {h.id for h in found} <= navy
    search.close()
    reopened = stack.open(config=config)
    assert reopened.rebuilt == {} and reopened.indexes["items"].kind == "ivf-pq"
    reopened.close()


def test_look_vectors_are_the_mean_of_their_items(stack: Stack) -> None:
    search = stack.open()
    _fill(search, 6)
    _, image_ids, vectors = search.catalog.embeddings()
    first = image_ids[0]
    mean = vectors[image_ids == first].sum(0)
    hits = search.similar_looks(mean, 2)
    assert hits[0].id == first and hits[0].score == pytest.approx(1.0, abs=1e-5)
    modern = search.similar_looks(mean, 10, {"style": ["스트리트"]})
    assert len(modern) == 3 and first not in {h.id for h in modern}
    assert np.all(np.diff([h.score for h in hits]) <= 0)
    search.close()


def test_text_tags_rank_what_carries_most_of_them_and_filters_stay_exact(stack: Stack) -> None:
    search = stack.open()
    _fill(search, 8)  # a t-shirt and a skirt per image; colours cycle black, white, navy, beige
    rows = search.catalog.items(search.catalog.item_ids())

    def described(hits: list) -> list[tuple[str, str, tuple[str, ...] | None]]:
        return [
            (rows[h.id]["attributes"]["category"], rows[h.id]["attributes"]["color"], h.missing_tags)
            for h in hits
        ]

    tags = {"color": ["화이트"], "category": ["스커트"]}
    hits = search.text_items([], tags, 50)
    # White skirts, then skirts of other colours (the garment's kind weighs twice), then white t-shirts;
    # black, navy and beige t-shirts carry neither tag and are left out.
    found = described(hits)
    assert found[:2] == [("스커트", "화이트", ())] * 2
    assert sorted(found[2:8]) == sorted(("스커트", c, ("color",)) for c in ["블랙", "네이비", "베이지"] * 2)
    assert found[8:] == [("티셔츠", "화이트", ("category",))] * 2
    assert np.all(np.diff([h.score for h in hits]) <= 0) and 0 < hits[-1].score < hits[0].score <= 1
    assert [h.id for h in search.text_items([], tags, 3)] == [h.id for h in hits[:3]]
    # A filter is not relaxed: modern looks are the even images (black and navy), so no white at all.
    modern = search.text_items([], tags, 50, {"style": ["모던"]})
    assert sorted(described(modern)) == sorted(("스커트", c, ("color",)) for c in ["블랙", "네이비"] * 2)
    assert search.text_items(["xyzzy"], {}, 10) == []
    assert [h.missing_tags for h in search.text_items([], {}, 3)] == [None] * 3
    search.close()


def test_products_ride_with_results_filter_them_and_go_as_one(stack: Stack) -> None:
    search = stack.open()
    shirt = {"product_id": "SKU-1", "product": {"name": "Linen shirt", "price": 39000, "in_stock": True}}
    sold_out = {"product_id": "SKU-2", "product": {"name": "Wool coat", "in_stock": False}}
    first = search.add("a.jpg", b"a", look("모던", [item("top", "셔츠", "화이트", [], 1)]), shirt)[0]
    second = search.add("b.jpg", b"b", look("모던", [item("top", "셔츠", "블랙", [], 2)]), shirt)[0]
    third = search.add("c.jpg", b"c", look("모던", [item("outer", "코트", "블랙", [], 3)]), sold_out)[0]
    bare = search.add("d.jpg", b"d", look("모던", [item("top", "셔츠", "블랙", [], 4)]))[0]
    ids, image_ids, vectors = search.catalog.embeddings()
    item_of = dict(zip(image_ids.tolist(), ids.tolist(), strict=True))

    results = search.item_results(search.similar_items(vectors[0], 10))
    by_image = {r["image_id"]: r for r in results}
    assert by_image[first]["product_id"] == "SKU-1" and by_image[first]["product"]["price"] == 39000
    assert by_image[bare]["product_id"] is None and by_image[bare]["product"] is None
    # Filters read the shop's fields as text, any case; a JSON true matches "true" sent by a form.
    in_stock = search.similar_items(vectors[0], 10, normalize_filters({"product.in_stock": "TRUE"}))
    assert {h.id for h in in_stock} == {item_of[first], item_of[second]}
    priced = search.catalog.item_ids(normalize_filters({"product.price": ["39000"], "color": "black"}))
    assert priced.tolist() == [item_of[second]]
    assert search.catalog.item_ids(normalize_filters({"product_id": ["SKU-2", "SKU-9"]})).tolist() == [
        item_of[third]
    ]
    assert search.catalog.item_ids(normalize_filters({"product.name": "wool"})).tolist() == []  # whole values
    assert search.look_results(search.similar_looks(vectors[2], 1))[0]["product_id"] == "SKU-2"

    # The same bytes again with other product fields: nothing added, the product updated, the filter
    # results it changed not served from the cache.
    again = search.add("c-again.jpg", b"c", look("모던", []), {"product": {"in_stock": True}})
    assert again == (third, False)
    assert search.catalog.get(third)["product"] == {"in_stock": True}
    assert search.catalog.get(third)["product_id"] == "SKU-2"  # not given, so kept
    assert search.allowed_items(normalize_filters({"product.in_stock": "true"})).tolist() == sorted(
        [item_of[first], item_of[second], item_of[third]]
    )
    updated = search.update(bare, None, {}, {"product_id": "SKU-3", "product": None})
    assert (updated["product_id"], updated["product"]) == ("SKU-3", None)
    assert search.catalog.list_images(product_id="SKU-1")[0] == 2

    # The shop's words are searchable: a brand, a product id; a link's words are not.
    search.update(third, None, {}, {"product": {"brand": "Acme Outdoor", "url": "https://acme.example/coat"}})
    assert [h.id for h in search.text_items(["acme"], {}, 10)] == [item_of[third]]
    assert [h.id for h in search.text_items(["sku-3"], {}, 10)] == [item_of[bare]]
    assert search.text_items(["example"], {}, 10) == []

    deleted, items = search.delete_product("SKU-1")
    assert deleted == [first, second] and sorted(items) == sorted([item_of[first], item_of[second]])
    assert not {h.id for h in search.similar_items(vectors[0], 10)} & set(items)
    with pytest.raises(ApiError) as missing:
        search.delete_product("SKU-1")
    assert missing.value.code == ErrorCode.NOT_FOUND
    search.close()


def test_milvus_and_faiss_agree_on_the_same_vectors(tmp_path: Path) -> None:
    """2,000 vectors in both stores: the same top 10 for photo-like queries (near a stored vector), with and
    without a filter, the same vectors back by id, and removals honoured."""
    from services.search.milvus_index import MilvusIndexes

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((2000, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1, 2001, dtype=np.int64)
    config = IndexConfig(128)
    faiss_index = VectorIndex(config, VERSIONS)
    faiss_index.add(ids, vectors)
    milvus = MilvusIndexes(str(tmp_path / "parity.db"))
    try:
        milvus_index = milvus.create("items", config, VERSIONS)
        milvus_index.add(ids, vectors)
        queries = vectors[:50] + 0.3 * rng.standard_normal((50, 128)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        allowed = ids[ids % 7 == 0]
        for only in (None, allowed):
            ours, theirs = faiss_index.search(queries, 10, only)[1], milvus_index.search(queries, 10, only)[1]
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ours, theirs, strict=True)])
            assert recall >= 0.95, recall
            if only is not None:
                assert set(theirs.ravel()) <= set(allowed.tolist())
        np.testing.assert_allclose(milvus_index.vector(17), vectors[16], atol=1e-6)
        assert milvus_index.remove(np.array([1, 2, 99999])) == 2 and len(milvus_index) == 1998
        assert 1 not in milvus_index.search(vectors[:1], 5)[1][0]
        assert sorted(milvus_index.ids().tolist()) == list(range(3, 2001))
    finally:
        milvus.close()


def test_filters_inside_milvus_answer_as_the_database_does(tmp_path: Path) -> None:
    """Item filters run inside Milvus's search over the items' tags; on one catalog they give the same
    results as the database's allowed ids with FAISS, for attribute, style, region and product filters,
    after a tag correction and a product change too."""
    from services.search.milvus_index import MilvusIndexes

    engine = database_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    blobs = create_blob_store(StorageSettings(), tmp_path)
    faiss_search = CatalogSearch(CatalogStore(engine, blobs), blobs, VERSIONS, None, 0.05)
    faiss_search.open()
    image_ids = _fill(faiss_search, 30)
    product = {"product_id": "SKU-7", "product": {"in_stock": True, "brand": "Acme"}}
    faiss_search.add("p.jpg", b"p", look("모던", [item("top", "셔츠", "화이트", [], 77)]), product)
    milvus_search = CatalogSearch(
        CatalogStore(engine, blobs), blobs, VERSIONS, None, 0.05, store=MilvusIndexes(str(tmp_path / "m.db"))
    )
    milvus_search.open()
    _, _, vectors = faiss_search.catalog.embeddings()
    filter_sets = [
        {"color": ["블랙"]},
        {"color": ["블랙", "화이트"], "region": ["top"]},
        {"style": ["스트리트"], "category": ["스커트"]},
        {"product.in_stock": ["true"]},
        {"product_id": ["SKU-7"], "product.brand": ["acme"]},
        {"color": ["레드"]},
    ]

    def same() -> None:
        for filters in filter_sets:
            assert milvus_search.store.tags_expression(filters)
            for vector in vectors[::7]:
                ours = [h.id for h in faiss_search.similar_items(vector, 8, normalize_filters(filters))]
                theirs = [h.id for h in milvus_search.similar_items(vector, 8, normalize_filters(filters))]
                assert ours == theirs, filters

    try:
        same()
        first_item = faiss_search.catalog.get(image_ids[0])["items"][0]["id"]
        for search in (faiss_search, milvus_search):  # a tag correction, then a product change
            search.update(image_ids[0], None, {first_item: {"color": "레드"}})
            search.update(image_ids[1], None, {}, {"product_id": "SKU-7", "product": {"brand": "Acme"}})
        same()
        red = milvus_search.similar_items(vectors[0], 8, normalize_filters({"color": ["레드"]}))
        assert [h.id for h in red] == [first_item]
    finally:
        faiss_search.close()
        milvus_search.close()
        engine.dispose()
