"""The model runtime and the three model services as apps of their own."""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from services.model_app import model_service_app
from shared.errors import ApiError, ErrorCode
from shared.imaging import decode_image
from shared.runtime import OnnxRuntimeBackend, TritonBackend, create_runtime
from shared.settings import ImageLimits, RuntimeSettings, load_settings
from shared.taxonomy import REGIONS, STYLE
from tests.servers import free_port
from training.data import Sample

MODELS = Path(__file__).parents[2] / "models"
detector_app = partial(model_service_app, "detector")
attributes_app = partial(model_service_app, "attributes")
style_app = partial(model_service_app, "style")


def _wait_loaded(client: TestClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.1)


def test_runtime_is_not_ready_until_loaded_and_batches_split_the_same() -> None:
    runtime = create_runtime(MODELS, RuntimeSettings(max_batch=2), CollectorRegistry())
    assert isinstance(runtime, OnnxRuntimeBackend) and not runtime.ready
    crops = np.random.default_rng(0).normal(size=(5, 3, 224, 224)).astype(np.float32)
    with pytest.raises(ApiError) as raised:
        runtime.infer("attributes", crops)
    assert raised.value.code == ErrorCode.SERVICE_UNAVAILABLE
    runtime.load(["attributes"])
    assert runtime.ready and runtime.providers("attributes") == ["CPUExecutionProvider"]
    split = runtime.infer("attributes", crops)  # calls of 2, 2 and 1
    whole = create_runtime(MODELS, RuntimeSettings(max_batch=32), CollectorRegistry())
    whole.load(["attributes"])
    together = whole.infer("attributes", crops)
    assert set(split) == {o.name for o in runtime.entry("attributes").outputs}
    for name in split:
        assert split[name].shape[0] == 5
        np.testing.assert_allclose(split[name], together[name], atol=1e-4)
    with pytest.raises(ApiError) as raised:
        runtime.infer("detector", crops)  # in the manifest, but this runtime did not load it
    assert raised.value.code == ErrorCode.SERVICE_UNAVAILABLE


def test_a_service_is_not_ready_before_its_models_load(unseen: list[Sample]) -> None:
    client = TestClient(detector_app(load_settings(models_dir=MODELS)))  # no lifespan: nothing loads
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["body"]["error"]["code"] == "SERVICE_UNAVAILABLE"
    image = unseen[0].image_path
    response = client.post("/detect", files=[("files", (image.name, image.read_bytes()))])
    assert response.status_code == 503


def test_detector_service_batches_images(unseen: list[Sample]) -> None:
    with TestClient(detector_app(load_settings(models_dir=MODELS))) as client:
        _wait_loaded(client)
        files = [("files", (s.image_path.name, s.image_path.read_bytes())) for s in unseen[:3]]
        body = client.post("/detect", files=files).json()["body"]
        assert [r["file"] for r in body["results"]] == [s.image_path.name for s in unseen[:3]]
        for result in body["results"]:
            assert result["items"] and {i["region"] for i in result["items"]} <= set(REGIONS)
            for item in result["items"]:
                x, y, w, h = item["box"]
                assert x >= 0 and y >= 0
                assert x + w <= result["width"] + 0.5 and y + h <= result["height"] + 0.5
                assert item["score"] >= body["settings"]["score_threshold"]
        assert "kfashion_model_batch_size_bucket" in client.get("/metrics").text
        bad = client.post("/detect", files=[("files", ("x.jpg", b"nope"))])
        assert bad.status_code == 415


def test_attribute_service_describes_given_boxes(unseen: list[Sample]) -> None:
    sample = unseen[0]
    with TestClient(attributes_app(load_settings(models_dir=MODELS))) as client:
        _wait_loaded(client)
        items = [{"region": i.region, "box": list(i.box)} for i in sample.record.items]
        file = [("file", (sample.image_path.name, sample.image_path.read_bytes()))]
        body = client.post("/attributes", files=file, data={"items": json.dumps(items), "top_k": "2"}).json()[
            "body"
        ]
        assert [i["region"] for i in body["items"]] == [i.region for i in sample.record.items]
        for described in body["items"]:
            assert len(described["embedding"]) == 128
            assert all(len(a["top_k"]) <= 2 for a in described["attributes"].values())
        # The labelled boxes of plain garments: the predicted colour should mostly be the labelled one.
        truth = [i.attributes["color"] for i in sample.record.items]
        assert (
            sum(d["color"]["value"] == t for d, t in zip(body["items"], truth, strict=True))
            >= len(truth) // 2
        )
        bad = client.post(
            "/attributes", files=file, data={"items": '[{"region": "hat", "box": [0, 0, 5, 5]}]'}
        )
        assert bad.status_code == 422 and bad.json()["body"]["error"]["code"] == "VALIDATION_FAILED"


def test_style_service_ranks_all_styles(unseen: list[Sample]) -> None:
    sample = unseen[0]
    with TestClient(style_app(load_settings(models_dir=MODELS))) as client:
        _wait_loaded(client)
        file = [("file", (sample.image_path.name, sample.image_path.read_bytes()))]
        body = client.post("/style", files=file).json()["body"]
        scores = [s["score"] for s in body["styles"]]
        assert len(scores) == len(STYLE.labels) and scores == sorted(scores, reverse=True)
        assert body["style"] == body["styles"][0]["name"]
        pixels = decode_image(sample.image_path.read_bytes(), ImageLimits()).pixels
        assert pixels.shape[0] > 0


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_triton_backend_without_a_server_is_not_ready_and_says_why(protocol: str) -> None:
    # A real tritonclient against a port where nothing listens (a Triton server is tested in issue 6).
    port = free_port()
    settings = RuntimeSettings(
        backend="triton", triton_url=f"127.0.0.1:{port}", triton_protocol=protocol, triton_timeout_s=1
    )
    runtime = create_runtime(MODELS, settings, CollectorRegistry())
    assert isinstance(runtime, TritonBackend)
    with pytest.raises(Exception):  # noqa: B017 - tritonclient raises its own connection errors
        runtime.load(["detector"])
    assert not runtime.ready and runtime.error
    assert runtime.status()["backend"] == "triton" and "error" in runtime.status()
    runtime.close()


def test_only_the_runtime_imports_model_backends() -> None:
    root = Path(__file__).parents[2]
    for folder in ("services", "gateway"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "import onnxruntime" not in text and "tritonclient" not in text, path


def test_a_box_of_blank_pixels_holds_no_garment() -> None:
    """The detector service leaves out boxes whose pixels do not vary (a blank picture's frame-sized
    "garment"), and keeps a plain garment's box, whose shading and edges vary well above the line."""
    from services.detector.model import holds_texture

    rng = np.random.default_rng(0)
    blank = np.full((640, 480, 3), 200, np.uint8)
    assert not holds_texture(blank, (0.0, 15.3, 464.5, 599.3))
    noisy = (blank + rng.integers(-2, 3, blank.shape)).astype(np.uint8)  # JPEG-like noise only
    assert not holds_texture(noisy, (0.0, 0.0, 480.0, 640.0))
    garment = blank.copy()
    garment[100:500, 120:360] = 60  # a dark plain shirt on the grey background
    assert holds_texture(garment, (100.0, 80.0, 300.0, 460.0))
    assert not holds_texture(garment, (150.0, 150.0, 150.0, 300.0))  # inside the shirt only: one flat colour
    assert not holds_texture(garment, (500.0, 700.0, 10.0, 10.0))  # outside the picture: no pixels
