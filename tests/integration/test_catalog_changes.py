"""What is read from the catalog's tags kept up to date by the changed images alone: the recommender's
state (services/recommend/model.py) and the filters' allowed items (services/search/service.py), and the
text index's postings written with each change (services/search/text.py), each against the same read or
written anew from every item, on SQLite and the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, select

from services.recommend.model import CatalogState, Recommender
from services.search.catalog import CatalogStore
from services.search.look_counts import Compatibility
from services.search.service import CHANGES_KEPT, CatalogSearch
from shared.blobs import create_blob_store
from shared.db import database_engine
from shared.errors import ApiError
from shared.schema import catalog_look_pairs, catalog_look_values, catalog_terms, catalog_text
from shared.settings import StorageSettings
from tests.catalog_data import VERSIONS, item, look
from tests.databases import database_url

QUERIES = [
    {"region": "top", "attributes": {"category": "블라우스", "color": "블랙"}, "style": ["모던"]},
    {"region": "bottom", "attributes": {"category": "스커트", "print": ["체크"]}, "style": ["스트리트"]},
    {"region": "outer", "attributes": {"category": "재킷", "color": "네이비"}, "style": []},
]


@pytest.fixture(params=["sqlite", "postgresql"])
def search(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CatalogSearch]:
    engine = database_engine(database_url(request.param, tmp_path, request))
    blobs = create_blob_store(StorageSettings(), tmp_path)
    search = CatalogSearch(CatalogStore(engine, blobs), blobs, VERSIONS)
    search.open()
    yield search
    search.close()
    engine.dispose()


def _look(n: int) -> dict:
    colours, prints = ("블랙", "화이트", "네이비"), (["체크"], [], ["도트", "스트라이프"])
    items = [
        item("top", ("블라우스", "티셔츠")[n % 2], colours[n % 3], prints[n % 3], 3 * n),
        item("bottom", ("스커트", "청바지", "팬츠")[n % 3], colours[(n + 1) % 3], [], 3 * n + 1),
    ]
    if n % 3 == 0:
        items.append(item("outer", "재킷", colours[(n + 2) % 3], [], 3 * n + 2))
    return look(("모던", "스트리트")[n % 2], items)


def _assert_same(state: CatalogState, fresh: CatalogState, fresh_looks: list[dict]) -> None:
    assert state.revision == fresh.revision
    assert state.ids.tolist() == fresh.ids.tolist()
    assert state.image_ids.tolist() == fresh.image_ids.tolist()
    assert state.product_ids.tolist() == fresh.product_ids.tolist()
    compatibility = Compatibility.counted(fresh_looks)
    for query in QUERIES:
        np.testing.assert_allclose(
            state.features.scores(query, compatibility),
            fresh.features.scores(query, compatibility),
            atol=1e-12,
        )


def _assert_counts_kept(search: CatalogSearch, looks: list[dict]) -> None:
    """The look counts in the database are those of every look (`looks`: every item) counted anew."""
    fresh = Compatibility.counted(looks)
    with search.catalog.engine.connect() as db:
        kept = Compatibility.read(db, fresh.single)  # every value's pairs
    assert (kept.images, kept.single, kept.pairs) == (fresh.images, fresh.single, fresh.pairs)


def test_a_change_of_one_image_updates_the_state_from_that_image_alone(
    search: CatalogSearch, monkeypatch: pytest.MonkeyPatch
) -> None:
    image_ids = [search.add(f"{n}.jpg", f"image {n}".encode(), _look(n))[0] for n in range(12)]
    recommender = Recommender(search)
    first = recommender.state()
    assert len(first.ids) == 28
    _assert_counts_kept(search, search.catalog.looks())
    in_pages = CatalogState.read(first.revision, search.catalog.looks_by_page(images=5))  # 3 pages
    _assert_same(in_pages, first, search.catalog.looks())

    read_images: list[set[int] | None] = []  # which images each catalog read asked for (a spy, not a mock)
    looks = search.catalog.looks
    monkeypatch.setattr(
        search.catalog, "looks", lambda images=None: read_images.append(images) or looks(images)
    )
    changes = [
        lambda: search.add("new.jpg", b"new image", _look(13), {"product_id": "SKU-1"}),
        lambda: search.delete(image_ids[3]),  # an image with an outer: its pairs with the outer go
        lambda: search.retag(image_ids[4], _look(5)),  # new items (new ids) for the same image
        lambda: search.update(  # a tag correction keeps the item's id
            image_ids[6], None, {int(first.ids[first.image_ids == image_ids[6]][0]): {"category": "셔츠"}}
        ),
        lambda: search.update(image_ids[7], None, {}, {"product_id": "SKU-2", "product": None}),
        lambda: search.add("7.jpg", b"image 7", _look(7), {"product_id": "SKU-3"}),  # stored: product only
    ]
    for change in changes:
        changed = change()
        state = recommender.state()
        assert read_images[-1] is not None and len(read_images[-1]) == 1, changed
        everything = looks()
        _assert_same(state, CatalogState.read(search.revision, [everything]), everything)
        _assert_counts_kept(search, everything)
        assert recommender.state() is state  # nothing changed since: no read
    assert len(read_images) == len(changes)
    assert state.product_ids[state.image_ids == image_ids[7]].tolist() == ["SKU-3"] * 2
    with search.catalog.engine.connect() as db:
        assert Compatibility.read(db, []).images == 12  # one added, one deleted
    assert "셔츠" in {name[2] for name in state.features.names}


def test_a_state_too_far_behind_is_read_anew(search: CatalogSearch) -> None:
    image_id = search.add("0.jpg", b"image 0", _look(0))[0]
    recommender = Recommender(search)
    state = recommender.state()
    revision, images = search.images_changed_since(state.revision)
    assert (revision, images) == (state.revision, set())
    for n in range(CHANGES_KEPT + 1):  # product changes alone: cheap, each a revision
        search.update(image_id, None, {}, {"product_id": f"SKU-{n}", "product": None})
    assert search.images_changed_since(state.revision) == (state.revision + CHANGES_KEPT + 1, None)
    assert search.images_changed_since(state.revision + 1) == (search.revision, {image_id})
    updated = recommender.state()
    assert updated.product_ids.tolist() == [f"SKU-{CHANGES_KEPT}"] * len(updated.ids)


FILTERS = [
    {"color": ["블랙"]},
    {"region": ["top"], "print": ["체크", "도트"]},
    {"style": ["모던"], "category": ["스커트", "팬츠"]},
    {"product_id": ["SKU-1", "SKU-2"]},
]


def test_filters_of_items_and_images_follow_each_change_by_reading_the_changed_image_alone(
    search: CatalogSearch, monkeypatch: pytest.MonkeyPatch
) -> None:
    image_ids = [search.add(f"{n}.jpg", f"image {n}".encode(), _look(n))[0] for n in range(12)]
    for filters in FILTERS:
        search.allowed_items(filters)
        search.allowed_images(filters)
    read_images: list[object] = []  # which images each filter read asked for (a spy, not a mock)
    item_ids, image_ids_of = search.catalog.item_ids, search.catalog.image_ids
    monkeypatch.setattr(
        search.catalog,
        "item_ids",
        lambda filters=None, images=None: read_images.append(images) or item_ids(filters, images),
    )
    monkeypatch.setattr(
        search.catalog,
        "image_ids",
        lambda filters=None, images=None: read_images.append(images) or image_ids_of(filters, images),
    )
    black_top = next(i["id"] for i in search.catalog.get(image_ids[0])["items"] if i["region"] == "top")
    assert black_top in search.allowed_items({"color": ["블랙"]}).tolist()
    changes = [
        lambda: search.add("new.jpg", b"new image", _look(12), {"product_id": "SKU-1"}),
        lambda: search.delete(image_ids[3]),
        lambda: search.retag(image_ids[4], _look(6)),
        lambda: search.update(image_ids[0], None, {black_top: {"color": "화이트"}}),
        lambda: search.update(image_ids[7], None, {}, {"product_id": "SKU-2", "product": None}),
    ]
    for change in changes:
        change()
        read_images.clear()
        for filters in FILTERS:
            assert search.allowed_items(filters).tolist() == item_ids(filters).tolist(), filters
            assert search.allowed_images(filters).tolist() == image_ids_of(filters).tolist(), filters
        assert len(read_images) == 2 * len(FILTERS) and all(len(images) == 1 for images in read_images)
    assert black_top not in search.allowed_items({"color": ["블랙"]}).tolist()


WORDS = [["블라우스"], ["black", "skirt"], ["셔츠"], ["sku"], ["new"], ["체크", "모던"], ["jacket", "navy"]]


def test_the_text_index_and_look_counts_follow_each_change_as_written_anew(search: CatalogSearch) -> None:
    image_ids = [search.add(f"{n}.jpg", f"image {n}".encode(), _look(n))[0] for n in range(12)]
    index, engine = search.text, search.catalog.engine
    shirt_top = next(i["id"] for i in search.catalog.get(image_ids[6])["items"] if i["region"] == "top")
    changes = [
        lambda: search.add("new.jpg", b"new image", _look(13), {"product_id": "SKU-1"}),
        lambda: search.delete(image_ids[3]),
        lambda: search.retag(image_ids[4], _look(5)),
        lambda: search.update(image_ids[6], None, {shirt_top: {"category": "셔츠"}}),
        lambda: search.update(image_ids[7], None, {}, {"product_id": "SKU-2", "product": None}),
        lambda: search.add("7.jpg", b"image 7", _look(7), {"product_id": "SKU-3"}),  # stored: product only
    ]
    for change in changes:
        change()
        derived_tables = (catalog_terms, catalog_look_values, catalog_look_pairs)
        with engine.connect() as db:
            kept = [sorted(db.execute(select(table)).all()) for table in derived_tables]
        scores_kept = [index.scores(words) for words in WORDS]
        with engine.begin() as db:  # written anew from every item, as a catalog from before they were kept
            for table in (catalog_text, *derived_tables):
                db.execute(delete(table))
        images = len(search.catalog.list_images(0, 100)[1])
        assert search.catalog.derive_missing() == {"text": images, "look_counts": images}
        with engine.connect() as db:
            assert [sorted(db.execute(select(table)).all()) for table in derived_tables] == kept
        for words, kept in zip(WORDS, scores_kept, strict=True):
            assert kept == pytest.approx(index.scores(words), rel=1e-12), words
    assert set(index.scores(["셔츠"])) == {shirt_top}
    with_products = (image_ids[7], search.catalog.product_image_ids("SKU-1")[0])
    assert set(index.scores(["sku"])) == {
        item["id"] for image_id in with_products for item in search.catalog.get(image_id)["items"]
    }


def test_the_check_finds_and_repairs_what_is_out_of_step(search: CatalogSearch) -> None:
    """Stored files no image refers to, an image whose file is gone, an index that lost an entry: each
    found, nothing changed without --repair, each put right with it (the database is the truth)."""
    ids = [search.add(f"look{n}.jpg", f"photo {n}".encode(), _look(n))[0] for n in range(3)]
    stray = "catalog/ff/" + "f" * 64
    search.blobs.put(stray, b"a photo whose row was never written")
    gone = ids[1]
    search.blobs.delete(search.catalog.stored_files()[gone])
    lost_item = search.catalog.get(ids[2])["items"][0]["id"]
    search.indexes["items"].remove(np.array([lost_item], np.int64))
    found = search.check()
    assert (found["files_without_image"], found["images_without_file"]) == (1, [gone])
    assert (found["database_items_not_in_index"], found["index_items_not_in_database"]) == (1, 0)
    assert search.check() == found and search.blobs.exists(stray)  # looking changes nothing
    assert search.check(repair=True)["repaired"]
    after = search.check()
    assert after["files_without_image"] == after["database_items_not_in_index"] == 0
    assert after["images_without_file"] == [] and after["images"] == 2
    assert not search.blobs.exists(stray) and lost_item in search.indexes["items"].ids()
    with pytest.raises(ApiError):
        search.catalog.get(gone)


def test_the_check_command_exits_1_until_repaired(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    stray = tmp_path / "blobs" / "catalog" / "ff" / ("f" * 64)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"a photo whose row was never written")
    command = [sys.executable, "-m", "kfashion", "catalog", "check", "--data-dir", str(tmp_path)]
    found = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert found.returncode == 1 and json.loads(found.stdout)["files_without_image"] == 1, found.stderr
    repaired = subprocess.run([*command, "--repair"], capture_output=True, text=True, timeout=120)
    assert repaired.returncode == 0 and not stray.exists() and not stray.parent.exists()
    assert subprocess.run(command, capture_output=True, timeout=120).returncode == 0
