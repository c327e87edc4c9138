"""The /tagging pipeline, one path for every input and both run modes:
decode -> detect -> crop -> attributes and style (at the same time) -> one result per image."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx2

from gateway.clients import ImageInput, ModelServices
from gateway.inputs import Source, fetch
from services.attributes.schemas import ATTRIBUTES, AttributesRequest, ItemBox
from services.detector.schemas import DETECTOR, DetectRequest
from services.style.schemas import NO_STYLE, STYLE, StyleRequest
from shared.errors import ApiError, ErrorCode
from shared.imaging import decode_image
from shared.labels import label_values
from shared.settings import Settings
from shared.taxonomy import REGIONS
from shared.work import run_nicer

log = logging.getLogger("kfashion.gateway")


@dataclass
class Tagged:
    """One source's outcome: a result (done or failed) and, when decoded, the image for drawing."""

    result: dict
    image: ImageInput | None = None

    @property
    def failed(self) -> bool:
        return self.result["status"] == "failed"


def failed_result(name: str, error: ApiError) -> dict:
    return {"file": name, "status": "failed", "error": error.to_dict()}


class TaggingPipeline:
    def __init__(self, services: ModelServices, settings: Settings):
        self.services = services
        self.settings = settings
        self.http = httpx2.AsyncClient(timeout=settings.gateway.url_timeout_s)
        # Decoding is model work too: on threads of its own at the model threads' priority, so that a
        # tagging load's photos do not take the CPU from cheap requests (search, catalog reads, health).
        self._decoding = ThreadPoolExecutor(
            settings.runtime.workers,
            thread_name_prefix="decode",
            initializer=run_nicer,
            initargs=(settings.runtime.nice,),
        )

    async def tag(self, image: ImageInput, top_k: int | None = None, embedding: bool = False) -> dict:
        detected = (await self.services.predict(DETECTOR, image, DetectRequest())).items
        if detected:
            boxes = [ItemBox(region=item.region, box=tuple(item.box)) for item in detected]
            described, style = await asyncio.gather(
                self.services.predict(
                    ATTRIBUTES,
                    image,
                    AttributesRequest(items=boxes, top_k=top_k or self.settings.gateway.top_k),
                ),
                self.services.predict(STYLE, image, StyleRequest(boxes=[b.box for b in boxes])),
            )
            read = described.items
        else:
            # No garment, no look to style: the style model reads the person the items outline, and on a
            # picture without one it names noise (a coffee cup came out "sexy / resort").
            read, style = [], NO_STYLE
        full_items = []
        for item, attributes in zip(detected, read, strict=True):
            read_json = attributes.model_dump()
            full = {**item.model_dump(), "attributes": read_json["attributes"], "color": read_json["color"]}
            if embedding:
                full["embedding"] = read_json["embedding"]
            full_items.append(full)
        # The seed's per-region summary: the best-scoring item of each region, as the label JSON writes it.
        regions: dict[str, dict] = {}
        for region in REGIONS:
            best = max(
                (i for i in full_items if i["region"] == region), key=lambda i: i["score"], default=None
            )
            regions[region] = label_values(best["attributes"]) if best else {}
        return {
            "file": image.name,
            "status": "done",
            "width": int(image.pixels.shape[1]),
            "height": int(image.pixels.shape[0]),
            **style.model_dump(),
            **regions,
            "items": full_items,
        }

    async def load(self, source: Source) -> ImageInput:
        if source.error:
            raise source.error
        data = (
            source.data
            if source.data is not None
            else await fetch(self.http, source.url or "", self.settings.image)
        )
        # Decoding a large photo takes a while: off the event loop, so other requests are answered meanwhile.
        decoded = await asyncio.get_running_loop().run_in_executor(
            self._decoding, decode_image, data, self.settings.image, source.name
        )
        return ImageInput(source.name, data, decoded.pixels)

    async def tag_source(self, source: Source, top_k: int | None = None, embedding: bool = False) -> Tagged:
        """A failure of this source (bad file, unreachable URL) is its result; a service that is down or
        an unexpected error is raised, since it is not the file's fault."""
        try:
            image = await self.load(source)
        except ApiError as error:
            return Tagged(failed_result(source.name, error))
        return Tagged(await self.tag(image, top_k, embedding), image)

    async def tag_all(
        self, sources: list[Source], top_k: int | None = None, embedding: bool = False
    ) -> list[Tagged]:
        limit = asyncio.Semaphore(self.settings.gateway.concurrency)

        async def one(source: Source) -> Tagged:
            async with limit:
                try:
                    return await self.tag_source(source, top_k, embedding)
                except ApiError as error:
                    if error.code == ErrorCode.SERVICE_UNAVAILABLE:
                        raise
                    return Tagged(failed_result(source.name, error))

        return list(await asyncio.gather(*(one(s) for s in sources)))

    async def close(self) -> None:
        await self.http.aclose()
        self._decoding.shutdown(wait=False, cancel_futures=True)
