"""POST /tagging: tag images now (up to gateway.sync_max_images), answered as JSON, CSV, Excel or drawn."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import Response

from gateway.exports import Format, results_response
from gateway.state import GatewayState, Images
from shared.errors import every_input_failed

router = APIRouter(tags=["tagging"])


@router.post("/tagging", summary="tag images now: every garment, its attributes, the styles")
async def tagging(
    gateway: GatewayState,
    images: Images,
    format: Format = Query(Format.json, description="json, csv, xlsx, or image (drawn; zip if several)"),
    size: int | None = Query(
        None, ge=64, le=4096, description="drawn image longest side (default: gateway.draw_size)"
    ),
    top_k: int | None = Query(None, ge=1, le=50, description="labels per attribute (default: gateway.top_k)"),
    embedding: bool = Query(False, description="include each item's embedding vector"),
) -> Response:
    settings = gateway.settings.gateway
    gateway.services.ensure_ready()
    sources = await images.sources(gateway.settings, settings.sync_max_images, "use POST /tagging/jobs")
    tagged = await gateway.pipeline.tag_all(sources, top_k or settings.top_k, embedding)
    if error := every_input_failed([t.result for t in tagged]):
        raise error
    return results_response([t.result for t in tagged], format, tagged, size or settings.draw_size)
