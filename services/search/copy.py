"""Copy a catalog to another database and file store: the embedded default's SQLite and local disk to the
scale-out's PostgreSQL and S3, without tagging anything again. Images, items (with their vectors),
products and collections keep their ids, the ids' high-water mark goes along (an id is never reused,
migration 0004), and the saved indexes are copied too, so the target serves at once.

A copy stopped part-way is taken up again by the same command: images go over in pages, each page's files
before its rows, in one transaction, so the target always holds a prefix of the source."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection, Engine

from services.search.service import INDEX_KEYS
from shared.blobs import BlobStore
from shared.db import migrate
from shared.schema import catalog_images, catalog_items, collection_entries, collections

PAGE = 200  # images per transaction


class CopyRefused(ValueError):
    """The target holds something that is not an earlier copy of this catalog."""


def copy_catalog(
    source: Engine,
    source_blobs: BlobStore,
    target: Engine,
    target_blobs: BlobStore,
    on_progress: Callable[[int], None] = lambda n: None,
) -> dict[str, int]:
    """Copy everything; returns what was copied this time (images, items, collections). `on_progress`
    hears how many images are copied (an earlier run's first)."""
    migrate(source)
    migrate(target)
    done = _copied_before(source, target)
    on_progress(len(done))
    counts = {"images": 0, "items": 0, "collections": 0}
    after = max(done, default=0)
    while True:
        with source.connect() as db:
            images = (
                db.execute(
                    select(catalog_images)
                    .where(catalog_images.c.id > after)
                    .order_by(catalog_images.c.id)
                    .limit(PAGE)
                )
                .mappings()
                .all()
            )
            if not images:
                break
            ids = [row["id"] for row in images]
            items = (
                db.execute(
                    select(catalog_items)
                    .where(catalog_items.c.image_id.in_(ids))
                    .order_by(catalog_items.c.id)
                )
                .mappings()
                .all()
            )
        for row in images:  # files first: a row never names a file the target lacks
            target_blobs.put(row["blob_key"], source_blobs.get(row["blob_key"]))
        with target.begin() as db:
            db.execute(insert(catalog_images), [dict(row) for row in images])
            if items:
                db.execute(insert(catalog_items), [dict(row) for row in items])
        counts["images"] += len(images)
        counts["items"] += len(items)
        after = ids[-1]
        on_progress(len(images))
    counts["collections"] = _copy_collections(source, target)
    for table in (catalog_images, catalog_items):
        _raise_high_water(target, table.name, _high_water(source, table.name))
    for key in INDEX_KEYS.values():  # built for these very rows (their stamp is checked at start)
        if source_blobs.exists(key):
            target_blobs.put(key, source_blobs.get(key))
    return counts


def _copied_before(source: Engine, target: Engine) -> set[int]:
    """Ids of the images an earlier run copied; refused if the target holds anything else."""
    with target.connect() as db:
        there = dict(db.execute(select(catalog_images.c.id, catalog_images.c.sha256)).all())
        foreign_collections = db.execute(select(func.count()).select_from(collections)).scalar_one()
    if not there:
        if foreign_collections:
            raise CopyRefused(f"the target already holds {foreign_collections} collections")
        return set()
    with source.connect() as db:
        here = dict(
            db.execute(
                select(catalog_images.c.id, catalog_images.c.sha256).where(
                    catalog_images.c.id.in_(list(there))
                )
            ).all()
        )
    if here != there:
        raise CopyRefused(
            f"the target already holds a catalog of {len(there)} images that is not a copy of this one;"
            " copy into an empty database"
        )
    return set(there)


def _copy_collections(source: Engine, target: Engine) -> int:
    with source.connect() as db:
        named = db.execute(select(collections)).mappings().all()
        entries = db.execute(select(collection_entries)).mappings().all()
    with target.begin() as db:
        if db.execute(select(func.count()).select_from(collections)).scalar_one():
            return 0  # copied by an earlier run, in one transaction
        if named:
            db.execute(insert(collections), [dict(row) for row in named])
        if entries:
            db.execute(insert(collection_entries), [dict(row) for row in entries])
    return len(named)


def _high_water(engine: Engine, table: str) -> int:
    """The largest id the table ever handed out (deleted rows included)."""
    with engine.connect() as db:
        largest = db.execute(text(f"select coalesce(max(id), 0) from {table}")).scalar_one()
        return max(int(largest), _sequence_value(db, table))


def _sequence_value(db: Connection, table: str) -> int:
    if db.dialect.name == "sqlite":
        value = db.execute(text("select seq from sqlite_sequence where name = :t"), {"t": table}).scalar()
    elif db.dialect.name == "postgresql":
        value = db.execute(
            text(f"select case when is_called then last_value else 0 end from {_pg_sequence(db, table)}")
        ).scalar()
    else:
        value = None
    return int(value or 0)


def _pg_sequence(db: Connection, table: str) -> str:
    return db.execute(text("select pg_get_serial_sequence(:t, 'id')"), {"t": table}).scalar_one()


def _raise_high_water(engine: Engine, table: str, value: int) -> None:
    """The next id the target hands out comes after every id the source ever did (rows inserted with their
    ids do not move a PostgreSQL sequence)."""
    with engine.begin() as db:
        if _sequence_value(db, table) >= value:
            return
        if db.dialect.name == "sqlite":
            updated = db.execute(
                text("update sqlite_sequence set seq = :v where name = :t"), {"v": value, "t": table}
            ).rowcount
            if not updated:
                db.execute(
                    text("insert into sqlite_sequence (name, seq) values (:t, :v)"), {"v": value, "t": table}
                )
        elif db.dialect.name == "postgresql":
            db.execute(
                text("select setval(cast(:s as regclass), :v)"), {"s": _pg_sequence(db, table), "v": value}
            )
