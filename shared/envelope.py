"""The response envelope every endpoint answers with (seed 000 section 05, seed 004 7.1.4):
{"resultCode": 200, "resultMessage": "SUCCESS", "body": {...}, "responseDate": "2021-01-21 02:40:02"}.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import ApiError

SUCCESS_MESSAGE = "SUCCESS"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # the seeds' format; always UTC here


class Envelope(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    result_code: int = Field(alias="resultCode")
    result_message: str = Field(alias="resultMessage")
    body: Any = None
    response_date: str = Field(alias="responseDate")


def response_date(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime(DATE_FORMAT)


def success(body: Any, status: int = 200) -> dict[str, Any]:
    return Envelope(
        result_code=status, result_message=SUCCESS_MESSAGE, body=body, response_date=response_date()
    ).model_dump(by_alias=True)


def failure(error: ApiError) -> dict[str, Any]:
    """An error envelope: resultCode is the HTTP status, resultMessage the human message,
    body.error the machine-readable code, message and details."""
    return Envelope(
        result_code=error.status,
        result_message=error.message,
        body={"error": error.to_dict()},
        response_date=response_date(),
    ).model_dump(by_alias=True)
