"""The attribute service: `POST /attributes` (multipart `file` + form `items`, a JSON list of
{"region", "box": [x, y, w, h]}) -> per item its attributes, colour and embedding."""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI, File, Form, UploadFile
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from services.attributes.model import MODEL, AttributeClassifier, ItemBox
from shared.envelope import success
from shared.errors import ApiError, ErrorCode
from shared.imaging import decode_image
from shared.runtime import ModelRuntime, create_runtime
from shared.service import create_service_app, runtime_ready_check
from shared.settings import Settings, load_settings


class ItemIn(BaseModel):
    region: Literal["outer", "top", "bottom", "onepiece"]
    box: tuple[float, float, float, float] = Field(description="x, y, width, height in image pixels")


ITEMS = TypeAdapter(list[ItemIn])


def parse_items(text: str) -> list[ItemBox]:
    try:
        items = ITEMS.validate_json(text)
    except ValidationError as exc:
        raise ApiError(
            ErrorCode.VALIDATION_FAILED,
            "items: expected a JSON list of {region, box: [x, y, w, h]}",
            {"problems": [e["msg"] for e in exc.errors()[:5]]},
        ) from exc
    bad = [i for i, item in enumerate(items) if item.box[2] <= 0 or item.box[3] <= 0]
    if bad:
        raise ApiError(ErrorCode.VALIDATION_FAILED, f"items {bad}: box width and height must be > 0")
    return [ItemBox(item.region, item.box) for item in items]


def create_app(settings: Settings | None = None, runtime: ModelRuntime | None = None) -> FastAPI:
    settings = settings or load_settings()
    app, state = create_service_app(
        "attributes",
        "K-Fashion attributes",
        "Per garment: category, colour, length, sleeve, neckline, collar, fit, print, material, detail.",
    )
    runtime = runtime or create_runtime(settings.models_dir, settings.runtime, state.registry)
    classifier = AttributeClassifier(runtime, settings.gateway.top_k)
    state.startup.append(lambda: runtime.load([MODEL]))
    state.ready_check = runtime_ready_check(runtime)

    @app.post("/attributes", tags=["inference"], summary="attributes of each item of one image")
    async def attributes(
        file: UploadFile = File(..., description="the image"),
        items: str = Form(..., description='JSON: [{"region": "top", "box": [x, y, w, h]}, ...]'),
        top_k: int | None = Form(None, ge=1, le=50),
    ) -> dict:
        state.require_ready()
        boxes = parse_items(items)
        image = decode_image(await file.read(), settings.image, file.filename or "file")
        described = await run_in_threadpool(classifier.describe, image.pixels, boxes, top_k)
        return success({"file": image.source, "items": described})

    return app
