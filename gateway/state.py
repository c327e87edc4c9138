"""What the gateway's routes work on, built once per app and handed to them as FastAPI dependencies:
the model services, the search service, the tagging pipeline, the job store and its worker; and the one
form of image inputs (files, urls, folders) every route that takes images reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, File, Form, Request, UploadFile
from prometheus_client import CollectorRegistry

from gateway.catalog import store_tagged
from gateway.clients import ModelServices, SearchClient
from gateway.inputs import Source, collect_sources
from gateway.jobs import JobStore, JobWorker
from gateway.tagging import Tagged, TaggingPipeline
from services.search.schemas import ProductFields
from shared.blobs import create_blob_store
from shared.db import database_engine
from shared.settings import Settings


@dataclass
class Gateway:
    settings: Settings
    services: ModelServices
    search: SearchClient
    registry: CollectorRegistry | None = None  # where the job worker's metrics go
    pipeline: TaggingPipeline = field(init=False)
    jobs: JobStore = field(init=False)
    worker: JobWorker = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.pipeline = TaggingPipeline(self.services, settings)
        self.jobs = JobStore(
            database_engine(settings.database_url), create_blob_store(settings.storage, settings.data_dir)
        )
        self.worker = JobWorker(
            self.jobs,
            self.tag_for_job,
            settings.gateway.concurrency,
            callback_timeout_s=settings.gateway.url_timeout_s,
            registry=self.registry,
        )

    async def tag_for_job(self, source: Source, options: dict) -> Tagged:
        """Tag one image of a job; a catalog job (`options["catalog"]`: the product's fields, maybe none)
        also stores it in the catalog, and its result says how (`catalog`: status, image_id)."""
        product = options.get("catalog")
        embedding = options.get("embedding", False)
        tagged = await self.pipeline.tag_source(
            source, options.get("top_k"), embedding or product is not None
        )
        if product is not None and not tagged.failed:
            (tagged.result["catalog"],) = await store_tagged(
                self.search, [tagged], ProductFields.model_validate(product)
            )
            if not embedding:  # needed to store it, not asked for in the results
                for item in tagged.result["items"]:
                    item.pop("embedding", None)
        return tagged

    def readiness(self) -> tuple[bool, dict]:
        ready, details = self.services.readiness()
        search_ready, search_details = self.search.readiness()
        return ready and search_ready, {**details, "search": search_details}

    async def close(self) -> None:
        await self.worker.stop()
        await self.search.close()
        await self.pipeline.close()
        await self.services.close()


def gateway_state(request: Request) -> Gateway:
    return request.app.state.gateway


GatewayState = Annotated[Gateway, Depends(gateway_state)]


@dataclass
class ImageForm:
    """The image inputs of a multipart request: uploads (images or zip archives), image URLs, folder links."""

    files: list[UploadFile] | None
    urls: list[str] | None
    folders: list[str] | None

    async def sources(self, settings: Settings, limit: int, over_limit_hint: str = "") -> list[Source]:
        """Every source, checked (gateway/inputs.py, collect_sources)."""
        return await collect_sources(self.files, self.urls, settings, limit, over_limit_hint, self.folders)


def image_form(
    files: list[UploadFile] | None = File(None, description="images or zip archives, repeated"),
    urls: list[str] | None = Form(None, description="image URLs from allowed hosts, repeated"),
    folders: list[str] | None = Form(
        None, description="folder links on allowed hosts (an index page or an S3 listing), repeated"
    ),
) -> ImageForm:
    return ImageForm(files, urls, folders)


Images = Annotated[ImageForm, Depends(image_form)]
