"""The catalog: tagged images stored once (content hash) with their items, attributes and embeddings, in
the relational database (metadata) and the blob store (the image bytes)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from services.attributes.model import label_values
from shared.blobs import BlobStore
from shared.db import migrate
from shared.errors import ApiError, ErrorCode
from shared.heads import EMBEDDING_DIM
from shared.schema import catalog_images, catalog_items


class CatalogStore:
    def __init__(self, engine: Engine, blobs: BlobStore):
        self.engine = engine
        self.blobs = blobs
        migrate(engine)

    def add(self, file_name: str, data: bytes, result: dict, versions: dict[str, str]) -> tuple[int, bool]:
        """Store a tagged image (a /tagging result with embeddings); (image id, False) if the same bytes are
        already in the catalog."""
        digest = hashlib.sha256(data).hexdigest()
        existing = self._id_of(digest)
        if existing is not None:
            return existing, False
        key = f"catalog/{digest[:2]}/{digest}"
        self.blobs.put(key, data)
        image = {
            "sha256": digest,
            "file_name": file_name,
            "blob_key": key,
            "width": result["width"],
            "height": result["height"],
            "style": result.get("style"),
            "sub_style": result.get("sub_style"),
            "styles": result.get("styles", []),
            "created": datetime.now(UTC).replace(tzinfo=None),
            "versions": versions,
        }
        try:
            with self.engine.begin() as db:
                image_id = db.execute(insert(catalog_images).values(**image)).inserted_primary_key[0]
                items = [self._item_row(image_id, item) for item in result["items"]]
                if items:
                    db.execute(insert(catalog_items), items)
        except IntegrityError:  # the same image added at the same moment by another request
            existing = self._id_of(digest)
            if existing is None:
                raise
            return existing, False
        return int(image_id), True

    @staticmethod
    def _item_row(image_id: int, item: dict) -> dict:
        embedding = np.asarray(item["embedding"], np.float32)
        if embedding.shape != (EMBEDDING_DIM,):
            raise ValueError(f"an item's embedding must have {EMBEDDING_DIM} values")
        values = label_values(item["attributes"])
        return {
            "image_id": image_id,
            "region": item["region"],
            "box": item["box"],
            "score": item["score"],
            "category": values.get("category"),
            "color": values.get("color"),
            "attributes": values,
            "embedding": embedding.astype("<f4").tobytes(),
        }

    def _id_of(self, digest: str) -> int | None:
        with self.engine.connect() as db:
            return db.execute(select(catalog_images.c.id).where(catalog_images.c.sha256 == digest)).scalar()

    def get(self, image_id: int) -> dict:
        with self.engine.connect() as db:
            image = (
                db.execute(select(catalog_images).where(catalog_images.c.id == image_id)).mappings().first()
            )
            if image is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"no catalog image {image_id}", {"image_id": image_id})
            items = db.execute(
                select(catalog_items).where(catalog_items.c.image_id == image_id).order_by(catalog_items.c.id)
            ).mappings()
            return {
                **{k: v for k, v in image.items() if k != "created"},
                "created": image["created"].isoformat(sep=" ", timespec="seconds"),
                "items": [{k: v for k, v in item.items() if k != "embedding"} for item in items],
            }

    def image_bytes(self, image_id: int) -> bytes:
        return self.blobs.get(self.get(image_id)["blob_key"])

    def delete(self, image_id: int) -> list[int]:
        """Remove an image, its items and its bytes; returns the removed item ids (for the indexes)."""
        image = self.get(image_id)
        with self.engine.begin() as db:
            db.execute(delete(catalog_items).where(catalog_items.c.image_id == image_id))
            db.execute(delete(catalog_images).where(catalog_images.c.id == image_id))
        self.blobs.delete(image["blob_key"])
        return [item["id"] for item in image["items"]]

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """Every item's id and embedding, to (re)build the item index."""
        with self.engine.connect() as db:
            rows = db.execute(
                select(catalog_items.c.id, catalog_items.c.embedding).order_by(catalog_items.c.id)
            ).all()
        ids = np.array([r.id for r in rows], np.int64)
        vectors = np.frombuffer(b"".join(r.embedding for r in rows), "<f4").reshape(len(rows), EMBEDDING_DIM)
        return ids, vectors.astype(np.float32)

    def item_ids(self, filters: dict[str, Iterable[str]] | None = None) -> np.ndarray:
        """Ids of the items whose values match every filter (any of the values given for a key): region,
        style (the image's main or sub-style), or any attribute key (multi-valued ones match any value)."""
        query = select(
            catalog_items.c.id,
            catalog_items.c.region,
            catalog_items.c.attributes,
            catalog_images.c.style,
            catalog_images.c.sub_style,
        ).join(catalog_images, catalog_images.c.id == catalog_items.c.image_id)
        wanted = {key: set(values) for key, values in (filters or {}).items()}
        # Indexed columns narrow in SQL; JSON attributes are checked here (portable across databases).
        for key in ("region", "category", "color"):
            if key in wanted:
                query = query.where(catalog_items.c[key].in_(sorted(wanted[key])))
        matched = []
        with self.engine.connect() as db:
            for row in db.execute(query.order_by(catalog_items.c.id)):
                if all(_matches(row, key, values) for key, values in wanted.items()):
                    matched.append(row.id)
        return np.array(matched, np.int64)


def _matches(row: object, key: str, values: set[str]) -> bool:
    if key == "region":
        return row.region in values
    if key == "style":
        return bool({row.style, row.sub_style} & values)
    value = row.attributes.get(key)
    present = set(value) if isinstance(value, list) else {value}
    return bool(present & values)
