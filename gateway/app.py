"""The public API: /tagging (now, for up to gateway.sync_max_images images) and /tagging/jobs (large
inputs, in the background), over the model services in-process (embedded) or over HTTP."""

from __future__ import annotations

import io
import zipfile
from enum import StrEnum
from pathlib import Path, PurePosixPath

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from gateway.access import install_access, require_write
from gateway.catalog import SearchClient, catalog_router, product_form, store_tagged
from gateway.exports import drawn_jpeg, to_csv, to_xlsx
from gateway.inputs import Source, checked_url, collect_sources
from gateway.jobs import JobStore, JobWorker
from gateway.ports import SERVICE_NAMES, model_services
from gateway.tagging import Tagged, TaggingPipeline
from services.search.products import ProductFields
from shared.blobs import create_blob_store
from shared.db import database_engine
from shared.envelope import success
from shared.errors import ApiError, ErrorCode
from shared.imaging import decode_image
from shared.service import create_service_app
from shared.settings import Settings, load_settings
from shared.taxonomy import taxonomy_json

CONSOLE = Path(__file__).parent / "console"  # the web console: static files, no build step
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Format(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"
    image = "image"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    app, state = create_service_app(
        "gateway",
        "K-Fashion Serve",
        "Fashion photo tagging over the K-Fashion taxonomy. Every response is the envelope "
        '{"resultCode", "resultMessage", "body", "responseDate"}.',
    )
    install_access(app, settings.gateway.api_keys, settings.gateway.cors_origins)
    services = model_services(settings, state.registry)
    pipeline = TaggingPipeline(services, settings)
    store = JobStore(
        database_engine(settings.database_url), create_blob_store(settings.storage, settings.data_dir)
    )
    search = SearchClient(settings)
    app.include_router(catalog_router(settings, pipeline, search))

    async def tag_for_job(source: Source, options: dict) -> Tagged:
        """Tag one image of a job; a catalog job (`options["catalog"]`: the product's fields, maybe none)
        also stores it in the catalog, and its result says how (`catalog`: status, image_id)."""
        product = options.get("catalog")
        embedding = options.get("embedding", False)
        tagged = await pipeline.tag_source(source, options.get("top_k"), embedding or product is not None)
        if product is not None and not tagged.failed:
            (tagged.result["catalog"],) = await store_tagged(
                search, [tagged], ProductFields.model_validate(product)
            )
            if not embedding:  # needed to store it, not asked for in the results
                for item in tagged.result["items"]:
                    item.pop("embedding", None)
        return tagged

    worker = JobWorker(
        store, tag_for_job, settings.gateway.concurrency, callback_timeout_s=settings.gateway.url_timeout_s
    )
    state.startup.append(services.start)
    state.startup.append(search.start)

    def readiness() -> tuple[bool, dict]:
        ready, details = services.readiness()
        search_ready, search_details = search.readiness()
        return ready and search_ready, {**details, "search": search_details}

    state.ready_check = readiness

    state.started.append(worker.start)

    async def _stop() -> None:
        await worker.stop()
        await search.close()
        await pipeline.close()
        await services.close()

    state.shutdown.append(_stop)

    @app.post(
        "/tagging", tags=["tagging"], summary="tag images now: every garment, its attributes, the styles"
    )
    async def tagging(
        files: list[UploadFile] | None = File(None, description="images or zip archives, repeated"),
        urls: list[str] | None = Form(None, description="image URLs from allowed hosts, repeated"),
        folders: list[str] | None = Form(
            None, description="folder links on allowed hosts (an index page or an S3 listing), repeated"
        ),
        format: Format = Query(Format.json, description="json, csv, xlsx, or image (drawn; zip if several)"),
        size: int = Query(settings.gateway.draw_size, ge=64, le=4096, description="drawn image longest side"),
        top_k: int = Query(settings.gateway.top_k, ge=1, le=50),
        embedding: bool = Query(False, description="include each item's embedding vector"),
    ) -> Response:
        services.ensure_ready()
        sources = await collect_sources(
            files, urls, settings, settings.gateway.sync_max_images, "use POST /tagging/jobs", folders
        )
        tagged = await pipeline.tag_all(sources, top_k, embedding)
        if len(tagged) == 1 and tagged[0].failed:
            error = tagged[0].result["error"]
            raise ApiError(ErrorCode(error["code"]), error["message"], error.get("details"))
        return respond([t.result for t in tagged], format, tagged, size)

    def respond(results: list[dict], format: Format, tagged: list[Tagged] | None, size: int) -> Response:
        if format == Format.csv:
            return Response(
                to_csv(results), media_type="text/csv; charset=utf-8", headers=_attachment("tagging.csv")
            )
        if format == Format.xlsx:
            return Response(to_xlsx(results), media_type=XLSX_TYPE, headers=_attachment("tagging.xlsx"))
        if format == Format.image:
            drawn = [
                (t.result["file"], drawn_jpeg(t.image.pixels, t.result, size))
                for t in tagged or []
                if t.image
            ]
            if len(drawn) == 1:
                return Response(drawn[0][1], media_type="image/jpeg")
            return Response(_zip_of(drawn), media_type="application/zip", headers=_attachment("tagged.zip"))
        counts = {"total": len(results), "failed": sum(r["status"] == "failed" for r in results)}
        counts["done"] = counts["total"] - counts["failed"]
        return _json(success({"results": results, "counts": counts}))

    @app.post("/tagging/jobs", tags=["tagging"], status_code=202, summary="tag many images in the background")
    async def create_job(
        request: Request,
        files: list[UploadFile] | None = File(None, description="images or zip archives, repeated"),
        urls: list[str] | None = Form(None, description="image URLs from allowed hosts, repeated"),
        folders: list[str] | None = Form(
            None, description="folder links on allowed hosts (an index page or an S3 listing), repeated"
        ),
        top_k: int = Form(settings.gateway.top_k, ge=1, le=50),
        embedding: bool = Form(False),
        callback_url: str | None = Form(
            None, description="POST the job here when done (a host in KFASHION_GATEWAY__CALLBACK_HOSTS)"
        ),
        catalog: bool = Form(False, description="also add each image to the search catalog (a write key)"),
        product_id: str | None = Form(None, description="with catalog: the shop's id of the images' product"),
        product: str | None = Form(None, description="with catalog: JSON, the product's fields"),
    ) -> Response:
        options: dict = {"top_k": top_k, "embedding": embedding}
        if catalog:
            require_write(request, "adding a job's images to the catalog (catalog=true)")
            fields = product_form(product_id, product)
            options["catalog"] = fields.changes()
        elif product_id is not None or product is not None:
            raise ApiError(
                ErrorCode.VALIDATION_FAILED,
                "product_id and product describe catalog images: send them with catalog=true",
                {"field": "product_id" if product_id is not None else "product"},
            )
        callback = (
            checked_url(callback_url, settings.gateway.callback_hosts, "job callbacks", "CALLBACK_HOSTS")
            if callback_url
            else None
        )
        sources = await collect_sources(
            files, urls, settings, settings.gateway.job_max_images, folders=folders
        )
        job_id = await run_in_threadpool(store.create, sources, options, callback)
        worker.job_added()
        job = await run_in_threadpool(store.get, job_id)
        return _json(success(job | _links(job_id), status=202), 202)

    @app.get("/tagging/jobs", tags=["tagging"], summary="jobs, newest first, with their status and counts")
    async def list_jobs(offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500)) -> Response:
        total, jobs = await run_in_threadpool(store.newest, offset, limit)
        return _json(success({"total": total, "offset": offset, "jobs": [j | _links(j["id"]) for j in jobs]}))

    @app.get("/tagging/jobs/{job_id}", tags=["tagging"], summary="a job's status and counts")
    async def job_status(job_id: str) -> Response:
        job = await run_in_threadpool(store.get, job_id)
        return _json(success(job | _links(job_id)))

    @app.get("/tagging/jobs/{job_id}/results", tags=["tagging"], summary="results so far: json, csv or xlsx")
    async def job_results(job_id: str, format: Format = Query(Format.json)) -> Response:
        if format == Format.image:
            raise ApiError(
                ErrorCode.VALIDATION_FAILED, "drawn images: GET /tagging/jobs/{id}/images/{position}"
            )
        job = await run_in_threadpool(store.get, job_id)  # 404 for an unknown job
        results = await run_in_threadpool(store.results, job_id)
        if format == Format.json:
            return _json(success({"job": job, "results": results}))
        finished = [r for r in results if r["status"] != "pending"]
        return respond(finished, format, None, settings.gateway.draw_size)

    def draw_job_image(job_id: str, position: int, result: dict, size: int) -> bytes | None:
        """A tagged job image with its items drawn (JPEG); None when its input is not stored."""
        data = store.input_bytes(job_id, position)
        if data is None:
            return None
        return drawn_jpeg(decode_image(data, settings.image, result["file"]).pixels, result, size)

    @app.get("/tagging/jobs/{job_id}/images/{position}", tags=["tagging"], summary="one image, items drawn")
    async def job_image(
        job_id: str, position: int, size: int = Query(settings.gateway.draw_size, ge=64, le=4096)
    ) -> Response:
        result = await run_in_threadpool(store.result, job_id, position)
        if result.get("status") != "done":
            raise ApiError(
                ErrorCode.NOT_FOUND,
                f"image {position} of job {job_id} is {result.get('status')}, not tagged",
                {"status": result.get("status")},
            )
        drawn = await run_in_threadpool(draw_job_image, job_id, position, result, size)
        if drawn is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"the input of image {position} is not stored")
        return Response(drawn, media_type="image/jpeg")

    @app.get("/tagging/jobs/{job_id}/images", tags=["tagging"], summary="every tagged image, drawn, as a zip")
    async def job_images(
        job_id: str, size: int = Query(settings.gateway.draw_size, ge=64, le=4096)
    ) -> Response:
        def drawn_all() -> bytes:
            done = [r for r in store.results(job_id) if r.get("status") == "done"]
            drawn = [(r["file"], draw_job_image(job_id, r["position"], r, size)) for r in done]
            return _zip_of([(name, data) for name, data in drawn if data is not None])

        await run_in_threadpool(store.get, job_id)  # 404 for an unknown job
        data = await run_in_threadpool(drawn_all)
        return Response(data, media_type="application/zip", headers=_attachment(f"{job_id}-drawn.zip"))

    @app.get("/taxonomy", tags=["operations"], summary="every class with Korean and English names")
    def get_taxonomy() -> Response:
        return _json(success(taxonomy_json()))

    @app.get("/", include_in_schema=False)
    def console() -> FileResponse:
        return FileResponse(CONSOLE / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/console", StaticFiles(directory=CONSOLE), name="console")

    @app.delete("/tagging/jobs/{job_id}", tags=["tagging"], summary="delete a job, its inputs and results")
    async def delete_job(job_id: str) -> Response:
        await run_in_threadpool(store.delete, job_id)
        return _json(success({"id": job_id, "deleted": True}))

    @app.get("/services", tags=["operations"], summary="the model services and whether each is ready")
    def list_services() -> Response:
        ready, details = services.readiness()
        return _json(success({"ready": ready, **details}))

    @app.get("/services/{name}", tags=["operations"], summary="one model service")
    def service_status(name: str) -> Response:
        if name not in SERVICE_NAMES:
            raise ApiError(
                ErrorCode.UNKNOWN_SERVICE,
                f"unknown service {name!r}; the services are {', '.join(SERVICE_NAMES)}",
                {"service": name, "services": list(SERVICE_NAMES)},
            )
        ready, details = services.readiness()
        if "services" in details:
            return _json(success({"name": name, **details["services"][name]}))
        return _json(success({"name": name, "ready": ready, "mode": details["mode"]}))

    return app


def _json(envelope: dict, status: int = 200) -> Response:
    return JSONResponse(envelope, status_code=status)


def _links(job_id: str) -> dict:
    base = f"/tagging/jobs/{job_id}"
    return {
        "links": {
            "status": base,
            "json": f"{base}/results",
            "csv": f"{base}/results?format=csv",
            "xlsx": f"{base}/results?format=xlsx",
            "image": f"{base}/images/{{position}}?size=800",
        }
    }


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _zip_of(files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        seen: set[str] = set()
        for index, (name, data) in enumerate(files):
            entry = f"{PurePosixPath(name).stem}.jpg"
            if entry in seen:
                entry = f"{PurePosixPath(name).stem}_{index}.jpg"
            seen.add(entry)
            archive.writestr(entry, data)
    return buffer.getvalue()
