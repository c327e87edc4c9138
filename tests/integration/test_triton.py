"""The Triton runtime against a real Triton server (PyTriton's, on the CPU, on loopback) serving the
repository `kfashion models triton-repo` writes: the same numbers as in-process ONNX Runtime, over HTTP and
gRPC, at batch 1, 8, 32 and over the max batch; a clear 503 while the server is away, and recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx2
import numpy as np
import pytest
from google.protobuf import text_format
from prometheus_client import CollectorRegistry
from tritonclient.grpc import model_config_pb2

from gateway.clients import ImageInput, LocalServices
from gateway.tagging import TaggingPipeline
from shared.errors import ApiError, ErrorCode
from shared.imaging import decode_image
from shared.manifest import load_manifest
from shared.runtime import OnnxRuntimeBackend, TritonBackend
from shared.settings import RuntimeSettings, Settings
from shared.triton_repo import write_repository as write_repository_here
from tests.servers import ROOT, Server
from tests.triton_server import TritonServer, require_triton, write_repository
from training.data import Sample

MODELS = ROOT / "models"
INPUT_SHAPES = {"detector": (3, 320, 320), "attributes": (3, 224, 224), "style": (3, 224, 224)}


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    require_triton()
    folder = tmp_path_factory.mktemp("triton")
    server = TritonServer(write_repository(folder / "repository"), folder / "triton.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def onnx_runtime() -> OnnxRuntimeBackend:
    runtime = OnnxRuntimeBackend(MODELS, RuntimeSettings())
    runtime.load(list(INPUT_SHAPES))
    return runtime


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_repository_configs_are_triton_model_configs(variant: str, tmp_path: Path) -> None:
    manifest = load_manifest(MODELS)
    configs = write_repository_here(MODELS, tmp_path, variant)  # type: ignore[arg-type]
    assert sorted(c.parent.name for c in configs) == sorted(manifest.models)
    for path in configs:
        config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())  # fails on a bad field
        entry = manifest.models[config.name]
        assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 32
        assert [(t.name, list(t.dims)) for t in config.input] == [(i.name, i.shape[1:]) for i in entry.inputs]
        assert [(t.name, list(t.dims)) for t in config.output] == [
            (o.name, o.shape[1:]) for o in entry.outputs
        ]
        assert list(config.dynamic_batching.preferred_batch_size) == [8, 16, 32]
        kind = (
            model_config_pb2.ModelInstanceGroup.KIND_GPU
            if variant == "gpu"
            else model_config_pb2.ModelInstanceGroup.KIND_CPU
        )
        assert [g.kind for g in config.instance_group] == [kind]
        assert (path.parent / "1" / "model.onnx").read_bytes() == (MODELS / entry.file).read_bytes()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_triton_answers_as_onnx_runtime(
    protocol: str, triton: TritonServer, onnx_runtime: OnnxRuntimeBackend
) -> None:
    url = triton.http_url if protocol == "http" else triton.grpc_url
    runtime = TritonBackend(
        MODELS, RuntimeSettings(backend="triton", triton_url=url, triton_protocol=protocol)
    )
    runtime.load(list(INPUT_SHAPES))
    assert runtime.healthy()
    rng = np.random.default_rng(7)
    for model, shape in INPUT_SHAPES.items():
        for size in (1, 8, 32, 40):  # 40: two calls, 32 + 8
            batch = rng.normal(size=(size, *shape)).astype(np.float32)
            expected, served = onnx_runtime.infer(model, batch), runtime.infer(model, batch)
            assert served.keys() == expected.keys()
            for name in expected:
                assert served[name].shape == expected[name].shape
                np.testing.assert_allclose(served[name], expected[name], rtol=1e-5, atol=1e-5, err_msg=name)
    runtime.close()


def test_the_pipeline_tags_the_same_through_triton(triton: TritonServer, unseen: list[Sample]) -> None:
    def tag_all(settings: Settings) -> list[dict]:
        services = LocalServices(settings, CollectorRegistry())
        services.start()
        pipeline = TaggingPipeline(services, settings)

        async def run() -> list[dict]:
            results = []
            for sample in unseen[:4]:
                data = sample.image_path.read_bytes()
                image = ImageInput(sample.image_path.name, data, decode_image(data, settings.image).pixels)
                results.append(await pipeline.tag(image, embedding=True))
            await pipeline.close()
            return results

        return asyncio.run(run())

    local = tag_all(Settings(models_dir=MODELS))
    remote = tag_all(
        Settings(models_dir=MODELS, runtime=RuntimeSettings(backend="triton", triton_url=triton.http_url))
    )
    assert sum(len(r["items"]) for r in local) > 0
    for a, b in zip(local, remote, strict=True):
        assert [i["box"] for i in a["items"]] == [i["box"] for i in b["items"]]
        assert [i["attributes"] for i in a["items"]] == [i["attributes"] for i in b["items"]]
        assert a["styles"] == b["styles"]
        np.testing.assert_allclose(
            [i["embedding"] for i in a["items"]], [i["embedding"] for i in b["items"]], atol=1e-5
        )


def test_a_service_on_triton_answers_503_while_it_is_away_and_recovers(
    triton: TritonServer, unseen: list[Sample], tmp_path: Path
) -> None:
    env = {"KFASHION_RUNTIME__BACKEND": "triton", "KFASHION_RUNTIME__TRITON_URL": triton.http_url}
    detector = Server(["--service", "detector"], env, log=tmp_path / "detector.log").start()
    photo = [("files", (unseen[0].image_path.name, unseen[0].image_path.read_bytes(), "image/jpeg"))]
    try:
        before = httpx2.post(f"{detector.url}/detect", files=photo, timeout=60)
        assert before.status_code == 200, before.text
        triton.stop()
        away = httpx2.post(f"{detector.url}/detect", files=photo, timeout=60)
        assert away.status_code == 503, away.text
        error = away.json()["body"]["error"]
        assert error["code"] == "SERVICE_UNAVAILABLE" and error["details"]["service"] == "triton"
        assert httpx2.get(f"{detector.url}/readyz").status_code == 503
        triton.start()  # the same ports
        after = httpx2.post(f"{detector.url}/detect", files=photo, timeout=60)
        assert after.status_code == 200, after.text
        assert after.json()["body"]["results"] == before.json()["body"]["results"]
        assert httpx2.get(f"{detector.url}/readyz").status_code == 200
    finally:
        detector.kill()


def test_the_runtime_names_triton_when_it_cannot_be_reached() -> None:
    runtime = TritonBackend(
        MODELS, RuntimeSettings(backend="triton", triton_url="127.0.0.1:9", triton_timeout_s=1)
    )
    with pytest.raises(TimeoutError, match=r"127\.0\.0\.1:9\b"):
        runtime.load(["style"])
    assert not runtime.healthy()
    runtime.loaded.append("style")
    runtime._ready.set()  # as if it had been up at start
    with pytest.raises(ApiError) as raised:
        runtime.infer("style", np.zeros((1, 3, 224, 224), np.float32))
    assert raised.value.code == ErrorCode.SERVICE_UNAVAILABLE and raised.value.details["service"] == "triton"
