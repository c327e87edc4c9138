"""The search service: the catalog (database + blob store), its vector indexes, collections, trends and
recommendations. The gateway tags photos and calls it (in-process when embedded, over HTTP otherwise)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from services.recommend.operations import Recommendations
from services.recommend.routes import router as recommend_router
from services.search.catalog import CatalogStore
from services.search.collections import CollectionStore
from services.search.operations import CatalogContext
from services.search.routes import router as catalog_router
from services.search.service import CatalogSearch, FaissIndexes, index_versions
from shared.blobs import BlobStore, create_blob_store
from shared.db import database_engine
from shared.service import create_service_app
from shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from services.search.milvus_index import MilvusIndexes


def index_store(settings: Settings, blobs: BlobStore) -> FaissIndexes | MilvusIndexes:
    """Where the indexes live, as the settings say (KFASHION_SEARCH__BACKEND)."""
    if settings.search.backend == "faiss":
        return FaissIndexes(blobs)
    from services.search.milvus_index import MilvusIndexes

    search = settings.search
    return MilvusIndexes(
        search.milvus_uri or str((settings.data_dir / "milvus.db").resolve()),
        search.milvus_prefix,
        search.milvus_token,
        search.milvus_database,
        search.milvus_index_type,
        search.milvus_index_params,
        search.milvus_search_params,
    )


def catalog_search(settings: Settings, engine: Engine, blobs: BlobStore) -> CatalogSearch:
    """The catalog with its indexes, not yet opened (`open` loads or rebuilds the indexes)."""
    store = index_store(settings, blobs)
    return CatalogSearch(CatalogStore(engine, blobs), blobs, index_versions(settings.models_dir), store=store)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    app, state = create_service_app(
        "search",
        "K-Fashion search",
        "The catalog and its FAISS indexes: similar items and looks, text/tag queries, collections, "
        "trends and outfit recommendations over tagged images.",
    )
    engine = database_engine(settings.database_url)
    blobs = create_blob_store(settings.storage, settings.data_dir)
    search = catalog_search(settings, engine, blobs)
    app.state.catalog = CatalogContext(settings, search, CollectionStore(engine))
    app.state.recommendations = Recommendations(search)
    app.include_router(catalog_router)
    app.include_router(recommend_router)
    state.startup.append(search.open)
    state.ready_check = lambda: (search.ready.is_set(), search.status())
    state.shutdown.append(search.close)
    state.shutdown.append(engine.dispose)
    return app
