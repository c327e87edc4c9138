"""FastAPI glue shared by every service and the gateway: errors always leave as envelopes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.envelope import failure
from shared.errors import ApiError, ErrorCode

log = logging.getLogger("kfashion.web")

_HTTP_CODES = {
    400: ErrorCode.BAD_REQUEST,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.FILE_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_IMAGE_FORMAT,
    422: ErrorCode.VALIDATION_FAILED,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(failure(error), status_code=error.status)


def validation_failed(errors: Sequence[Any]) -> ApiError:
    """Pydantic's validation errors (of a request, or of a model validated by hand) as one envelope error."""
    problems = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")} for e in errors
    ]
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:3])
    return ApiError(ErrorCode.VALIDATION_FAILED, f"invalid request: {summary}", {"problems": problems})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_failed(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(
            exc.status_code, ErrorCode.BAD_REQUEST if exc.status_code < 500 else ErrorCode.INTERNAL_ERROR
        )
        error = ApiError(code, str(exc.detail))
        return JSONResponse(failure(error) | {"resultCode": exc.status_code}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            ApiError(ErrorCode.INTERNAL_ERROR, "internal error; the server log has the details")
        )
