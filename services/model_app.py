"""The one front door of every model service: `create_model_app(model)` serves any ImageModel
(shared/inference.py) at its spec's route, with the shared /healthz, /readyz and /metrics, so adding a model
service is a model class and a schemas.py, not another app. `build_models` makes the models for a runtime,
for a service of its own (`model_service_app`) or for the embedded gateway (all three on one runtime)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from services.attributes.model import AttributeClassifier
from services.detector.model import Detector
from services.style.model import StyleClassifier
from shared.envelope import success
from shared.errors import ApiError, ErrorCode
from shared.imaging import decode_image
from shared.inference import ImageModel
from shared.runtime import ModelRuntime, create_runtime
from shared.service import create_service_app, runtime_ready_check
from shared.settings import ImageLimits, Settings, load_settings
from shared.web import body_schema, form_fields, validated
from shared.work import ModelExecutor

MODEL_SERVICES = ("detector", "attributes", "style")


def build_models(settings: Settings, runtime: ModelRuntime, names: tuple[str, ...] = MODEL_SERVICES) -> dict:
    """The models of `names` on `runtime`, each reading only its own settings."""
    makers = {
        "detector": lambda: Detector(runtime, settings.detector),
        "attributes": lambda: AttributeClassifier(runtime),
        "style": lambda: StyleClassifier(runtime),
    }
    return {name: makers[name]() for name in names}


def create_model_app(
    model: ImageModel, limits: ImageLimits, registry: CollectorRegistry, executor: ModelExecutor
) -> FastAPI:
    """`registry`: the one the model's runtime reports into; `executor`: where its calls run."""
    spec = model.spec
    app, state = create_service_app(spec.name, spec.title, spec.description, registry)
    app.state.model = model
    app.state.image_limits = limits
    app.state.executor = executor
    state.shutdown.append(executor.close)
    state.startup.append(lambda: model.runtime.load([spec.name]))
    state.ready_check = runtime_ready_check(model.runtime)
    app.add_api_route(
        spec.route,
        predict,
        methods=["POST"],
        tags=["inference"],
        summary=spec.summary,
        openapi_extra=body_schema(spec.request, spec.file_field, json_body=False),
    )
    return app


def model_service_app(name: str, settings: Settings | None = None) -> FastAPI:
    """One model service, its own process (`kfashion serve --service NAME`)."""
    settings = settings or load_settings()
    registry = CollectorRegistry()
    runtime = create_runtime(settings.models_dir, settings.runtime, registry)
    executor = ModelExecutor(settings.runtime.workers, settings.runtime.queue, settings.runtime.nice)
    return create_model_app(
        build_models(settings, runtime, (name,))[name], settings.image, registry, executor
    )


async def predict(request: Request) -> JSONResponse:
    """POST <spec.route>: the image(s) in the spec's file field, the request's fields beside them."""
    model: ImageModel = request.app.state.model
    spec = model.spec
    request.app.state.service.require_ready()
    form = await request.form()
    uploads = [f for f in form.getlist(spec.file_field) if isinstance(f, UploadFile)]
    if not uploads:
        raise ApiError(ErrorCode.EMPTY_REQUEST, f"send the image in the multipart field {spec.file_field!r}")
    if not spec.batched and len(uploads) > 1:
        raise ApiError(ErrorCode.TOO_MANY_FILES, f"{spec.route} takes one image", {"images": len(uploads)})
    options = validated(spec.request, form_fields(form, skip=spec.file_field))
    limits = request.app.state.image_limits
    images = [
        await run_in_threadpool(decode_image, await upload.read(), limits, upload.filename or f"file{i}")
        for i, upload in enumerate(uploads)
    ]
    executor: ModelExecutor = request.app.state.executor
    answers = await executor.run(model.predict, [i.pixels for i in images], [options] * len(images))
    if not spec.batched:
        return JSONResponse(success({"file": images[0].source, **answers[0].model_dump()}))
    results = [
        {"file": image.source, "width": image.width, "height": image.height, **answer.model_dump()}
        for image, answer in zip(images, answers, strict=True)
    ]
    return JSONResponse(success({"results": results, "settings": model.options()}))
