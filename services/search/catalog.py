"""The catalog: tagged images stored once (content hash) with their items, attributes and embeddings, in
the relational database (metadata) and the blob store (the image bytes)."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from services.search.look_counts import Compatibility
from services.search.products import PRODUCT_FILTER_PREFIX, filter_text, is_product_filter
from services.search.text import CatalogText, item_documents
from shared.blobs import BlobStore
from shared.db import migrate, migration_lock
from shared.errors import ApiError, ErrorCode
from shared.heads import EMBEDDING_DIM
from shared.imaging import capture_date
from shared.labels import label_values
from shared.schema import catalog_images, catalog_items, catalog_look_pairs, catalog_look_values

FILES_PREFIX = "catalog/"  # where the photos' bytes are stored (blob keys), by content hash


class CatalogStore:
    def __init__(self, engine: Engine, blobs: BlobStore):
        self.engine = engine
        self.blobs = blobs
        migrate(engine)
        self.text = CatalogText(engine)  # its postings change in the transactions below, with the items

    def add(
        self,
        file_name: str,
        data: bytes,
        result: dict,
        versions: dict[str, str],
        product: dict[str, Any] | None = None,
    ) -> tuple[int, bool]:
        """Store a tagged image (a /tagging result with embeddings) with its product
        (`ProductFields.changes`); (image id, False) if the same bytes are already in the catalog, whose
        product is then updated."""
        product = product or {}
        digest = hashlib.sha256(data).hexdigest()
        existing = self._id_of(digest)
        if existing is not None:
            self.set_product(existing, product)
            return existing, False
        key = f"{FILES_PREFIX}{digest[:2]}/{digest}"
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
            "captured": capture_date(data),
            "versions": versions,
            **product,
        }
        try:
            with self.engine.begin() as db:
                image_id = db.execute(insert(catalog_images).values(**image)).inserted_primary_key[0]
                items = [self._item_row(image_id, item) for item in result["items"]]
                if items:
                    db.execute(insert(catalog_items), items)
                self._derive(db, [image_id], [])
        except IntegrityError:  # the same image added at the same moment by another request
            existing = self._id_of(digest)
            if existing is None:
                raise
            self.set_product(existing, product)
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
            return _image_json(image) | {
                "items": [{k: v for k, v in item.items() if k != "embedding"} for item in items]
            }

    def set_product(self, image_id: int, product: dict[str, Any]) -> None:
        """Set the product id and/or fields given (`ProductFields.changes`) on an image."""
        if product:
            with self.engine.begin() as db:
                before = self._forget(db, [image_id])  # the product's words are in its items' documents
                db.execute(update(catalog_images).where(catalog_images.c.id == image_id).values(**product))
                self._derive(db, [image_id], before)

    def product_image_ids(self, product_id: str) -> list[int]:
        with self.engine.connect() as db:
            query = select(catalog_images.c.id).where(catalog_images.c.product_id == product_id)
            return list(db.execute(query.order_by(catalog_images.c.id)).scalars())

    def image_bytes(self, image_id: int) -> bytes:
        return self.blobs.get(self._blob_key(image_id))

    def _blob_key(self, image_id: int) -> str:
        """Where an image's bytes are stored: the service's own business, never in an answer."""
        with self.engine.connect() as db:
            key = db.execute(
                select(catalog_images.c.blob_key).where(catalog_images.c.id == image_id)
            ).scalar()
        if key is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no catalog image {image_id}", {"image_id": image_id})
        return key

    def delete(self, image_id: int) -> list[int]:
        """Remove an image, its items and its bytes; returns the removed item ids (for the indexes)."""
        image, key = self.get(image_id), self._blob_key(image_id)
        with self.engine.begin() as db:
            before = self._forget(db, [image_id])
            db.execute(delete(catalog_items).where(catalog_items.c.image_id == image_id))
            db.execute(delete(catalog_images).where(catalog_images.c.id == image_id))
            self._derive(db, [image_id], before)
        self.blobs.delete(key)
        return [item["id"] for item in image["items"]]

    def stored_files(self) -> dict[int, str]:
        """Image id -> where its bytes are stored, for every image (the check's; never in answers)."""
        with self.engine.connect() as db:
            return dict(db.execute(select(catalog_images.c.id, catalog_images.c.blob_key)).all())

    def all_item_ids(self) -> set[int]:
        with self.engine.connect() as db:
            return set(db.execute(select(catalog_items.c.id)).scalars())

    def embeddings(
        self, image_ids: Collection[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item ids, their image ids, embeddings) of every item, or of the given images' (a `range` from
        `image_ranges` is read as one), for the indexes."""
        query = select(catalog_items.c.id, catalog_items.c.image_id, catalog_items.c.embedding)
        if image_ids is not None:
            query = query.where(_of_images(catalog_items.c.image_id, image_ids))
        with self.engine.connect() as db:
            rows = db.execute(query.order_by(catalog_items.c.id)).all()
        ids = np.array([r.id for r in rows], np.int64)
        image_ids = np.array([r.image_id for r in rows], np.int64)
        vectors = np.frombuffer(b"".join(r.embedding for r in rows), "<f4").reshape(len(rows), EMBEDDING_DIM)
        return ids, image_ids, vectors.astype(np.float32)

    def stamp(self) -> dict[str, int]:
        """Which state the catalog is in, cheaply: an index saved with another stamp is out of date (an
        item added, removed or replaced changes the count or the sum of ids, which only grow)."""
        with self.engine.connect() as db:
            items = db.execute(select(func.count(), func.coalesce(func.sum(catalog_items.c.id), 0))).one()
            images = db.execute(select(func.count(), func.coalesce(func.sum(catalog_images.c.id), 0))).one()
        return {
            "items": items[0],
            "item_ids": int(items[1]),
            "images": images[0],
            "image_ids": int(images[1]),
        }

    def list_images(
        self, offset: int = 0, limit: int = 50, product_id: str | None = None
    ) -> tuple[int, list[dict]]:
        """(total, one page of images, newest first, without their items), of one product if given."""
        where = [catalog_images.c.product_id == product_id] if product_id is not None else []
        with self.engine.connect() as db:
            total = db.execute(select(func.count()).select_from(catalog_images).where(*where)).scalar_one()
            rows = db.execute(
                select(catalog_images)
                .where(*where)
                .order_by(catalog_images.c.id.desc())
                .offset(offset)
                .limit(limit)
            ).mappings()
            return total, [_image_json(row) for row in rows]

    def stale_image_ids(self, versions: dict[str, str]) -> list[int]:
        """Images tagged by other models (or another taxonomy) than `versions`: to re-tag."""
        with self.engine.connect() as db:
            rows = db.execute(
                select(catalog_images.c.id, catalog_images.c.versions).order_by(catalog_images.c.id)
            )
            return [row.id for row in rows if row.versions != versions]

    def replace_tags(self, image_id: int, result: dict, versions: dict[str, str]) -> list[int]:
        """Replace an image's items, styles and versions with a new tagging of the same bytes (a model
        upgrade); returns the ids of the items replaced."""
        old = [item["id"] for item in self.get(image_id)["items"]]
        with self.engine.begin() as db:
            before = self._forget(db, [image_id])
            db.execute(delete(catalog_items).where(catalog_items.c.image_id == image_id))
            db.execute(
                update(catalog_images)
                .where(catalog_images.c.id == image_id)
                .values(
                    style=result.get("style"),
                    sub_style=result.get("sub_style"),
                    styles=result.get("styles", []),
                    versions=versions,
                )
            )
            items = [self._item_row(image_id, item) for item in result["items"]]
            if items:
                db.execute(insert(catalog_items), items)
            self._derive(db, [image_id], before)
        return old

    def update(
        self,
        image_id: int,
        file_name: str | None,
        item_values: dict[int, dict],
        product: dict[str, Any] | None = None,
    ) -> dict:
        """Rename an image, set its product (`ProductFields.changes`) or correct its items' attributes
        (label-format values, already checked against the taxonomy); other values stay as they are."""
        image = self.get(image_id)
        known = {item["id"]: item for item in image["items"]}
        unknown = sorted(set(item_values) - set(known))
        if unknown:
            raise ApiError(
                ErrorCode.NOT_FOUND,
                f"image {image_id} has no item {unknown[0]}",
                {"image_id": image_id, "items": sorted(known)},
            )
        with self.engine.begin() as db:
            before = self._forget(db, [image_id])
            changes = {**({"file_name": file_name} if file_name else {}), **(product or {})}
            if changes:
                db.execute(update(catalog_images).where(catalog_images.c.id == image_id).values(**changes))
            for item_id, values in item_values.items():
                merged = {**known[item_id]["attributes"], **values}
                db.execute(
                    update(catalog_items)
                    .where(catalog_items.c.id == item_id)
                    .values(attributes=merged, category=merged.get("category"), color=merged.get("color"))
                )
            self._derive(db, [image_id], before)
        return self.get(image_id)

    def items(self, item_ids: Iterable[int]) -> dict[int, dict]:
        """Items by id with their image's name, style and size (for search results)."""
        wanted = [int(i) for i in item_ids]
        if not wanted:
            return {}
        query = (
            select(
                catalog_items.c.id,
                catalog_items.c.image_id,
                catalog_items.c.region,
                catalog_items.c.box,
                catalog_items.c.score,
                catalog_items.c.attributes,
                catalog_images.c.file_name,
                catalog_images.c.style,
                catalog_images.c.sub_style,
                catalog_images.c.width,
                catalog_images.c.height,
                catalog_images.c.product_id,
                catalog_images.c.product,
            )
            .join(catalog_images, catalog_images.c.id == catalog_items.c.image_id)
            .where(catalog_items.c.id.in_(wanted))
        )
        with self.engine.connect() as db:
            return {row.id: dict(row._mapping) for row in db.execute(query)}

    def item_filter_tags(self, image_ids: Collection[int] | None = None) -> dict[int, list[str]]:
        """Item id -> `filter_tags` of every item, or of the given images' items."""
        return {row["id"]: filter_tags(SimpleNamespace(**row)) for row in self.looks(image_ids)}

    def detection_scores(self, item_ids: Iterable[int]) -> dict[int, float]:
        """Items' detection scores by id (text queries rank by them): one narrow column, not whole rows."""
        wanted = [int(i) for i in item_ids]
        if not wanted:
            return {}
        query = select(catalog_items.c.id, catalog_items.c.score).where(catalog_items.c.id.in_(wanted))
        with self.engine.connect() as db:
            return {row.id: row.score for row in db.execute(query)}

    # What is derived from the items (the text index's postings, the looks' co-occurrence counts) changes in
    # the transaction that changes them: `_forget` before, `_derive` after.

    def _forget(self, db: Connection, image_ids: Collection[int]) -> list[dict]:
        """Take these images' items out of the text index (before the rows change: a deleted item's
        postings go with it); their looks as they are, for `_derive`."""
        before = _looks(db, image_ids)
        self.text.remove(db, [row["id"] for row in before])
        return before

    def _derive(self, db: Connection, image_ids: Collection[int], before: list[dict]) -> None:
        """These images' items into the text index and the look counts, as `db` holds them now."""
        looks = _looks(db, image_ids)
        self.text.add(db, item_documents(looks))
        Compatibility.counted(looks, before).write(db)

    def derive_missing(self, batch: int = 2_000) -> dict[str, int]:
        """Index and count what a catalog written before the text index and the look counts lived in the
        database lacks (one process at a time), a batch of images per transaction; how many images each
        took."""
        with migration_lock(self.engine):
            with self.engine.connect() as db:
                unindexed = self.text.unindexed_images(db)
                looks_counted = Compatibility.read(db, []).images
                with_items = select(func.count(func.distinct(catalog_items.c.image_id)))
                recount = looks_counted != db.execute(with_items).scalar_one()
                every_image = select(catalog_images.c.id).order_by(catalog_images.c.id)
                images = list(db.execute(every_image).scalars()) if recount else []
            if recount:
                with self.engine.begin() as db:
                    db.execute(delete(catalog_look_pairs))
                    db.execute(delete(catalog_look_values))
            for start in range(0, len(images), batch):
                with self.engine.begin() as db:
                    Compatibility.counted(_looks(db, images[start : start + batch])).write(db)
            for start in range(0, len(unindexed), batch):
                with self.engine.begin() as db:
                    self.text.add(db, item_documents(_looks(db, unindexed[start : start + batch])))
        return {"text": len(unindexed), "look_counts": len(images)}

    def image_ranges(self, images: int = 10_000) -> Iterator[range]:
        """Every image id, in ranges of `images` images each (ascending): the pages a reader of the whole
        catalog holds one at a time."""
        after = 0
        while True:
            with self.engine.connect() as db:
                query = select(catalog_images.c.id).where(catalog_images.c.id > after)
                page = list(db.execute(query.order_by(catalog_images.c.id).limit(images)).scalars())
            if not page:
                return
            yield range(page[0], page[-1] + 1)
            after = page[-1]

    def looks_by_page(self, images: int = 10_000) -> Iterator[list[dict]]:
        """`looks` of every image, a page of `images` images at a time (by id)."""
        for image_ids in self.image_ranges(images):
            yield self.looks(image_ids)

    def looks(self, image_ids: Collection[int] | None = None) -> list[dict]:
        """Every item's image, region, attributes, the image's styles and product (of the given images
        only, when given), by item id: the looks the compatibility statistics are counted from, and the
        documents of the text index."""
        with self.engine.connect() as db:
            return _looks(db, image_ids)

    def trends(
        self, period: str, fields: Iterable[str], by: str, start: datetime | None, end: datetime | None
    ):
        """Per period (day, week from Monday, month) of the upload (`created`) or capture date: how many
        images, and how many items or images carry each value of each field."""
        date_column = catalog_images.c[by]
        query = select(
            date_column.label("date"),
            catalog_images.c.id.label("image_id"),
            catalog_images.c.style,
            catalog_images.c.sub_style,
            catalog_items.c.region,
            catalog_items.c.attributes,
        ).outerjoin(catalog_items, catalog_items.c.image_id == catalog_images.c.id)
        query = query.where(date_column.is_not(None))
        if start:
            query = query.where(date_column >= start)
        if end:
            query = query.where(date_column < end)
        fields = list(fields)
        periods: dict[str, dict] = {}
        seen_images: set[int] = set()
        with self.engine.connect() as db:
            for row in db.execute(query.order_by(date_column, catalog_images.c.id)):
                key = _period_start(row.date, period)
                bucket = periods.setdefault(
                    key, {"period": key, "images": 0, "items": 0, "counts": {f: {} for f in fields}}
                )
                if row.image_id not in seen_images:
                    seen_images.add(row.image_id)
                    bucket["images"] += 1
                    if "style" in fields and row.style:
                        _count(bucket["counts"]["style"], row.style)
                if row.region is None:
                    continue
                bucket["items"] += 1
                for field in fields:
                    if field == "style":
                        continue
                    if field == "region":
                        _count(bucket["counts"][field], row.region)
                        continue
                    value = row.attributes.get(field)
                    for one in value if isinstance(value, list) else [value]:
                        if one:
                            _count(bucket["counts"][field], one)
        for bucket in periods.values():
            bucket["counts"] = {
                field: dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
                for field, counts in bucket["counts"].items()
            }
        return list(periods.values())

    def item_ids(
        self, filters: dict[str, Iterable[str]] | None = None, image_ids: Collection[int] | None = None
    ) -> np.ndarray:
        """Ids of the items whose values match every filter (any of the values given for a key): region,
        style (the image's main or sub-style), or any attribute key (multi-valued ones match any value);
        of the given images only, when given. Ascending."""
        return np.array([item_id for item_id, _ in self._matching(filters, image_ids)], np.int64)

    def image_ids(
        self, filters: dict[str, Iterable[str]] | None = None, image_ids: Collection[int] | None = None
    ) -> np.ndarray:
        """Images with at least one item matching every filter (of the given images only, when given),
        ascending."""
        return np.unique(np.array([image for _, image in self._matching(filters, image_ids)], np.int64))

    def _matching(
        self, filters: dict[str, Iterable[str]] | None, image_ids: Collection[int] | None = None
    ) -> list[tuple[int, int]]:
        wanted = {key: set(values) for key, values in (filters or {}).items()}
        columns = [
            catalog_items.c.id,
            catalog_items.c.image_id,
            catalog_items.c.region,
            catalog_items.c.attributes,
            catalog_images.c.style,
            catalog_images.c.sub_style,
        ]
        if any(is_product_filter(key) for key in wanted):  # the products' JSON only when a filter reads it
            columns += [catalog_images.c.product_id, catalog_images.c.product]
        query = select(*columns).join(catalog_images, catalog_images.c.id == catalog_items.c.image_id)
        # Indexed columns narrow in SQL; JSON attributes are checked here (portable across databases).
        for key in ("region", "category", "color"):
            if key in wanted:
                query = query.where(catalog_items.c[key].in_(sorted(wanted[key])))
        if "product_id" in wanted:
            query = query.where(catalog_images.c.product_id.in_(sorted(wanted["product_id"])))
        if image_ids is not None:
            query = query.where(catalog_items.c.image_id.in_(sorted(image_ids)))
        with self.engine.connect() as db:
            return [
                (row.id, row.image_id)
                for row in db.execute(query.order_by(catalog_items.c.id))
                if all(_matches(row, key, values) for key, values in wanted.items())
            ]


def _looks(db: Connection, image_ids: Collection[int] | None) -> list[dict]:
    """`CatalogStore.looks` as `db` (perhaps inside a transaction) holds them."""
    query = select(
        catalog_items.c.id,
        catalog_items.c.image_id,
        catalog_items.c.region,
        catalog_items.c.score,
        catalog_items.c.attributes,
        catalog_images.c.file_name,
        catalog_images.c.style,
        catalog_images.c.sub_style,
        catalog_images.c.product_id,
        catalog_images.c.product,
    ).join(catalog_images, catalog_images.c.id == catalog_items.c.image_id)
    if image_ids is not None:
        query = query.where(_of_images(catalog_items.c.image_id, image_ids))
    return [dict(row._mapping) for row in db.execute(query.order_by(catalog_items.c.id))]


def _of_images(column: Any, image_ids: Collection[int]) -> Any:
    """The condition `column` (an image id) is one of `image_ids`: a `range` as its bounds, not a list of
    every id in it."""
    if isinstance(image_ids, range) and image_ids.step == 1:
        return column.between(image_ids.start, image_ids.stop - 1)
    return column.in_(list(image_ids))


def _matches(row: object, key: str, values: set[str]) -> bool:
    return bool(filter_values(row, key) & values)


def filter_values(row: Any, key: str) -> set[str]:
    """The values of an item (a row with region, attributes, style, sub_style, product_id, product) that a
    filter on `key` compares with: the one definition of what a filter matches."""
    if key == "product_id":
        return {row.product_id} if row.product_id is not None else set()
    if is_product_filter(key):
        name, fields = key[len(PRODUCT_FILTER_PREFIX) :], row.product or {}
        return {filter_text(fields[name])} if name in fields else set()
    if key == "region":
        return {row.region}
    if key == "style":
        return {v for v in (row.style, row.sub_style) if v is not None}
    value = row.attributes.get(key)
    if value is None:
        return set()
    return {str(v) for v in value} if isinstance(value, list) else {str(value)}


def filter_tags(row: Any) -> list[str]:
    """Every `key=value` an item's filters can match (an index store that filters inside its own search,
    Milvus, keeps these with each vector); the same values as `filter_values`."""
    keys = ["region", "style", *sorted(row.attributes or {}), "product_id"]
    keys += [f"{PRODUCT_FILTER_PREFIX}{name}" for name in sorted(row.product or {})]
    return sorted({f"{key}={value}" for key in keys for value in filter_values(row, key)})


def _image_json(image: object) -> dict:
    row = {k: v for k, v in dict(image).items() if k != "blob_key"}
    for key in ("created", "captured"):
        if row.get(key) is not None:
            row[key] = row[key].isoformat(sep=" ", timespec="seconds")
    return row


def _count(counts: dict[str, int], value: str) -> None:
    counts[value] = counts.get(value, 0) + 1


def _period_start(moment: datetime, period: str) -> str:
    day = moment.date()
    if period == "week":
        day = day - timedelta(days=day.weekday())
    elif period == "month":
        day = day.replace(day=1)
    return day.isoformat()
