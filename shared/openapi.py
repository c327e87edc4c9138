"""The OpenAPI description as the services answer: every JSON answer is the envelope, every error the
error envelope under the statuses its operation can answer, files described as the files they are.
FastAPI's own description says errors are `{"detail": [...]}` with status 422 only, which is never sent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from shared.errors import STATUS_OF, ErrorCode

SCHEMAS = "#/components/schemas/"
OPEN_OPERATIONS = frozenset(
    {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"), ("get", "/taxonomy")}
)

ENVELOPE: dict[str, Any] = {
    "type": "object",
    "description": "Every JSON answer: resultCode is the HTTP status, body the answer.",
    "required": ["resultCode", "resultMessage", "body", "responseDate"],
    "properties": {
        "resultCode": {"type": "integer"},
        "resultMessage": {"type": "string"},
        "body": {},
        "responseDate": {"type": "string", "description": "UTC, YYYY-MM-DD HH:MM:SS"},
    },
}


def _error_envelope() -> dict[str, Any]:
    error = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "enum": [code.value for code in ErrorCode]},
            "message": {"type": "string"},
            "details": {"type": "object"},
        },
    }
    return {
        "type": "object",
        "description": "Every error: resultMessage is for people, body.error.code for programs.",
        "required": ["resultCode", "resultMessage", "body", "responseDate"],
        "properties": {
            "resultCode": {"type": "integer", "minimum": 400, "maximum": 599},
            "resultMessage": {"type": "string"},
            "body": {"type": "object", "required": ["error"], "properties": {"error": error}},
            "responseDate": {"type": "string"},
        },
    }


StatusRule = Callable[[str, str, dict[str, Any]], set[int]]


@dataclass
class ApiDescription:
    """What an app adds to its description before its answers are described: changes to the operations
    (run first, in order), rules giving more error statuses of an operation, and the media types of
    operations that answer files rather than JSON ((method, path) -> types)."""

    changes: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    status_rules: list[StatusRule] = field(default_factory=list)
    media: dict[tuple[str, str], list[str]] = field(default_factory=dict)


def request_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    """Errors any operation can answer from what it takes: 422 for parameters or a body that fail
    validation, 400/413 for an unreadable or too large body, 415 for an image of another kind, 404 for
    what its path names."""
    if (method, path) in OPEN_OPERATIONS:
        return {503} if path == "/readyz" else set()
    statuses = {503}  # what it needs is not ready, or busy
    body = operation.get("requestBody", {}).get("content", {})
    if operation.get("parameters") or body:
        statuses.add(422)
    if body:
        statuses |= {400, 413}
    if "multipart/form-data" in body:
        statuses.add(415)
    if "{" in path:
        statuses.add(404)
    return statuses


def describe_answers(app: FastAPI, description: ApiDescription) -> None:
    """Replace FastAPI's answers in `app`'s description (built once, when first asked for)."""
    build = app.openapi
    described = False

    def openapi() -> dict[str, Any]:
        nonlocal described
        schema = build()
        if not described:
            for change in description.changes:
                change(schema)
            _rewrite(schema, description)
            described = True
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _rewrite(schema: dict[str, Any], description: ApiDescription) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Envelope"] = ENVELOPE
    components["ErrorEnvelope"] = _error_envelope()
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    error = {"application/json": {"schema": {"$ref": SCHEMAS + "ErrorEnvelope"}}}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for body in operation.get("requestBody", {}).get("content", {}).values():
                components.update(body["schema"].pop("$defs", {}))  # shared/web.py, body_schema
            responses = operation["responses"]
            for status in [s for s in responses if s.startswith("4")]:
                del responses[status]  # FastAPI's {"detail": [...]}
            media = description.media.get((method, path), ["application/json"])
            for status, answer in responses.items():
                answer["content"] = {
                    kind: {"schema": {"$ref": SCHEMAS + "Envelope"}}
                    if kind == "application/json"
                    else {"schema": {"type": "string", "format": "binary"}}
                    if not kind.startswith("text/")
                    else {"schema": {"type": "string"}}
                    for kind in media
                }
                answer.setdefault("description", HTTPStatus(int(status)).phrase)
            statuses = request_statuses(method, path, operation)
            for rule in description.status_rules:
                statuses |= rule(method, path, operation)
            for status in sorted(statuses):
                codes = sorted(code.value for code, of in STATUS_OF.items() if of == status)
                responses[str(status)] = {
                    "description": f"{HTTPStatus(status).phrase} ({', '.join(codes)})",
                    "content": error,
                }
