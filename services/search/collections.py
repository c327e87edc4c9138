"""Named collections of saved search and recommendation results (catalog images or items)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from shared.errors import ApiError, ErrorCode
from shared.schema import catalog_images, collection_entries, collections

WHOLE_IMAGE = 0  # item_id of an entry that saves a whole image


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class CollectionStore:
    def __init__(self, engine: Engine):
        self.engine = engine  # the schema is the catalog's (CatalogStore migrates it)

    def create(self, name: str, description: str = "") -> dict:
        try:
            with self.engine.begin() as db:
                db.execute(insert(collections).values(name=name, description=description, created=_now()))
        except IntegrityError as exc:
            raise ApiError(
                ErrorCode.ALREADY_EXISTS, f"a collection named {name!r} exists", {"name": name}
            ) from exc
        return self.get(name)

    def add(self, name: str, entries: list[dict]) -> dict:
        """Save entries ({"image_id", "item_id"?, "score"?, "note"?}); saving one again updates it."""
        self.get(name)
        image_ids = {int(e["image_id"]) for e in entries}
        with self.engine.begin() as db:
            known = set(
                db.execute(select(catalog_images.c.id).where(catalog_images.c.id.in_(image_ids))).scalars()
            )
            missing = sorted(image_ids - known)
            if missing:
                raise ApiError(ErrorCode.NOT_FOUND, f"no catalog image {missing[0]}", {"image_ids": missing})
            for entry in entries:
                key = (int(entry["image_id"]), int(entry.get("item_id") or WHOLE_IMAGE))
                db.execute(
                    delete(collection_entries).where(
                        collection_entries.c.collection == name,
                        collection_entries.c.image_id == key[0],
                        collection_entries.c.item_id == key[1],
                    )
                )
                db.execute(
                    insert(collection_entries).values(
                        collection=name,
                        image_id=key[0],
                        item_id=key[1],
                        score=entry.get("score"),
                        note=str(entry.get("note") or ""),
                        added=_now(),
                    )
                )
        return self.get(name)

    def remove(self, name: str, image_id: int, item_id: int = WHOLE_IMAGE) -> dict:
        with self.engine.begin() as db:
            gone = db.execute(
                delete(collection_entries).where(
                    collection_entries.c.collection == name,
                    collection_entries.c.image_id == image_id,
                    collection_entries.c.item_id == item_id,
                )
            ).rowcount
        if not gone:
            raise ApiError(
                ErrorCode.NOT_FOUND,
                f"collection {name!r} has no entry for image {image_id} item {item_id}",
                {"name": name, "image_id": image_id, "item_id": item_id},
            )
        return self.get(name)

    def get(self, name: str) -> dict:
        with self.engine.connect() as db:
            row = db.execute(select(collections).where(collections.c.name == name)).mappings().first()
            if row is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"no collection named {name!r}", {"name": name})
            entries = db.execute(
                select(collection_entries, catalog_images.c.file_name, catalog_images.c.product_id)
                .join(catalog_images, catalog_images.c.id == collection_entries.c.image_id)
                .where(collection_entries.c.collection == name)
                .order_by(collection_entries.c.added, collection_entries.c.image_id)
            ).mappings()
            return {
                "name": row["name"],
                "description": row["description"],
                "created": row["created"].isoformat(sep=" ", timespec="seconds"),
                "entries": [
                    {
                        "image_id": e["image_id"],
                        "item_id": e["item_id"] or None,
                        "file_name": e["file_name"],
                        "product_id": e["product_id"],
                        "score": e["score"],
                        "note": e["note"],
                        "added": e["added"].isoformat(sep=" ", timespec="seconds"),
                        "image_url": f"/catalog/images/{e['image_id']}/file",
                    }
                    for e in entries
                ],
            }

    def list(self) -> list[dict]:
        with self.engine.connect() as db:
            rows = db.execute(
                select(collections, func.count(collection_entries.c.image_id).label("entries"))
                .outerjoin(collection_entries, collection_entries.c.collection == collections.c.name)
                .group_by(collections.c.name, collections.c.created, collections.c.description)
                .order_by(collections.c.name)
            ).mappings()
            return [
                {
                    "name": r["name"],
                    "description": r["description"],
                    "created": r["created"].isoformat(sep=" ", timespec="seconds"),
                    "entries": r["entries"],
                }
                for r in rows
            ]

    def delete(self, name: str) -> None:
        self.get(name)
        with self.engine.begin() as db:
            db.execute(delete(collection_entries).where(collection_entries.c.collection == name))
            db.execute(delete(collections).where(collections.c.name == name))
