"""The catalog's vector indexes in Milvus (`KFASHION_SEARCH__BACKEND=milvus`): the same interface as the
in-process FAISS index (services/search/index.py), over a Milvus collection, so that the indexes live in
a server (or a cluster) that several search services share instead of in each one's memory.

`KFASHION_SEARCH__MILVUS_URI` a file path: milvus-lite, the same engine embedded in this process (tests, one
machine); `http://host:19530`: a Milvus server or cluster. The database stays the source of truth:

- Each index is a collection reached through an alias (`kfashion_items`, `kfashion_looks`); its physical
  collection's name carries a hash of the taxonomy and model versions, so vectors of other models are never
  mixed in. A rebuild fills a new collection and then moves the alias to it: searches never see a
  half-built index.
- Which catalog state each collection holds (the stamp, services/search/catalog.py) is kept in a small
  state collection, written when the search service saves; at start a collection with another stamp is
  rebuilt from the database.
- Writes are upserts and deletes by id: repeating one after a crash changes nothing.
- Collections read at Session consistency: a search service sees its own writes at once, another's within
  Milvus's sync interval (about a second), without every search waiting for the newest timestamp. pymilvus
  keeps a session's write time per name, and reads go through the alias while a rebuild wrote to the
  collection's own name: so opening or publishing a collection reads it once at Strong consistency
  (`catch_up`), after which the server has every earlier write in view.

Item filters run inside Milvus's search over the items' filter tags (`tags_expression`), so the answers
are those of the FAISS backend to the item.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from typing import Any

import numpy as np

from services.search.index import IndexConfig

OPEN_WAIT_S = 30.0  # a restarted service waits this long for its predecessor to let go of a milvus-lite file
ID_BATCH = 2_000
INDEX_BUILD_WAIT_S = 3_600.0  # a rebuilt collection waits this long for its index before taking the alias
MAX_TAGS = (
    512  # filter tags per item (services/search/catalog.py, filter_tags): region, styles, attributes, product
)
MAX_TAG_CHARS = 1_024  # a longer tag is not kept; a filter asking for one is answered through the database
_LOCAL_USERS: dict[str, int] = {}  # milvus-lite file -> open MilvusIndexes on it in this process
_LOCAL_LOCK = threading.Lock()  # ids per delete or `id in [...]` expression chunk, and rows per upsert
STATE = "state"  # the state collection's suffix


def versions_hash(versions: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:12]


class MilvusIndexes:
    """The client and the naming of one catalog's collections."""

    def __init__(
        self,
        uri: str,
        prefix: str = "kfashion",
        token: str | None = None,
        database: str = "",
        index_type: str = "FLAT",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
    ):
        """`index_type`: FLAT answers exactly (milvus-lite, and catalogs a server scans fast enough);
        a Milvus server also builds IVF_PQ, HNSW or, on a GPU, GPU_CAGRA with `index_params`, searched with
        `search_params` (HNSW: {"ef": 256}; IVF_PQ: {"nprobe": 32})."""
        from pymilvus import MilvusClient

        options: dict[str, Any] = {"uri": uri}
        if token:
            options["token"] = token
        if database:
            options["db_name"] = database
        self.client = self._connect(MilvusClient, options)
        self.local = None if "://" in uri else os.path.abspath(uri)  # a milvus-lite file
        if self.local:
            with _LOCAL_LOCK:
                _LOCAL_USERS[self.local] = _LOCAL_USERS.get(self.local, 0) + 1
        self.prefix = prefix
        self.index_type = index_type
        self.index_params = dict(index_params or {})
        self.search_params = dict(search_params or {})
        self._lock = threading.Lock()
        self._ensure_state()

    @staticmethod
    def _connect(client: Any, options: dict[str, Any], wait_s: float = OPEN_WAIT_S) -> Any:
        """A client; a milvus-lite file still held by a process that is stopping is waited for."""
        from pymilvus.exceptions import ConnectionConfigException

        deadline = time.monotonic() + wait_s
        while True:
            try:
                return client(**options)
            except ConnectionConfigException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    # ------------------------------------------------------------------ state (stamps)

    def _ensure_state(self) -> None:
        from pymilvus import DataType, MilvusClient

        name = f"{self.prefix}_{STATE}"
        if self.client.has_collection(name):
            self.client.load_collection(name)  # a restarted Milvus holds collections released
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("kind", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("state", DataType.VARCHAR, max_length=65_535)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants one in every collection
        index = self.client.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="L2")
        self.client.create_collection(name, schema=schema, index_params=index)

    def read_state(self, kind: str) -> dict[str, Any]:
        rows = self.client.get(f"{self.prefix}_{STATE}", ids=[kind], output_fields=["state"])
        return json.loads(rows[0]["state"]) if rows else {}

    def write_state(self, kind: str, state: dict[str, Any]) -> None:
        row = {"kind": kind, "state": json.dumps(state), "vector": [0.0, 0.0]}
        self.client.upsert(f"{self.prefix}_{STATE}", [row])

    # ------------------------------------------------------------------ collections

    def alias(self, kind: str) -> str:
        return f"{self.prefix}_{kind}"

    def open(
        self, kind: str, config: IndexConfig, versions: dict[str, str]
    ) -> tuple[MilvusIndex | None, str]:
        """The collection the alias points to, with the stamp it holds; None and why when there is none or
        it holds vectors of other versions."""
        state = self.read_state(kind)
        alias = self.alias(kind)
        try:
            target = self.client.describe_alias(alias)["collection_name"]
        except Exception:  # no such alias (pymilvus raises its own MilvusException)
            return None, "missing"
        if state.get("collection") != target or state.get("versions") != versions:
            return None, "damaged or other versions"  # the words of the FAISS store, for the same case
        self.client.load_collection(target)
        index = MilvusIndex(self, target, config, versions, alias, tagged=kind == "items")
        index.stamp = state.get("stamp") or {}
        index.catch_up()  # the count compared with the database's next sees every write
        return index, "out of date"

    def create(self, kind: str, config: IndexConfig, versions: dict[str, str]) -> MilvusIndex:
        """A new, empty collection for `kind` (not yet behind the alias: `publish`)."""
        from pymilvus import DataType, MilvusClient

        with self._lock:
            existing = [n for n in self.client.list_collections() if n.startswith(f"{self.alias(kind)}_")]
            serial = 1 + max((int(n.rsplit("_", 1)[1]) for n in existing), default=0)
        name = f"{self.alias(kind)}_{versions_hash(versions)}_{serial}"
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=config.dim)
        if kind == "items":  # filters run inside the search over these (`tags_expression`)
            schema.add_field(
                "tags",
                DataType.ARRAY,
                element_type=DataType.VARCHAR,
                max_capacity=MAX_TAGS,
                max_length=MAX_TAG_CHARS * 4,  # Milvus counts bytes: Korean takes 3 a character
            )
        index = self.client.prepare_index_params()
        index.add_index("vector", index_type=self.index_type, metric_type="IP", params=self.index_params)
        self.client.create_collection(name, schema=schema, index_params=index, consistency_level="Session")
        return MilvusIndex(self, name, config, versions, tagged=kind == "items")

    def publish(self, kind: str, index: MilvusIndex) -> None:
        """Point the alias at `index`'s collection and drop the one it pointed at before. The new collection
        is flushed first: its segments sealed, a server builds their index (HNSW, IVF_PQ) before searches
        arrive, instead of scanning growing segments with an interim one."""
        self.client.flush(index.collection)
        if self.index_type != "FLAT":
            self._wait_for_index(index.collection)
        alias = self.alias(kind)
        try:
            before = self.client.describe_alias(alias)["collection_name"]
        except Exception:
            before = None
        if before is None:
            self.client.create_alias(index.collection, alias)
        elif before != index.collection:
            self.client.alter_alias(index.collection, alias)
        self.save(kind, index)
        index.target = alias  # from now on through the alias, which another service may move
        index.catch_up()
        if before not in (None, index.collection):
            self.client.drop_collection(before)

    def _wait_for_index(self, collection: str) -> None:
        """Until the server has built the vector index over every row and its query nodes search with it:
        before that they answer from an interim index (IVF with few probes; recall@10 0.57 at 100 k
        vectors, bench/search_backends.py)."""
        deadline = time.monotonic() + INDEX_BUILD_WAIT_S
        while True:
            built = self.client.describe_index(collection, "vector")
            if built.get("state") == "Failed":
                raise RuntimeError(f"Milvus could not build the index of {collection}: {built}")
            if int(built.get("pending_index_rows", 0)) == 0:
                loaded = self.client.list_loaded_segments(collection)
                rows = sum(segment.num_rows for segment in loaded)
                if rows >= int(built.get("total_rows", 0)) and all(s.index_id for s in loaded):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Milvus did not build the index of {collection} in {INDEX_BUILD_WAIT_S} s"
                )
            time.sleep(1.0)

    shared = True  # several search services may write it: another writer's changes are already in it
    filters_inside = True  # item filters run inside its search (the items' filter tags are stored)

    @staticmethod
    def tags_expression(filters: dict[str, list[str]]) -> str | None:
        """Filters (normalised, services/search/query.py) as a Milvus expression over the items' tags: every
        key must match one of its values. None when a value cannot be written safely in an expression or
        is longer than a kept tag: such a filter is answered through the database's ids instead."""
        clauses = []
        for key, values in sorted(filters.items()):
            tags = [f"{key}={value}" for value in values]
            if any(len(t) > MAX_TAG_CHARS or '"' in t or "\\" in t for t in tags):
                return None
            clauses.append(f"array_contains_any(tags, {json.dumps(tags, ensure_ascii=False)})")
        return " and ".join(clauses)

    def save(self, kind: str, index: MilvusIndex) -> None:
        self.write(kind, self.snapshot(index), index)

    def snapshot(self, index: MilvusIndex) -> dict[str, Any]:
        """What `save` keeps: the vectors are in Milvus already, the stamp says which catalog state."""
        return {"collection": index.physical(), "versions": index.versions, "stamp": dict(index.stamp)}

    def write(self, kind: str, snapshot: dict[str, Any], index: MilvusIndex) -> None:
        self.write_state(kind, snapshot)

    def drop_all(self) -> None:
        """Every collection of this prefix (tests, and `kfashion catalog check` when asked to start over)."""
        for kind in ("items", "looks"):
            with contextlib.suppress(Exception):  # no such alias
                self.client.drop_alias(self.alias(kind))
        for name in self.client.list_collections():
            if name.startswith(f"{self.prefix}_"):
                self.client.drop_collection(name)

    def close(self) -> None:
        self.client.close()
        if self.local is None:
            return
        with _LOCAL_LOCK:
            _LOCAL_USERS[self.local] -= 1
            last = _LOCAL_USERS[self.local] == 0
        if last:  # milvus-lite serves the file from this process until told: the file's lock goes with it
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.local)


class MilvusIndex:
    """One collection of id + vector, answering as services/search/index.py's VectorIndex does."""

    kind = "milvus"

    def __init__(
        self,
        owner: MilvusIndexes,
        collection: str,
        config: IndexConfig,
        versions: dict[str, str],
        target: str | None = None,
        tagged: bool = False,
    ):
        """`collection`: the physical collection; `target`: the name reads and writes use, its alias once
        published (another search service may rebuild the index into a new collection and move it);
        `tagged`: its rows carry the items' filter tags."""
        self.owner = owner
        self.client = owner.client
        self.collection = collection
        self.target = target or collection
        self.tagged = tagged
        self.config = config
        self.versions = dict(versions)
        self.stamp: dict = {}

    def physical(self) -> str:
        """The collection behind the name in use (after a move by another service, the new one)."""
        if self.target == self.collection:
            return self.collection
        return self.client.describe_alias(self.target)["collection_name"]

    def _count(self, **consistency: str) -> int:
        # Counted, not read from the collection's statistics: a server updates those only when it flushes.
        rows = self.client.query(self.target, filter="", output_fields=["count(*)"], **consistency)
        return int(rows[0]["count(*)"])

    def catch_up(self) -> None:
        """Wait until the server has applied every write made so far (one read at Strong consistency):
        later Session reads through the alias, for which pymilvus holds no write time, then see them."""
        self._count(consistency_level="Strong")

    def __len__(self) -> int:
        return self._count()

    def add(self, ids: np.ndarray, vectors: np.ndarray, tags: dict[int, list[str]] | None = None) -> None:
        """Add or replace vectors by id (an upsert: repeating it changes nothing), with each item's filter
        tags when the index keeps them."""
        ids = np.asarray(ids, np.int64).ravel()
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(len(ids), self.config.dim)
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be unique within one add")
        for start in range(0, len(ids), ID_BATCH):
            rows = []
            for i, v in zip(ids[start : start + ID_BATCH], vectors[start : start + ID_BATCH], strict=True):
                row: dict[str, Any] = {"id": int(i), "vector": v.tolist()}
                if self.tagged:
                    kept = [t for t in (tags or {}).get(int(i), []) if len(t) <= MAX_TAG_CHARS]
                    row["tags"] = kept[:MAX_TAGS]
                rows.append(row)
            self.client.upsert(self.target, rows)

    def remove(self, ids: np.ndarray) -> int:
        ids = np.unique(np.asarray(ids, np.int64).ravel())
        removed = 0
        for start in range(0, len(ids), ID_BATCH):
            chunk = ids[start : start + ID_BATCH].tolist()
            present = self.client.get(self.target, ids=chunk, output_fields=["id"])
            if present:
                self.client.delete(self.target, ids=[row["id"] for row in present])
                removed += len(present)
        return removed

    def ids(self) -> np.ndarray:
        found: list[int] = []
        iterator = self.client.query_iterator(self.target, batch_size=10_000, output_fields=["id"])
        try:
            while batch := iterator.next():
                found += [row["id"] for row in batch]
        finally:
            iterator.close()
        return np.array(found, np.int64)

    def vector(self, item_id: int) -> np.ndarray | None:
        rows = self.client.get(self.target, ids=[int(item_id)], output_fields=["vector"])
        return np.asarray(rows[0]["vector"], np.float32) if rows else None

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, expression: str = ""
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (queries, k), best first; id -1 and score -inf where fewer than k exist.
        `allowed`: only these ids may be returned; `expression`: only items whose tags pass it
        (`tags_expression`); either is applied inside Milvus's search."""
        queries = np.ascontiguousarray(queries, np.float32).reshape(-1, self.config.dim)
        scores_out = np.full((len(queries), k), -np.inf, np.float32)
        ids_out = np.full((len(queries), k), -1, np.int64)
        expressions = [expression]
        if allowed is not None:
            wanted = np.unique(np.asarray(allowed, np.int64))
            if not len(wanted):
                return scores_out, ids_out
            both = f"({expression}) and " if expression else ""
            expressions = [
                f"{both}id in {wanted[s : s + ID_BATCH].tolist()}" for s in range(0, len(wanted), ID_BATCH)
            ]
        found: list[list[tuple[float, int]]] = [[] for _ in queries]
        for chunk in expressions:
            answers = self.client.search(
                self.target,
                data=queries.tolist(),
                limit=k,
                filter=chunk,
                search_params={"metric_type": "IP", "params": self.owner.search_params},
                output_fields=["id"],
            )
            for q, hits in enumerate(answers):
                found[q] += [(float(h["distance"]), int(h["id"])) for h in hits]
        for q, hits in enumerate(found):
            best = sorted(hits, key=lambda h: (-h[0], h[1]))[:k]
            scores_out[q, : len(best)] = [s for s, _ in best]
            ids_out[q, : len(best)] = [i for _, i in best]
        return scores_out, ids_out

    def needs_rebuild(self) -> bool:
        return False  # Milvus keeps its own index structures

    def rebuild(self, seed: int = 0) -> None:
        return None
