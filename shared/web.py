"""FastAPI glue shared by every service and the gateway: errors always leave as envelopes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.envelope import failure
from shared.errors import ApiError, ErrorCode
from shared.schema import MAX_ROW_ID

log = logging.getLogger("kfashion.web")
ModelT = TypeVar("ModelT", bound=BaseModel)
RowId = Annotated[int, Path(ge=0, le=MAX_ROW_ID, description="a catalog id")]  # a path's database id
Offset = Annotated[int, Query(ge=0, le=MAX_ROW_ID, description="rows to skip")]

_HTTP_CODES = {
    400: ErrorCode.BAD_REQUEST,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.FILE_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_IMAGE_FORMAT,
    422: ErrorCode.VALIDATION_FAILED,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}


RequestCheck = Callable[[Request], Response | None]


class RequestGate:
    """Middleware that runs `check` on each HTTP request before the app: the check's answer (a refusal)
    is sent instead of the app's when it gives one. Plain ASGI rather than Starlette's
    `@app.middleware("http")`, which runs each request through a task group and streams per layer: that
    machinery was the event loop's largest own work under a tagging load, and text searches queued behind
    it (search under load 16.7 -> 10.8 ms; docs/experiments/benchmarks-log.md, "Middleware")."""

    def __init__(self, app: ASGIApp, check: RequestCheck) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.check(Request(scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def add_inner_middleware(app: FastAPI, middleware: type, **options: Any) -> None:
    """Add `middleware` inside the request metrics and security headers that create_service_app installed
    (`app.add_middleware` would put it outside them), so that its own answers (refusals) are counted and
    carry the headers as every other answer does. What is added this way later runs later."""
    if app.middleware_stack is not None:  # as app.add_middleware: the stack is built once, at start
        raise RuntimeError("cannot add middleware after the application has started")
    app.user_middleware.append(Middleware(middleware, **options))


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The envelope of `error`; one that says when to come back (details.retry_after_s) also says it in
    the Retry-After header."""
    headers = dict(headers or {})
    if "retry_after_s" in error.details:
        headers["Retry-After"] = str(error.details["retry_after_s"])
    return JSONResponse(failure(error), status_code=error.status, headers=headers or None)


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

    @app.exception_handler(RecursionError)
    async def _too_deep(_: Request, exc: RecursionError) -> JSONResponse:
        # Only a request's JSON nests deep enough (thousands of levels) to exhaust the parser's stack.
        return error_response(ApiError(ErrorCode.BAD_REQUEST, "the request's JSON is nested too deeply"))

    @app.exception_handler(UnicodeEncodeError)
    async def _not_unicode(request: Request, exc: UnicodeEncodeError) -> JSONResponse:
        if "surrogate" not in str(exc):
            return await _unexpected(request, exc)
        # JSON's \ud800 escapes decode to lone surrogates, which no database or response can hold.
        return error_response(
            ApiError(ErrorCode.VALIDATION_FAILED, "the request holds text that is not valid Unicode")
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            ApiError(ErrorCode.INTERNAL_ERROR, "internal error; the server log has the details")
        )


MAX_JSON_BYTES = 1024 * 1024  # a JSON request body (queries, corrections, collections): far more than enough


async def json_body(request: Request) -> bytes:
    """A request's JSON body, refused unread (413) when it says it is over MAX_JSON_BYTES and cut off
    when it grows past it without saying."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise _too_large(int(declared))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise _too_large(len(body))
    return bytes(body)


def _too_large(size: int) -> ApiError:
    return ApiError(
        ErrorCode.FILE_TOO_LARGE,
        f"the JSON body is over the limit of {MAX_JSON_BYTES} bytes",
        {"bytes": size, "max_bytes": MAX_JSON_BYTES},
    )


def form_fields(form: FormData, skip: str) -> dict[str, Any]:
    """A multipart form's text fields as a request model's input: JSON-valued ones (starting with `{` or
    `[`) parsed, a repeated field a list; `skip` (the files' field) and other files left out."""
    raw: dict[str, Any] = {}
    for key, value in form.multi_items():
        if key == skip or not isinstance(value, str):
            continue
        if value.strip().startswith(("{", "[")):
            try:
                raw[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ApiError(
                    ErrorCode.VALIDATION_FAILED, f"form field {key!r} is not valid JSON", {"field": key}
                ) from exc
        elif key in raw:  # a repeated field: a list
            raw[key] = [*raw[key], value] if isinstance(raw[key], list) else [raw[key], value]
        else:
            raw[key] = value
    return raw


def validated(model: type[ModelT], raw: Any) -> ModelT:
    """`raw` as `model`, or the envelope's VALIDATION_FAILED naming each problem."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_failed(exc.errors()) from exc


def body_schema(model: type[BaseModel], file_field: str | None = None, json_body: bool = True) -> dict:
    """OpenAPI for a route that reads its body by hand: `model`'s fields as a JSON body (`json_body`) and,
    with `file_field` ("files": repeated, "file": one image), as multipart form fields beside the images
    (required when there is no JSON form)."""
    # Nested models go to the description's components (shared/openapi.py moves this "$defs" there).
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    content: dict[str, Any] = {}
    if json_body:
        content["application/json"] = {"schema": schema}
    if file_field:
        image = {"type": "string", "format": "binary"}
        files = image if file_field == "file" else {"type": "array", "items": image}
        form: dict[str, Any] = {
            "type": "object",
            "properties": {file_field: files} | schema.get("properties", {}),
        }
        if "$defs" in schema:
            form["$defs"] = schema["$defs"]
        if not json_body:
            form["required"] = [file_field]
        content["multipart/form-data"] = {"schema": form}
    return {"requestBody": {"content": content, "required": True}}
