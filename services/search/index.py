"""A vector index with ids, exact attribute filtering and two regimes, chosen by size.

- Small (up to `flat_limit` vectors): exact inner-product search (FAISS flat).
- Large: IVF-PQ (product quantisation, as seed 002) proposes candidates, which are re-ranked exactly with
  the stored vectors: PQ codes alone cap recall (docs/benchmarks.md), the re-ranking restores it.

Vectors are L2-normalised embeddings, so inner product is cosine similarity. Filters are id sets applied
inside the search (a FAISS IDSelector), never after it: when at least k allowed vectors exist, k come back.
Adding and removing by id never rebuilds; `rebuild` (re)trains the IVF-PQ index from the stored vectors and
can run in a background thread while queries go on against the previous index.
"""

from __future__ import annotations

import io
import json
import math
import threading
import zipfile
from dataclasses import dataclass

import faiss
import numpy as np

FORMAT = 1


@dataclass(frozen=True)
class IndexConfig:
    dim: int
    flat_limit: int = 50_000  # up to this many vectors: exact search
    exact_subset_limit: int = 20_000  # a filter allowing at most this many: exact over the allowed ones
    nprobe: int = 128  # inverted lists scanned per query (of up to 4,096)
    refine_factor: int = 20  # candidates re-ranked exactly: k * refine_factor
    pq_bytes: int = 32  # bytes per vector in the PQ codes (sub-quantisers of 8 bits)
    train_sample: int = 100_000


def allowed_bitmap(ids: np.ndarray) -> np.ndarray:
    """Bit i (little-endian within each byte) set for each id i, as FAISS's IDSelectorBitmap reads it."""
    allowed = np.zeros(int(ids.max(initial=-1)) + 1, bool)
    allowed[ids] = True
    return np.packbits(allowed, bitorder="little")


class VectorIndex:
    def __init__(self, config: IndexConfig, versions: dict[str, str] | None = None):
        self.config = config
        self.versions = dict(versions or {})  # taxonomy and model versions the vectors come from
        self.stamp: dict = {}  # the catalog state the vectors hold (set by the owner, saved with them)
        self._lock = threading.RLock()
        # Rows 0.._count-1 of growable buffers (capacity doubles), so an add or a removal costs its own
        # size, not a copy of every stored vector.
        self._id_store = np.empty(0, np.int64)
        self._vector_store = np.empty((0, config.dim), np.float32)
        self._count = 0
        # The row of each id, -1 where none: catalog ids count up from 1, so a dense array (8 bytes per id
        # ever given) answers a filter of hundreds of thousands of ids in one gather.
        self._row_of = np.empty(0, np.int64)
        self._ivf: faiss.IndexIVFPQ | None = None
        self._pending: list[tuple[str, np.ndarray, np.ndarray | None]] = []  # changes during a rebuild
        self._rebuilding = False

    # ------------------------------------------------------------------ contents

    def __len__(self) -> int:
        return self._count

    @property
    def _ids(self) -> np.ndarray:
        return self._id_store[: self._count]

    def ids(self) -> np.ndarray:
        """The ids held, in no particular order (a copy)."""
        return self._ids.copy()

    @property
    def _vectors(self) -> np.ndarray:
        return self._vector_store[: self._count]

    def _reserve(self, extra: int) -> None:
        needed = self._count + extra
        if needed <= len(self._id_store):
            return
        capacity = max(needed, 2 * len(self._id_store), 1024)
        ids = np.empty(capacity, np.int64)
        vectors = np.empty((capacity, self.config.dim), np.float32)
        ids[: self._count], vectors[: self._count] = self._ids, self._vectors
        self._id_store, self._vector_store = ids, vectors

    @property
    def kind(self) -> str:
        return "ivf-pq" if self._ivf is not None else "flat"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors by id."""
        ids = np.asarray(ids, np.int64).ravel()
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(len(ids), self.config.dim)
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be unique within one add")
        if len(ids) and ids.min() < 0:
            raise ValueError("ids must not be negative (FAISS answers -1 for none)")
        with self._lock:
            self.remove(ids[self._rows_of(ids) >= 0])
            self._reserve(len(ids))
            base = self._count
            self._id_store[base : base + len(ids)] = ids
            self._vector_store[base : base + len(ids)] = vectors
            self._count += len(ids)
            self._set_rows(ids, np.arange(base, base + len(ids)))
            if self._ivf is not None:
                self._ivf.add_with_ids(vectors, ids)
            if self._rebuilding:
                self._pending.append(("add", ids, vectors))

    def remove(self, ids: np.ndarray) -> int:
        """Remove vectors by id (unknown ids are ignored); returns how many were removed."""
        ids = np.asarray(ids, np.int64).ravel()
        with self._lock:
            rows = self._rows_of(ids)
            present, gone = np.unique(ids[rows >= 0]), np.unique(rows[rows >= 0])
            if not len(present):
                return 0
            # Fill the holes left below the new end with the kept rows from above it.
            end = self._count - len(present)
            self._row_of[present] = -1
            holes = gone[gone < end]
            tail = np.arange(end, self._count)
            movers = tail[~np.isin(tail, gone)]
            self._id_store[holes] = self._id_store[movers]
            self._vector_store[holes] = self._vector_store[movers]
            self._row_of[self._id_store[holes]] = holes
            self._count = end
            selector = faiss.IDSelectorBatch(present)
            if self._ivf is not None:
                self._ivf.remove_ids(selector)
            if self._rebuilding:
                self._pending.append(("remove", present, None))
            return len(present)

    def _rows_of(self, ids: np.ndarray) -> np.ndarray:
        """The row of each id, -1 for one not stored."""
        ids = np.asarray(ids, np.int64)
        rows = np.full(len(ids), -1, np.int64)
        known = (ids >= 0) & (ids < len(self._row_of))
        rows[known] = self._row_of[ids[known]]
        return rows

    def _set_rows(self, ids: np.ndarray, rows: np.ndarray) -> None:
        needed = int(ids.max(initial=-1)) + 1
        if needed > len(self._row_of):  # grows by doubling, so adding ids one by one stays cheap
            grown = np.full(max(needed, 2 * len(self._row_of)), -1, np.int64)
            grown[: len(self._row_of)] = self._row_of
            self._row_of = grown
        self._row_of[ids] = rows

    def vector(self, item_id: int) -> np.ndarray | None:
        row = int(self._rows_of(np.array([item_id]))[0])
        return None if row < 0 else self._vectors[row].copy()

    # ------------------------------------------------------------------ search

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (queries, k), best first; id -1 and score -inf where fewer than k exist.
        `allowed`: only these ids may be returned."""
        queries = np.ascontiguousarray(queries, np.float32).reshape(-1, self.config.dim)
        with self._lock:
            if allowed is None:
                rows = None
            else:
                wanted = np.asarray(allowed, np.int64).ravel()
                rows = self._rows_of(wanted)
                rows = rows[rows >= 0]
                if self._ivf is None or len(rows) <= self.config.exact_subset_limit:
                    return self._exact(queries, k, rows)
            if self._ivf is None:
                return self._exact(queries, k, None)
            return self._approximate(queries, k, None if rows is None else self._ids[rows])

    def _exact(self, queries: np.ndarray, k: int, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        vectors = self._vectors if rows is None else self._vectors[rows]
        ids = self._ids if rows is None else self._ids[rows]
        scores_out = np.full((len(queries), k), -np.inf, np.float32)
        ids_out = np.full((len(queries), k), -1, np.int64)
        if len(ids) == 0:
            return scores_out, ids_out
        scores = queries @ vectors.T  # (queries, n)
        take = min(k, len(ids))
        top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        order = np.take_along_axis(scores, top, 1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, 1)
        scores_out[:, :take] = np.take_along_axis(scores, top, 1)
        ids_out[:, :take] = ids[top]
        return scores_out, ids_out

    def _approximate(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        candidates = k * self.config.refine_factor
        nprobe = self.config.nprobe
        # A bitmap over the ids (catalog ids count up from 1): built in one pass however many ids a filter
        # allows, and one bit test per candidate, where a batch selector hashes each.
        bitmap = None if allowed is None else allowed_bitmap(allowed)
        while True:
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            if bitmap is not None:
                selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))  # n: bytes, not bits
                params.sel = selector
            _, found = self._ivf.search(queries, candidates, params=params)
            # Enough candidates for every query, or every list already probed: re-rank.
            enough = (found >= 0).sum(1).min() >= min(k, len(allowed) if allowed is not None else len(self))
            if enough or nprobe >= self._ivf.nlist:
                break
            nprobe = min(self._ivf.nlist, nprobe * 4)
        scores_out = np.full((len(queries), k), -np.inf, np.float32)
        ids_out = np.full((len(queries), k), -1, np.int64)
        for q, row_ids in enumerate(found):
            row_ids = row_ids[row_ids >= 0]
            rows = self._rows_of(row_ids)
            exact = self._vectors[rows] @ queries[q]
            order = np.argsort(-exact)[:k]
            scores_out[q, : len(order)] = exact[order]
            ids_out[q, : len(order)] = row_ids[order]
        return scores_out, ids_out

    # ------------------------------------------------------------------ (re)building

    def needs_rebuild(self) -> bool:
        large = len(self) > self.config.flat_limit
        return large != (self._ivf is not None) and not self._rebuilding

    def rebuild(self, seed: int = 0) -> None:
        """Train an IVF-PQ index on the current vectors (or drop it when small). Queries keep using the
        previous state meanwhile; changes made during the build are replayed before the swap."""
        with self._lock:
            if len(self) <= self.config.flat_limit:
                self._ivf = None
                return
            self._rebuilding = True
            self._pending = []
            ids, vectors = self._ids.copy(), self._vectors.copy()
        try:
            index = self._train(vectors, seed)
            index.add_with_ids(vectors, ids)
            with self._lock:
                for change, change_ids, change_vectors in self._pending:
                    if change == "add":
                        index.remove_ids(faiss.IDSelectorBatch(change_ids))
                        index.add_with_ids(change_vectors, change_ids)
                    else:
                        index.remove_ids(faiss.IDSelectorBatch(change_ids))
                self._ivf = index
        finally:
            with self._lock:
                self._rebuilding = False
                self._pending = []

    def _train(self, vectors: np.ndarray, seed: int) -> faiss.IndexIVFPQ:
        dim = self.config.dim
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(len(vectors), min(len(vectors), self.config.train_sample), replace=False)]
        # k-means needs training points per centroid (FAISS warns under 39; 20 keeps the benchmarked 4,096
        # lists at 1 M vectors): small catalogs get fewer lists and smaller PQ codebooks.
        per_centroid = 20
        nlist = max(
            1, min(4096, 2 ** round(math.log2(4 * math.sqrt(len(vectors)))), len(sample) // per_centroid)
        )
        bits = max(1, min(8, int(math.log2(max(2, len(sample) // per_centroid)))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(
            quantizer, dim, nlist, self.config.pq_bytes, bits, faiss.METRIC_INNER_PRODUCT
        )
        index.cp.seed = seed
        index.pq.cp.seed = seed
        index.train(sample)
        return index

    # ------------------------------------------------------------------ persistence

    def dumps(self) -> bytes:
        """Ids, vectors, the trained index (if any) and what they were built from, as one blob: saved and
        replaced in one put, so a reader never sees a half-written index."""
        with self._lock:
            meta = {
                "format": FORMAT,
                "dim": self.config.dim,
                "count": len(self),
                "kind": self.kind,
                "versions": self.versions,
                "stamp": self.stamp,
            }
            arrays = {"ids": self._ids, "vectors": self._vectors}
            if self._ivf is not None:
                arrays["ivfpq"] = faiss.serialize_index(self._ivf)
            buffer = io.BytesIO()
            np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
        return buffer.getvalue()

    @classmethod
    def loads(cls, data: bytes, config: IndexConfig, versions: dict[str, str]) -> VectorIndex | None:
        """The saved index, or None when it is damaged or built from other versions (the caller then
        rebuilds it from the database). `stamp` says which catalog state it holds."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as saved:
                meta = json.loads(saved["meta"].tobytes())
                if (
                    meta.get("format") != FORMAT
                    or meta.get("dim") != config.dim
                    or meta.get("versions") != versions
                ):
                    return None
                ids, vectors = saved["ids"], saved["vectors"]
                ivf = faiss.deserialize_index(saved["ivfpq"]) if "ivfpq" in saved.files else None
            if len(ids) != meta["count"] or vectors.shape != (len(ids), config.dim) or (ids < 0).any():
                return None
            if ivf is not None and ivf.ntotal != len(ids):
                return None
            index = cls(config, versions)
            index._id_store, index._vector_store, index._count = ids.astype(np.int64), vectors, len(ids)
            index._set_rows(index._ids, np.arange(len(ids)))
            index._ivf = ivf
            index.stamp = meta.get("stamp") or {}
            return index
        except (OSError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile):
            return None
