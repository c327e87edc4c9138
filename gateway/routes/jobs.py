"""/tagging/jobs: many images tagged in the background (optionally added to the catalog), their status,
results in every format, drawn images, deletion."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from gateway.access import CallerOf, require_write
from gateway.catalog import product_form
from gateway.exports import Format, attachment, drawn_jpeg, results_response, zip_of
from gateway.inputs import checked_url
from gateway.jobs import JobStore
from gateway.state import GatewayState, Images
from shared.envelope import success
from shared.errors import ApiError, ErrorCode, every_input_failed
from shared.imaging import decode_image
from shared.schema import MAX_ROW_ID
from shared.settings import Settings
from shared.web import Offset

router = APIRouter(tags=["tagging"])
SIZE = Query(None, ge=64, le=4096, description="drawn image longest side (default: gateway.draw_size)")


def links(job_id: str) -> dict:
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


@router.post("/tagging/jobs", status_code=202, summary="tag many images in the background")
async def create_job(
    request: Request,
    gateway: GatewayState,
    caller: CallerOf,
    images: Images,
    top_k: int | None = Form(None, ge=1, le=50, description="labels per attribute (default: gateway.top_k)"),
    embedding: bool = Form(False),
    callback_url: str | None = Form(
        None, description="POST the job here when done (a host in KFASHION_GATEWAY__CALLBACK_HOSTS)"
    ),
    catalog: bool = Form(False, description="also add each image to the search catalog (a write key)"),
    product_id: str | None = Form(None, description="with catalog: the shop's id of the images' product"),
    product: str | None = Form(None, description="with catalog: JSON, the product's fields"),
) -> Response:
    settings = gateway.settings
    options: dict = {"top_k": top_k or settings.gateway.top_k, "embedding": embedding}
    if catalog:
        require_write(request, "adding a job's images to the catalog (catalog=true)")
        options["catalog"] = product_form(product_id, product).changes()
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
    sources = await images.sources(settings, settings.gateway.job_max_images)
    arrived = [
        {"status": "failed", "file": s.name, "error": s.error.to_dict()} if s.error else {"status": "pending"}
        for s in sources
    ]
    if error := every_input_failed(arrived):  # nothing would be tagged: no job, nothing stored
        raise error
    job_id = await run_in_threadpool(gateway.jobs.create, sources, options, callback, caller.owner)
    gateway.worker.job_added()
    job = await run_in_threadpool(gateway.jobs.get, job_id)
    return JSONResponse(success(job | links(job_id), status=202), status_code=202)


@router.get("/tagging/jobs", summary="jobs, newest first, with their status and counts (this key's)")
async def list_jobs(
    gateway: GatewayState, caller: CallerOf, offset: Offset = 0, limit: int = Query(50, ge=1, le=500)
) -> Response:
    total, jobs = await run_in_threadpool(gateway.jobs.newest, offset, limit, caller.jobs_of)
    return JSONResponse(
        success({"total": total, "offset": offset, "jobs": [j | links(j["id"]) for j in jobs]})
    )


@router.get("/tagging/jobs/{job_id}", summary="a job's status and counts")
async def job_status(gateway: GatewayState, caller: CallerOf, job_id: str) -> Response:
    job = await run_in_threadpool(gateway.jobs.get, job_id, caller.jobs_of)
    return JSONResponse(success(job | links(job_id)))


@router.get("/tagging/jobs/{job_id}/results", summary="results so far: json, csv or xlsx")
async def job_results(
    gateway: GatewayState, caller: CallerOf, job_id: str, format: Format = Query(Format.json)
) -> Response:
    if format == Format.image:
        raise ApiError(ErrorCode.VALIDATION_FAILED, "drawn images: GET /tagging/jobs/{id}/images/{position}")
    job = await run_in_threadpool(gateway.jobs.get, job_id, caller.jobs_of)  # 404: unknown, or another's
    results = await run_in_threadpool(gateway.jobs.results, job_id)
    if format == Format.json:
        return JSONResponse(success({"job": job, "results": results}))
    finished = [r for r in results if r["status"] != "pending"]
    return results_response(finished, format, None, gateway.settings.gateway.draw_size)


def draw_job_image(
    jobs: JobStore, settings: Settings, job_id: str, position: int, result: dict, size: int
) -> bytes | None:
    """A tagged job image with its items drawn (JPEG); None when its input is not stored."""
    data = jobs.input_bytes(job_id, position)
    if data is None:
        return None
    return drawn_jpeg(decode_image(data, settings.image, result["file"]).pixels, result, size)


@router.get("/tagging/jobs/{job_id}/images/{position}", summary="one image, items drawn")
async def job_image(
    gateway: GatewayState,
    caller: CallerOf,
    job_id: str,
    position: Annotated[int, Path(ge=0, le=MAX_ROW_ID)],
    size: int | None = SIZE,
) -> Response:
    await run_in_threadpool(gateway.jobs.get, job_id, caller.jobs_of)  # 404: unknown, or another's
    result = await run_in_threadpool(gateway.jobs.result, job_id, position)
    if result.get("status") != "done":
        raise ApiError(
            ErrorCode.NOT_FOUND,
            f"image {position} of job {job_id} is {result.get('status')}, not tagged",
            {"status": result.get("status")},
        )
    size = size or gateway.settings.gateway.draw_size
    drawn = await run_in_threadpool(
        draw_job_image, gateway.jobs, gateway.settings, job_id, position, result, size
    )
    if drawn is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"the input of image {position} is not stored")
    return Response(drawn, media_type="image/jpeg")


def drawn_job_zip(jobs: JobStore, settings: Settings, job_id: str, size: int) -> bytes:
    done = [r for r in jobs.results(job_id) if r.get("status") == "done"]
    drawn = [(r["file"], draw_job_image(jobs, settings, job_id, r["position"], r, size)) for r in done]
    return zip_of([(name, data) for name, data in drawn if data is not None])


@router.get("/tagging/jobs/{job_id}/images", summary="every tagged image, drawn, as a zip")
async def job_images(
    gateway: GatewayState, caller: CallerOf, job_id: str, size: int | None = SIZE
) -> Response:
    await run_in_threadpool(gateway.jobs.get, job_id, caller.jobs_of)  # 404: unknown, or another's
    size = size or gateway.settings.gateway.draw_size
    data = await run_in_threadpool(drawn_job_zip, gateway.jobs, gateway.settings, job_id, size)
    return Response(data, media_type="application/zip", headers=attachment(f"{job_id}-drawn.zip"))


@router.delete("/tagging/jobs/{job_id}", summary="delete a job, its inputs and results")
async def delete_job(gateway: GatewayState, caller: CallerOf, job_id: str) -> Response:
    await run_in_threadpool(gateway.jobs.delete, job_id, caller.jobs_of)
    return JSONResponse(success({"id": job_id, "deleted": True}))
