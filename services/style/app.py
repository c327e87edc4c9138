"""The style service: `POST /style` (multipart `file`, optional form `boxes`: the items' boxes as JSON)
-> the 23 styles with probabilities, a main style and a sub-style."""

from __future__ import annotations

from fastapi import FastAPI, File, Form, UploadFile
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from services.style.model import MODEL, StyleClassifier
from shared.envelope import success
from shared.errors import ApiError, ErrorCode
from shared.imaging import decode_image
from shared.runtime import ModelRuntime, create_runtime
from shared.service import create_service_app, runtime_ready_check
from shared.settings import Settings, load_settings

BOXES = TypeAdapter(list[tuple[float, float, float, float]])


def create_app(settings: Settings | None = None, runtime: ModelRuntime | None = None) -> FastAPI:
    settings = settings or load_settings()
    app, state = create_service_app(
        "style", "K-Fashion style", "The look's styles (23, multi-label): main style and sub-style."
    )
    runtime = runtime or create_runtime(settings.models_dir, settings.runtime, state.registry)
    classifier = StyleClassifier(runtime)
    state.startup.append(lambda: runtime.load([MODEL]))
    state.ready_check = runtime_ready_check(runtime)

    @app.post("/style", tags=["inference"], summary="styles of the look in one image")
    async def style(
        file: UploadFile = File(..., description="the image"),
        boxes: str = Form("[]", description="JSON list of the items' [x, y, w, h]; none: the whole image"),
    ) -> dict:
        state.require_ready()
        try:
            item_boxes = BOXES.validate_json(boxes)
        except ValidationError as exc:
            raise ApiError(
                ErrorCode.VALIDATION_FAILED, "boxes: expected a JSON list of [x, y, w, h]"
            ) from exc
        image = decode_image(await file.read(), settings.image, file.filename or "file")
        result = await run_in_threadpool(classifier.classify, [(image.pixels, item_boxes)])
        return success({"file": image.source, **result[0]})

    return app
