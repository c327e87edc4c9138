"""The catalog store on SQLite and PostgreSQL, with image bytes on the local blob store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from services.search.catalog import CatalogStore
from shared.blobs import LocalBlobStore
from shared.db import database_engine
from shared.errors import ApiError, ErrorCode
from tests.catalog_data import VERSIONS, item, look
from tests.databases import database_url


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> CatalogStore:
    engine = database_engine(database_url(request.param, tmp_path, request))
    yield CatalogStore(engine, LocalBlobStore(tmp_path / "blobs"))
    engine.dispose()


def test_images_are_stored_once_with_their_items(catalog: CatalogStore) -> None:
    tagged = look(
        "스트리트", [item("top", "티셔츠", "블랙", ["무지"], 1), item("bottom", "스커트", "블랙", [], 2)]
    )
    image_id, created = catalog.add("a.jpg", b"jpeg bytes A", tagged, VERSIONS)
    assert created
    assert catalog.add("copy-of-a.jpg", b"jpeg bytes A", tagged, VERSIONS) == (image_id, False)
    stored = catalog.get(image_id)
    assert stored["file_name"] == "a.jpg" and stored["style"] == "스트리트" and stored["versions"] == VERSIONS
    assert [(i["region"], i["category"], i["color"]) for i in stored["items"]] == [
        ("top", "티셔츠", "블랙"),
        ("bottom", "스커트", "블랙"),
    ]
    assert stored["items"][0]["attributes"] == {"category": "티셔츠", "color": "블랙", "print": ["무지"]}
    assert catalog.image_bytes(image_id) == b"jpeg bytes A"
    ids, image_ids, vectors = catalog.embeddings()
    assert list(ids) == [i["id"] for i in stored["items"]] and vectors.shape == (2, 128)
    assert list(image_ids) == [image_id, image_id]
    assert (
        catalog.embeddings([image_id])[0].tolist() == list(ids)
        and catalog.embeddings(range(image_id, image_id + 1))[0].tolist() == list(ids)
        and catalog.embeddings([image_id + 1])[0].size == 0
    )
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_filters_select_items_exactly(catalog: CatalogStore) -> None:
    first, _ = catalog.add(
        "a.jpg", b"A", look("스트리트", [item("top", "티셔츠", "블랙", ["무지"], 1)]), VERSIONS
    )
    second, _ = catalog.add(
        "b.jpg", b"B", look("리조트", [item("top", "셔츠", "화이트", ["체크", "무지"], 2)]), VERSIONS
    )
    top_a, top_b = (catalog.get(i)["items"][0]["id"] for i in (first, second))
    assert list(catalog.item_ids()) == [top_a, top_b]
    assert list(catalog.item_ids({"color": ["블랙"]})) == [top_a]
    assert list(catalog.item_ids({"print": ["체크"]})) == [top_b]
    assert list(catalog.item_ids({"print": ["무지"], "style": ["리조트"]})) == [top_b]
    assert list(catalog.item_ids({"region": ["bottom"]})) == []


def test_delete_removes_the_image_its_items_and_bytes(catalog: CatalogStore) -> None:
    image_id, _ = catalog.add(
        "a.jpg", b"A", look("스트리트", [item("top", "티셔츠", "블랙", [], 1)]), VERSIONS
    )
    item_ids = catalog.delete(image_id)
    assert len(item_ids) == 1 and catalog.embeddings()[0].size == 0
    with pytest.raises(ApiError) as raised:
        catalog.get(image_id)
    assert raised.value.code == ErrorCode.NOT_FOUND
    assert not list(catalog.blobs.keys("catalog/"))
    assert catalog.add("a.jpg", b"A", look("스트리트", []), VERSIONS)[1]  # can come back


def test_upgrading_an_existing_sqlite_catalog_keeps_its_rows_and_ids_are_never_reused(tmp_path: Path) -> None:
    from sqlalchemy import insert, select

    from shared.db import migrate
    from shared.schema import catalog_images, catalog_items, collection_entries, collections

    engine = database_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "0003")  # a catalog made before migration 0004
    with engine.begin() as db:
        db.execute(
            insert(catalog_images).values(
                id=1, sha256="a" * 64, file_name="a.jpg", blob_key="k", width=8, height=8, styles=[],
                created=datetime(2026, 1, 1), versions={},
            )
        )  # fmt: skip
        db.execute(
            insert(catalog_items).values(
                id=1, image_id=1, region="top", box=[0, 0, 1, 1], score=0.9, attributes={}, embedding=b""
            )
        )
        db.execute(insert(collections).values(name="picks", created=datetime(2026, 1, 1)))
        db.execute(
            insert(collection_entries).values(
                collection="picks", image_id=1, item_id=1, added=datetime(2026, 1, 1)
            )
        )
    migrate(engine)
    catalog = CatalogStore(engine, LocalBlobStore(tmp_path / "blobs"))
    with engine.connect() as db:  # nothing was lost to the table rebuild (no cascade)
        assert db.execute(select(catalog_items.c.id)).scalars().all() == [1]
        assert db.execute(select(collection_entries.c.item_id)).scalars().all() == [1]
    # The text index and the look counts, kept in the database since migrations 0009-0010, are made at open.
    assert catalog.text.scores(["top"]) == {}
    assert catalog.derive_missing() == {"text": 1, "look_counts": 1}
    assert catalog.derive_missing() == {"text": 0, "look_counts": 0}
    assert list(catalog.text.scores(["top"])) == [1]
    image_id, _ = catalog.add("b.jpg", b"B", look("모던", [item("top", "티셔츠", "블랙", [], 5)]), VERSIONS)
    newest = catalog.get(image_id)["items"][0]["id"]
    catalog.delete(image_id)
    again, _ = catalog.add("b.jpg", b"B", look("모던", [item("top", "티셔츠", "블랙", [], 5)]), VERSIONS)
    assert again > image_id and catalog.get(again)["items"][0]["id"] > newest
    engine.dispose()
