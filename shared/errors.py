"""One error model for every service and the gateway: HTTP status + machine-readable code + message."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    BAD_REQUEST = "BAD_REQUEST"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    NOT_FOUND = "NOT_FOUND"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    EMPTY_FILE = "EMPTY_FILE"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    IMAGE_TOO_MANY_PIXELS = "IMAGE_TOO_MANY_PIXELS"
    IMAGE_TOO_SMALL = "IMAGE_TOO_SMALL"
    UNSUPPORTED_IMAGE_FORMAT = "UNSUPPORTED_IMAGE_FORMAT"
    CORRUPT_IMAGE = "CORRUPT_IMAGE"
    EMPTY_REQUEST = "EMPTY_REQUEST"
    TOO_MANY_FILES = "TOO_MANY_FILES"
    UNSUPPORTED_ARCHIVE_ENTRY = "UNSUPPORTED_ARCHIVE_ENTRY"
    CORRUPT_ARCHIVE = "CORRUPT_ARCHIVE"
    EMPTY_FOLDER = "EMPTY_FOLDER"
    HOST_NOT_ALLOWED = "HOST_NOT_ALLOWED"
    URL_FETCH_FAILED = "URL_FETCH_FAILED"
    UNKNOWN_SERVICE = "UNKNOWN_SERVICE"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    SERVICE_ERROR = "SERVICE_ERROR"
    SERVICE_BUSY = "SERVICE_BUSY"
    NO_ITEM_FOUND = "NO_ITEM_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    RATE_LIMITED = "RATE_LIMITED"
    ALL_INPUTS_FAILED = "ALL_INPUTS_FAILED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


# The HTTP status each code answers with, so a code never travels with two different statuses.
STATUS_OF: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.VALIDATION_FAILED: 422,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.EMPTY_FILE: 400,
    ErrorCode.FILE_TOO_LARGE: 413,
    ErrorCode.IMAGE_TOO_MANY_PIXELS: 413,
    ErrorCode.IMAGE_TOO_SMALL: 422,
    ErrorCode.UNSUPPORTED_IMAGE_FORMAT: 415,
    ErrorCode.CORRUPT_IMAGE: 422,
    ErrorCode.EMPTY_REQUEST: 400,
    ErrorCode.TOO_MANY_FILES: 413,
    ErrorCode.UNSUPPORTED_ARCHIVE_ENTRY: 415,
    ErrorCode.CORRUPT_ARCHIVE: 422,
    ErrorCode.EMPTY_FOLDER: 422,
    ErrorCode.HOST_NOT_ALLOWED: 403,
    ErrorCode.URL_FETCH_FAILED: 502,
    ErrorCode.UNKNOWN_SERVICE: 404,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.SERVICE_ERROR: 502,
    ErrorCode.SERVICE_BUSY: 503,
    ErrorCode.NO_ITEM_FOUND: 422,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.ALL_INPUTS_FAILED: 422,
    ErrorCode.INTERNAL_ERROR: 500,
}


class ApiError(Exception):
    """An error a client can act on. Raised anywhere; the web layer turns it into an envelope."""

    def __init__(self, code: ErrorCode, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

    @property
    def status(self) -> int:
        return STATUS_OF[self.code]

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.details:
            error["details"] = self.details
        return error


def every_input_failed(results: list[dict[str, Any]]) -> ApiError | None:
    """The one status rule of requests with several inputs (/tagging, /catalog/images, /recommend): some
    done answer 200 with each input's outcome; every one failed answers the error instead. One input: its
    own error; several: the code they share, else ALL_INPUTS_FAILED (422), with each input's reason."""
    if not results or any(r.get("status") != "failed" for r in results):
        return None
    errors = [r["error"] for r in results]
    if len(errors) == 1:
        return ApiError(ErrorCode(errors[0]["code"]), errors[0]["message"], errors[0].get("details"))
    codes = {e["code"] for e in errors}
    failures = [
        {k: v for k, v in (("file", r.get("file")), ("input", r.get("input")), ("error", r["error"])) if v}
        for r in results
    ]
    return ApiError(
        ErrorCode(codes.pop()) if len(codes) == 1 else ErrorCode.ALL_INPUTS_FAILED,
        f"all {len(errors)} inputs failed; the first: {errors[0]['message']}",
        {"failures": failures},
    )
