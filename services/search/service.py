"""Catalog search: the catalog (database + blob store) and its vector indexes kept in step.

Two indexes: items (one vector per garment) and looks (one per image: the mean of its items' vectors),
kept by an index store: FAISS in this process, saved to the blob store (local disk or S3) a few seconds
after a change and at shutdown (the default), or collections in Milvus (services/search/milvus_index.py).
Either way each index records the catalog state (stamp) and model versions it holds; at start one that is
missing, damaged, of other versions or of another catalog state is rebuilt from the database. Large FAISS
indexes train IVF-PQ in a background thread while queries go on against the previous one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.search.catalog import FILES_PREFIX, CatalogStore
from services.search.index import IndexConfig, VectorIndex
from services.search.query import merge_filters
from shared.blobs import BlobStore
from shared.errors import ApiError, ErrorCode
from shared.heads import EMBEDDING_DIM
from shared.manifest import load_manifest, outputs_sha256

log = logging.getLogger("kfashion.search")
INDEX_KEYS = {"items": "indexes/items.npz", "looks": "indexes/looks.npz"}
FILTER_CACHE_SIZE = 64
CHANGES_KEPT = 1000  # revisions whose changed image is remembered; a cache further behind reads everything
MAX_IMAGES_UPDATED = 500  # a cache behind by more changed images than this reads everything (no long IN list)

Filters = dict[str, list[str]]


class FaissIndexes:
    """The default index store: FAISS indexes in this process, saved whole to the blob store."""

    shared = False  # each search service holds its own copy: another writer's changes are read anew
    filters_inside = False  # filters reach the search as the ids the database allows

    def __init__(self, blobs: BlobStore):
        self.blobs = blobs

    def open(
        self, kind: str, config: IndexConfig, versions: dict[str, str]
    ) -> tuple[VectorIndex | None, str]:
        key = INDEX_KEYS[kind]
        if not self.blobs.exists(key):
            return None, "missing"
        index = VectorIndex.loads(self.blobs.get(key), config, versions)
        return index, "damaged or other versions" if index is None else "out of date"

    def create(self, kind: str, config: IndexConfig, versions: dict[str, str]) -> VectorIndex:
        return VectorIndex(config, versions)

    def publish(self, kind: str, index: VectorIndex) -> None:
        return None  # in use as soon as the search service holds it; saved by `save`

    def snapshot(self, index: VectorIndex) -> bytes:
        return index.dumps()

    def write(self, kind: str, snapshot: bytes, index: VectorIndex) -> None:
        self.blobs.put(INDEX_KEYS[kind], snapshot)

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class Hit:
    id: int  # item id (item search) or image id (look search)
    score: float
    missing_tags: tuple[str, ...] | None = None  # a text query's tag keys the item lacks (None: no tags)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


REBUILD_PAGE_IMAGES = 10_000  # images read at once when indexes are built from the database


def look_vectors(image_ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One vector per image: the normalised mean of its items' vectors."""
    images, inverse = np.unique(image_ids, return_inverse=True)
    sums = np.zeros((len(images), vectors.shape[1]), np.float32)
    np.add.at(sums, inverse, vectors)
    return images, _normalised(sums).astype(np.float32)


def tag_weight(key: str) -> int:
    """What a text query's tag counts for in ranking: what the garment is (category, region) twice any
    other tag, so "white shirt" answers shirts of other colours before white garments of other kinds."""
    return 2 if key in ("category", "region") else 1


class CatalogSearch:
    def __init__(
        self,
        catalog: CatalogStore,
        blobs: BlobStore,
        versions: dict[str, str],
        config: IndexConfig | None = None,
        save_delay_s: float = 5.0,
        refresh_s: float = 10.0,
        store: Any = None,
    ):
        """`store`: where the indexes live, FaissIndexes (the default) or MilvusIndexes."""
        self.catalog = catalog
        self.blobs = blobs
        self.store = store or FaissIndexes(blobs)
        self.versions = dict(versions)
        self.config = config or IndexConfig(EMBEDDING_DIM)
        self.save_delay_s = save_delay_s
        self.refresh_s = refresh_s
        self.indexes: dict[str, VectorIndex] = {}
        self._lock = threading.RLock()  # one catalog change (database + indexes) at a time
        self._dirty = threading.Event()
        self._closing = threading.Event()
        self._saver: threading.Thread | None = None
        self.text = catalog.text  # the free words' index, in the catalog's database
        self._filter_cache: OrderedDict[tuple, tuple[int, np.ndarray]] = OrderedDict()  # (revision, ids)
        self.rebuilt: dict[str, str] = {}  # why each index was rebuilt at open, for logs and tests
        self.ready = threading.Event()
        self.revision = 0  # counts every change of the catalog seen here, for caches of what it holds
        # Per recent revision, the image it changed (None: any, as when the indexes were rebuilt) and that
        # image's items before the change, so a cache can re-read only those images (`images_changed_since`).
        self._changes: deque[tuple[int, int | None, tuple[int, ...]]] = deque(maxlen=CHANGES_KEPT)

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        derived = self.catalog.derive_missing()
        if any(derived.values()):
            log.info("images written before the text index / look counts were kept: %s", derived)
        stamp = self.catalog.stamp()
        for kind in INDEX_KEYS:
            index, reason = self.store.open(kind, self.config, self.versions)
            if index is not None and index.stamp != stamp:
                index = None
            elif index is not None and self.store.shared and kind == "items" and len(index) != stamp["items"]:
                # Another service saved the stamp after a writer died between the database and the index.
                index, reason = None, "out of step with the database"
            if index is None:
                self.rebuilt[kind] = reason
                log.info("rebuilding the %s index from the database (%s)", kind, reason)
            else:
                self.indexes[kind] = index
        if self.rebuilt:
            fresh = self._indexes_from_database(list(self.rebuilt))
            self._adopt(fresh)
            self._changed(stamp)
        self._rebuild_if_needed()
        self._saver = threading.Thread(target=self._save_loop, name="index-saver", daemon=True)
        self._saver.start()
        self.ready.set()

    def ensure_ready(self) -> None:
        if not self.ready.is_set():
            raise ApiError(
                ErrorCode.SERVICE_UNAVAILABLE,
                "the search indexes are still loading; try again in a few seconds",
                {"service": "search"},
            )

    def status(self) -> dict:
        return {
            "ready": self.ready.is_set(),
            "indexes": {kind: {"kind": i.kind, "vectors": len(i)} for kind, i in self.indexes.items()},
            "rebuilt_at_start": self.rebuilt,
        }

    def close(self) -> None:
        if not self.ready.is_set():
            self.store.close()
            return
        self._closing.set()
        if self._saver:
            self._saver.join(timeout=30)
        self.save()
        self.store.close()

    def save(self) -> None:
        with self._lock:
            if not self._dirty.is_set():
                return
            self._dirty.clear()
            snapshots = {kind: (self.store.snapshot(index), index) for kind, index in self.indexes.items()}
        for kind, (snapshot, index) in snapshots.items():
            self.store.write(kind, snapshot, index)

    def _save_loop(self) -> None:
        """Save a few seconds after a change; every `refresh_s`, pick up changes made by another writer
        (`kfashion catalog add`, another replica) from the database."""
        last_refresh = time.monotonic()
        while not self._closing.is_set():
            try:
                if self._dirty.wait(timeout=0.5) and not self._closing.wait(self.save_delay_s):
                    self.save()
                if time.monotonic() - last_refresh >= self.refresh_s:
                    last_refresh = time.monotonic()
                    self.refresh_if_stale()
            except Exception:  # retried on the next round; the database is whole
                log.exception("saving or refreshing the indexes failed")

    def refresh_if_stale(self) -> bool:
        """Rebuild both indexes from the database if it changed behind this process's back. The database
        is read without holding the lock; the swap happens only if nothing changed meanwhile."""
        with self._lock:
            stamp = self.catalog.stamp()
            if stamp == self.stamp:
                return False
            if self.store.shared:  # the other writer changed the shared indexes too: caches are read anew
                self._changed(stamp)
                return True
        fresh = self._indexes_from_database()
        with self._lock:
            if self.catalog.stamp() != stamp:
                return False  # changed again: the next round tries again
            log.info("the catalog changed elsewhere: indexes rebuilt from the database")
            self._adopt(fresh)
            self._changed(stamp)
        self._rebuild_if_needed()
        return True

    def _indexes_from_database(self, kinds: Iterable[str] = tuple(INDEX_KEYS)) -> dict[str, Any]:
        """Indexes built anew from every item's vector in the database (the source of truth), not yet in
        use (`_adopt`). Read a page of images at a time: an index kept outside the process (Milvus) never
        has the whole catalog's vectors in it."""
        fresh = {kind: self.store.create(kind, self.config, self.versions) for kind in kinds}
        for image_ids in self.catalog.image_ranges(REBUILD_PAGE_IMAGES):
            self._index_images(fresh, image_ids)
        return fresh

    def _adopt(self, fresh: dict[str, Any]) -> None:
        """Put freshly built indexes in use (a Milvus alias moves to them)."""
        for kind, index in fresh.items():
            self.store.publish(kind, index)
        self.indexes |= fresh

    def _index_images(self, indexes: dict[str, Any], image_ids: Collection[int]) -> None:
        """Put these images' items (and their looks) into `indexes`, from the database; with their filter
        tags when the store filters inside its search."""
        item_ids, item_images, vectors = self.catalog.embeddings(image_ids)
        if not len(item_ids):
            return
        if "items" in indexes:
            if self.store.filters_inside:
                indexes["items"].add(item_ids, vectors, self.catalog.item_filter_tags(image_ids))
            else:
                indexes["items"].add(item_ids, vectors)
        if "looks" in indexes:
            indexes["looks"].add(*look_vectors(item_images, vectors))

    @property
    def stamp(self) -> dict:
        """The catalog state the indexes hold (kept current by every change made through this object)."""
        return self.indexes["items"].stamp

    def _tags_changed(self, image_id: int | None = None, items_before: Iterable[int] = ()) -> None:
        """Anything read from the items' tags is out of date (filter results, caches that
        follow `revision`); `image_id`, the one image changed, when only one was, and `items_before`, its
        items before the change."""
        if image_id is None:
            self._filter_cache.clear()
        self.revision += 1
        self._changes.append((self.revision, image_id, tuple(items_before)))

    def _changed(
        self, stamp: dict | None = None, image_id: int | None = None, items_before: Iterable[int] = ()
    ) -> None:
        stamp = stamp or self.catalog.stamp()
        for index in self.indexes.values():
            index.stamp = stamp
        self._tags_changed(image_id, items_before)
        self._dirty.set()

    def _changes_since(self, revision: int) -> tuple[set[int], set[int]] | None:
        """The images changed after `revision` and their items before, or None when any could have changed
        (the indexes were rebuilt, the revisions are older than those kept, or too many images changed)."""
        if revision == self.revision:
            return set(), set()
        newer = [(image, items) for changed, image, items in self._changes if changed > revision]
        images = {image for image, _ in newer}
        if self.revision - revision > len(newer) or None in images or len(images) > MAX_IMAGES_UPDATED:
            return None
        return images, {item for _, items in newer for item in items}

    def images_changed_since(self, revision: int) -> tuple[int, set[int] | None]:
        """(the current revision, the images changed after `revision`), or None for the images when any
        could have changed, or too many to read one by one."""
        with self._lock:
            changes = self._changes_since(revision)
            return self.revision, None if changes is None else changes[0]

    def _rebuild_if_needed(self) -> None:
        for kind, index in self.indexes.items():
            if index.needs_rebuild():
                threading.Thread(
                    target=self._rebuild, args=(kind,), name=f"{kind}-rebuild", daemon=True
                ).start()

    def _rebuild(self, kind: str) -> None:
        try:
            self.indexes[kind].rebuild()
            with self._lock:
                self._dirty.set()
        except Exception:  # queries go on against the exact index; the next change tries again
            log.exception("training the %s index failed", kind)

    # ------------------------------------------------------------------ changes

    def add(
        self, file_name: str, data: bytes, result: dict, product: dict[str, Any] | None = None
    ) -> tuple[int, bool]:
        """Store a tagged image (with embeddings) and its product, and index its items; (image id,
        created). An image already stored gets the product given."""
        with self._lock:
            image_id, created = self.catalog.add(file_name, data, result, self.versions, product)
            if created:
                self._index_images(self.indexes, [image_id])
                self._changed(image_id=image_id)
            elif product:  # filters on the product read it
                self._tags_changed(image_id, [item["id"] for item in self.catalog.get(image_id)["items"]])
                if self.store.filters_inside:
                    self._index_images(self.indexes, [image_id])  # the items' filter tags again (an upsert)
        self._rebuild_if_needed()
        return image_id, created

    def delete_product(self, product_id: str) -> tuple[list[int], list[int]]:
        """Remove every image of a product: (image ids, item ids)."""
        image_ids = self.catalog.product_image_ids(product_id)
        if not image_ids:
            raise ApiError(
                ErrorCode.NOT_FOUND, f"no catalog image of product {product_id!r}", {"product_id": product_id}
            )
        return image_ids, [item for image_id in image_ids for item in self.delete(image_id)]

    def delete(self, image_id: int) -> list[int]:
        with self._lock:
            item_ids = self.catalog.delete(image_id)
            self.indexes["items"].remove(np.array(item_ids, np.int64))
            self.indexes["looks"].remove(np.array([image_id], np.int64))
            self._changed(image_id=image_id, items_before=item_ids)
        return item_ids

    def retag(self, image_id: int, result: dict) -> dict:
        """A new tagging of a stored image (current models): its items and vectors replaced."""
        with self._lock:
            old = self.catalog.replace_tags(image_id, result, self.versions)
            self.indexes["items"].remove(np.array(old, np.int64))
            self.indexes["looks"].remove(np.array([image_id], np.int64))
            self._index_images(self.indexes, [image_id])
            self._changed(image_id=image_id, items_before=old)
        return self.catalog.get(image_id)

    def check(self, repair: bool = False) -> dict[str, Any]:
        """What is out of step between the database (the truth), the stored files and the indexes: files
        no image refers to (left by a process killed between storing a photo and writing its row), images
        whose file is missing, index entries the database does not hold or lacks. With `repair`: those
        files deleted, those images removed, the indexes rebuilt from the database. Run it with uploads
        stopped: a photo being added has its file stored a moment before its row."""
        with self._lock:
            files = self.catalog.stored_files()
            stored = set(self.blobs.keys(FILES_PREFIX))
            orphans = sorted(stored - set(files.values()))
            missing = sorted(image_id for image_id, key in files.items() if key not in stored)
            in_database = self.catalog.all_item_ids()
            in_index = {int(i) for i in self.indexes["items"].ids()}
            report: dict[str, Any] = {
                "images": len(files),
                "files_without_image": len(orphans),
                "images_without_file": missing,
                "index_items_not_in_database": len(in_index - in_database),
                "database_items_not_in_index": len(in_database - in_index),
                "repaired": repair,
            }
            if not repair:
                return report
            for key in orphans:
                self.blobs.delete(key)
            for image_id in missing:
                self.delete(image_id)
            if in_index != in_database or missing:
                self._adopt(self._indexes_from_database())
                self._changed()
        self.save()
        self._rebuild_if_needed()
        return report

    def stale_image_ids(self) -> list[int]:
        return self.catalog.stale_image_ids(self.versions)

    def update(
        self,
        image_id: int,
        file_name: str | None,
        item_values: dict[int, dict],
        product: dict[str, Any] | None = None,
    ) -> dict:
        with self._lock:
            image = self.catalog.update(image_id, file_name, item_values, product)
            self._tags_changed(image_id, [item["id"] for item in image["items"]])  # vectors did not change
            if self.store.filters_inside:
                self._index_images(self.indexes, [image_id])  # the items' filter tags again (an upsert)
        return image

    # ------------------------------------------------------------------ queries

    def allowed_items(self, filters: Filters | None) -> np.ndarray | None:
        """Ids of the items passing the filters (None: no filters), ascending."""
        return self._allowed("items", filters)

    def allowed_images(self, filters: Filters | None) -> np.ndarray | None:
        """Ids of the images with an item passing the filters (None: no filters), ascending."""
        return self._allowed("images", filters)

    def _allowed(self, kind: str, filters: Filters | None) -> np.ndarray | None:
        """What passes the filters, cached per filter and kept up to date by the images changed since."""
        if not filters:
            return None
        key = (kind, *sorted((k, tuple(sorted(v))) for k, v in filters.items()))
        read = self.catalog.item_ids if kind == "items" else self.catalog.image_ids
        with self._lock:
            revision, allowed = self._filter_cache.pop(key, (None, None))
            changes = None if revision is None else self._changes_since(revision)
            if allowed is None or changes is None:
                allowed = read(filters)
            elif changes[0]:  # only these images changed since: they are read again, the others kept
                images, items_before = changes
                gone = items_before if kind == "items" else images
                kept = np.setdiff1d(allowed, np.fromiter(gone, np.int64, len(gone)))
                allowed = np.union1d(kept, read(filters, images))
            self._filter_cache[key] = (self.revision, allowed)  # the most recently used, last
            while len(self._filter_cache) > FILTER_CACHE_SIZE:
                self._filter_cache.popitem(last=False)
            return allowed

    def similar_items(self, vector: Iterable[float], k: int, filters: Filters | None = None) -> list[Hit]:
        query = np.asarray(vector, np.float32)[None]
        expression = self.store.tags_expression(filters) if filters and self.store.filters_inside else None
        if expression:  # the filters run inside the store's own search, over the items' tags
            scores, ids = self.indexes["items"].search(query, k, expression=expression)
            return [Hit(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        allowed = self.allowed_items(filters)
        if allowed is not None and len(allowed) == 0:
            return []
        scores, ids = self.indexes["items"].search(query, k, allowed)
        return [Hit(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def similar_looks(self, vector: Iterable[float], k: int, filters: Filters | None = None) -> list[Hit]:
        allowed = self.allowed_images(filters)
        if allowed is not None and len(allowed) == 0:
            return []
        query = _normalised(np.asarray(vector, np.float32)[None])
        scores, ids = self.indexes["looks"].search(query, k, allowed)
        return [Hit(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def text_items(
        self, words: list[str], tags: Filters, k: int, filters: Filters | None = None
    ) -> list[Hit]:
        """The k best items of `text_ranking`."""
        return self.text_ranking(words, tags, filters)(k)

    def text_ranking(
        self, words: list[str], tags: Filters, filters: Filters | None = None
    ) -> Callable[[int], list[Hit]]:
        """Items for a text query, as a function giving the k best: the candidates and the words' scores are
        read once, so a caller asking again for more (distinct results) does not read them again. Every
        filter holds. The query's taxonomy tags rank, as a shop's search fills its page: items carrying all
        of them first, then by the weight (`tag_weight`) of those they carry (each hit names the tag keys it
        misses), so "red floral dress" still answers on a catalog without one. Among equals, the TF-IDF
        score of the free words, or where none meets a catalog term, detection confidence. An item carrying
        none of the tags and none of the words is left out. The score is (weight carried + that score) /
        (weight of all the tags + 1): in [0, 1], falling."""
        allowed = self.allowed_items(filters)
        if allowed is not None and len(allowed) == 0:
            return lambda k: []
        word_scores = self.text.scores(words, allowed) if words else {}
        carriers = {}  # tag key -> the allowed items carrying it
        for key, values in tags.items():
            carriers[key] = self.allowed_items(merge_filters(filters or {}, {key: values}))
        if carriers or words:
            worded = np.array(sorted(word_scores), np.int64)
            candidates = np.unique(np.concatenate([*carriers.values(), worded]))
        else:
            candidates = allowed if allowed is not None else self.catalog.item_ids()
        carries = {key: np.isin(candidates, ids) for key, ids in carriers.items()}  # per candidate
        carried = sum((tag_weight(key) * has for key, has in carries.items()), np.zeros(len(candidates), int))
        most = sum(map(tag_weight, tags)) + 1

        def top(k: int) -> list[Hit]:
            # Groups by tags carried, best first; only as many groups as fill k need a second score.
            ranked: list[tuple[int, float]] = []  # (position among the candidates, score)
            for count in sorted(set(carried.tolist()), reverse=True):
                group = np.flatnonzero(carried == count)
                ids = candidates[group].tolist()
                if word_scores:
                    second = [word_scores.get(i, 0.0) for i in ids]
                else:
                    by_id = self.catalog.detection_scores(ids)
                    second = [by_id.get(i, 0.0) for i in ids]
                order = sorted(zip(second, ids, group.tolist(), strict=True), key=lambda s: (-s[0], s[1]))
                ranked += [(position, (count + score) / most) for score, _, position in order]
                if len(ranked) >= k:
                    break
            return [
                Hit(
                    int(candidates[position]),
                    score,
                    tuple(key for key, has in carries.items() if not has[position]) if tags else None,
                )
                for position, score in ranked[:k]
            ]

        return top

    def item_results(self, hits: list[Hit]) -> list[dict]:
        rows = self.catalog.items(h.id for h in hits)
        return [_item_result(rows[h.id], h, rank) for rank, h in enumerate(hits, 1) if h.id in rows]

    def look_results(self, hits: list[Hit]) -> list[dict]:
        results = []
        for rank, hit in enumerate(hits, 1):
            try:
                image = self.catalog.get(hit.id)
            except ApiError:  # deleted between the search and now
                continue
            results.append(
                {
                    "rank": rank,
                    "score": round(hit.score, 6),
                    "image_id": image["id"],
                    "file_name": image["file_name"],
                    "style": image["style"],
                    "sub_style": image["sub_style"],
                    "product_id": image["product_id"],
                    "product": image["product"],
                    "items": [_item_summary(item) for item in image["items"]],
                    "image_url": image_url(image["id"]),
                }
            )
        return results


def index_versions(models_dir: Path) -> dict[str, str]:
    """What the vectors depend on: the taxonomy and the model that computes the embeddings."""
    manifest = load_manifest(models_dir)
    embedder = manifest.models["attributes"]
    return {
        "taxonomy": manifest.taxonomy_version,
        "embedding": f"{embedder.version}+{outputs_sha256(embedder)[:12]}",
    }


def image_url(image_id: int) -> str:
    return f"/catalog/images/{image_id}/file"


def _item_summary(item: dict) -> dict:
    return {
        "item_id": item["id"],
        "region": item["region"],
        "box": item["box"],
        "tags": item["attributes"],
    }


def _item_result(row: dict, hit: Hit, rank: int) -> dict:
    result = {
        "rank": rank,
        "score": round(hit.score, 6),
        "image_id": row["image_id"],
        "item_id": row["id"],
        "file_name": row["file_name"],
        "region": row["region"],
        "box": row["box"],
        "tags": row["attributes"],
        "style": row["style"],
        "sub_style": row["sub_style"],
        "product_id": row["product_id"],
        "product": row["product"],
        "image_url": image_url(row["image_id"]),
    }
    if hit.missing_tags is not None:
        result["missing_tags"] = list(hit.missing_tags)
    return result
