"""The taxonomy, the model services' state, and the web console."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response

from gateway.clients import SERVICE_NAMES
from gateway.state import GatewayState
from shared.envelope import success
from shared.errors import ApiError, ErrorCode
from shared.taxonomy import taxonomy_json

CONSOLE = Path(__file__).parents[1] / "console"  # the web console: static files, no build step
router = APIRouter(tags=["operations"])


@router.get("/taxonomy", summary="every class with Korean and English names")
def get_taxonomy() -> Response:
    return JSONResponse(success(taxonomy_json()))


@router.get("/", include_in_schema=False)
def console() -> FileResponse:
    return FileResponse(CONSOLE / "index.html", media_type="text/html; charset=utf-8")


@router.get("/services", summary="the model services and whether each is ready")
def list_services(gateway: GatewayState) -> Response:
    ready, details = gateway.services.readiness()
    return JSONResponse(success({"ready": ready, **details}))


@router.get("/services/{name}", summary="one model service")
def service_status(gateway: GatewayState, name: str) -> Response:
    if name not in SERVICE_NAMES:
        raise ApiError(
            ErrorCode.UNKNOWN_SERVICE,
            f"unknown service {name!r}; the services are {', '.join(SERVICE_NAMES)}",
            {"service": name, "services": list(SERVICE_NAMES)},
        )
    ready, details = gateway.services.readiness()
    if "services" in details:
        return JSONResponse(success({"name": name, **details["services"][name]}))
    return JSONResponse(success({"name": name, "ready": ready, "mode": details["mode"]}))
