"""The search service's memory as the catalog grows, with each index store: a catalog of generated tagged
looks (drawn as bench/recommend.py draws them: random 128-d embeddings, no images or models) written to
SQLite in bulk (rows in batches, then the text index and the look counts derived as for a catalog from
before they were kept, `CatalogStore.derive_missing`, and the FAISS index built and saved), then a fresh
process that opens it as a search service does (FAISS: the saved index read back; Milvus, a server on
loopback from .venv-milvus: new collections built from the database) and answers one photo search, one
free-word text search and one recommendation, which load what each keeps in memory. RSS after each step,
against the process before, and the highest RSS while opening. `milvus-at-once` is the Milvus store
building its collections from every item's vector read at once (as before they were read a page of
images at a time), the baseline of the open's peak.

    .venv/bin/python -m bench.search_memory [--images 2000 43000] [--stores faiss,milvus,milvus-at-once]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.memory import peak_rss_mb, rss_mb


def measure(folder: Path, store_name: str, milvus_uri: str) -> dict:
    """One store over the catalog in `folder`, in this process."""
    base = rss_mb()
    from services.recommend.model import Preferences, Recommender
    from services.search import service
    from services.search.catalog import CatalogStore
    from services.search.milvus_index import MilvusIndexes
    from services.search.service import CatalogSearch, FaissIndexes
    from shared.blobs import create_blob_store
    from shared.db import database_engine
    from shared.settings import StorageSettings
    from tests.catalog_data import VERSIONS

    imported = rss_mb()
    blobs = create_blob_store(StorageSettings(), folder)
    if store_name == "milvus-at-once":
        service.REBUILD_PAGE_IMAGES = 1 << 40
    # A prefix of its own: every Milvus measure builds its collections from the database.
    prefix = f"{folder.name}_{store_name.replace('-', '_')}"
    store = FaissIndexes(blobs) if store_name == "faiss" else MilvusIndexes(milvus_uri, prefix)
    search = CatalogSearch(
        CatalogStore(database_engine(f"sqlite:///{folder}/catalog.db"), blobs), blobs, VERSIONS, store=store
    )
    began = time.perf_counter()
    search.open()
    opened_s = time.perf_counter() - began
    items = len(search.indexes["items"])
    opened, opened_peak = rss_mb(), peak_rss_mb()
    row = search.catalog.looks([1])[0]  # the first image's first item
    vector = search.indexes["items"].vector(row["id"])
    search.similar_items(vector, 10)
    searched = rss_mb()
    search.text_items(["블랙", "셔츠"], {}, 10)
    texted = rss_mb()
    query = {k: row[k] for k in ("id", "image_id", "region", "attributes", "style")}
    regions = [r for r in ("outer", "top", "bottom") if r != row["region"]]
    Recommender(search).matching(query, vector, regions, 10, Preferences({}, {}), row["image_id"])
    recommended = rss_mb()
    search.close()
    return {
        "store": store_name,
        "items": items,
        "open_s": round(opened_s, 1),
        "modules_mb": round(imported - base),
        "open_mb": round(opened - imported),
        "open_peak_mb": round(opened_peak - imported),
        "photo_search_mb": round(searched - opened),
        "text_index_mb": round(texted - searched),
        "recommender_mb": round(recommended - texted),
        "total_mb": round(recommended - base),
    }


def bulk_catalog(images: int, folder: Path, batch: int = 5_000) -> None:
    """The catalog bench.recommend's `filled_catalog` makes (the same looks), its rows written in batches
    rather than image by image; then its derived state and its FAISS index."""
    import random
    from datetime import datetime

    from sqlalchemy import insert

    from bench.recommend import drawn_look
    from services.search.catalog import CatalogStore
    from services.search.service import CatalogSearch
    from shared.blobs import create_blob_store
    from shared.db import database_engine
    from shared.schema import catalog_images, catalog_items
    from shared.settings import StorageSettings
    from tests.catalog_data import VERSIONS

    blobs = create_blob_store(StorageSettings(), folder)
    store = CatalogStore(database_engine(f"sqlite:///{folder}/catalog.db"), blobs)
    rng = random.Random(0)
    for start in range(0, images, batch):
        image_rows, item_rows = [], []
        for n in range(start, min(start + batch, images)):
            result = drawn_look(rng, n)
            image_rows.append(
                {"id": n + 1, "sha256": f"{n:064x}", "file_name": f"{n}.jpg", "blob_key": f"none/{n}",
                 "width": result["width"], "height": result["height"], "style": result["style"],
                 "sub_style": None, "styles": [], "created": datetime(2026, 12, 1), "versions": VERSIONS}
            )  # fmt: skip
            item_rows += [CatalogStore._item_row(n + 1, item) for item in result["items"]]
        with store.engine.begin() as db:
            db.execute(insert(catalog_images), image_rows)
            db.execute(insert(catalog_items), item_rows)
    store.derive_missing()
    search = CatalogSearch(store, blobs, VERSIONS)
    search.open()  # builds the FAISS indexes from the database; closing saves them
    search.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, nargs="+", default=[2_000, 43_000])
    parser.add_argument("--stores", default="faiss,milvus")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # folder store uri: measure, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(Path(args.one[0]), args.one[1], args.one[2])))
        return
    from tests.milvus_server import MilvusServer

    print(f"{platform.processor() or platform.machine()}, generated looks (about 2.3 items an image)")
    with tempfile.TemporaryDirectory() as tmp:
        server = MilvusServer(Path(tmp)).start() if "milvus" in args.stores else None
        try:
            for images in args.images:
                folder = Path(tmp) / f"catalog{images}"
                began = time.perf_counter()
                bulk_catalog(images, folder)
                print(f"{images:,} images written in {time.perf_counter() - began:.0f} s")
                for store in args.stores.split(","):
                    uri = server.uri if server else ""
                    one = [sys.executable, "-m", "bench.search_memory", "--one", str(folder), store, uri]
                    print(subprocess.run(one, capture_output=True, text=True, check=True).stdout.strip())
        finally:
            if server:
                server.stop()


if __name__ == "__main__":
    main()
