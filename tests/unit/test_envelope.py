from __future__ import annotations

import re

import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient

from shared.envelope import Envelope, failure, success
from shared.errors import STATUS_OF, ApiError, ErrorCode
from shared.web import install_error_handlers

DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def test_success_envelope_has_the_seed_shape() -> None:
    envelope = success({"results": []})
    assert list(envelope) == ["resultCode", "resultMessage", "body", "responseDate"]
    assert envelope["resultCode"] == 200 and envelope["resultMessage"] == "SUCCESS"
    assert envelope["body"] == {"results": []}
    assert DATE.match(envelope["responseDate"])
    Envelope.model_validate(envelope)


def test_failure_envelope_carries_status_code_and_message() -> None:
    envelope = failure(ApiError(ErrorCode.UNSUPPORTED_IMAGE_FORMAT, "x.txt: not an image", {"file": "x.txt"}))
    assert envelope["resultCode"] == 415
    assert envelope["resultMessage"] == "x.txt: not an image"
    assert envelope["body"] == {
        "error": {
            "code": "UNSUPPORTED_IMAGE_FORMAT",
            "message": "x.txt: not an image",
            "details": {"file": "x.txt"},
        }
    }


def test_every_code_has_one_status() -> None:
    assert set(STATUS_OF) == set(ErrorCode)
    assert all(400 <= status < 600 for status in STATUS_OF.values())


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/ok")
    def ok() -> dict:
        return success({"value": 1})

    @app.get("/refuse")
    def refuse() -> dict:
        raise ApiError(ErrorCode.FILE_TOO_LARGE, "too big", {"bytes": 9})

    @app.get("/count")
    def count(n: int = Query(..., ge=1)) -> dict:
        return success({"n": n})

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("secret detail")

    return TestClient(app, raise_server_exceptions=False)


def test_errors_leave_as_envelopes(client: TestClient) -> None:
    assert client.get("/ok").json()["body"] == {"value": 1}

    refused = client.get("/refuse")
    assert refused.status_code == 413
    assert refused.json()["body"]["error"]["code"] == "FILE_TOO_LARGE"

    invalid = client.get("/count", params={"n": 0})
    assert invalid.status_code == 422
    body = invalid.json()
    assert body["resultCode"] == 422 and body["body"]["error"]["code"] == "VALIDATION_FAILED"
    assert body["body"]["error"]["details"]["problems"][0]["field"] == "query.n"

    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.json()["body"]["error"]["code"] == "NOT_FOUND"

    wrong_method = client.post("/ok")
    assert wrong_method.status_code == 405 and wrong_method.json()["resultCode"] == 405

    crashed = client.get("/boom")
    assert crashed.status_code == 500
    assert crashed.json()["body"]["error"]["code"] == "INTERNAL_ERROR"
    assert "secret" not in crashed.text
