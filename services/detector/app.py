"""The detector service: `POST /detect` (multipart `files`, repeated) -> items per image."""

from __future__ import annotations

from fastapi import FastAPI, File, UploadFile
from starlette.concurrency import run_in_threadpool

from services.detector.model import MODEL, Detector, detection_json
from shared.envelope import success
from shared.imaging import decode_image
from shared.runtime import ModelRuntime, create_runtime
from shared.service import create_service_app, runtime_ready_check
from shared.settings import Settings, load_settings


def create_app(settings: Settings | None = None, runtime: ModelRuntime | None = None) -> FastAPI:
    settings = settings or load_settings()
    app, state = create_service_app(
        "detector", "K-Fashion detector", "Finds garments (outer, top, bottom, onepiece) with their boxes."
    )
    runtime = runtime or create_runtime(settings.models_dir, settings.runtime, state.registry)
    detector = Detector(runtime, settings.detector)
    state.startup.append(lambda: runtime.load([MODEL]))
    state.ready_check = runtime_ready_check(runtime)

    @app.post("/detect", tags=["inference"], summary="items of each image (all images in one model call)")
    async def detect(files: list[UploadFile] = File(..., description="images, repeated")) -> dict:
        state.require_ready()
        images = [
            decode_image(await upload.read(), settings.image, upload.filename or f"file{i}")
            for i, upload in enumerate(files)
        ]
        found = await run_in_threadpool(detector.detect, [image.pixels for image in images])
        return success(
            {
                "results": [
                    {
                        "file": image.source,
                        "width": image.width,
                        "height": image.height,
                        "items": [detection_json(d) for d in detections],
                    }
                    for image, detections in zip(images, found, strict=True)
                ],
                "settings": detector.describe(),
            }
        )

    return app
