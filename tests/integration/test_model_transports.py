"""One shape, two transports: each model service answers the same types whether the gateway runs it
in-process (embedded) or calls its own process over HTTP (microservices)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from gateway.clients import ImageInput, LocalServices, RemoteServices
from services.attributes.schemas import ATTRIBUTES, AttributesRequest, ItemBox
from services.detector.schemas import DETECTOR, DetectRequest
from services.style.schemas import STYLE, StyleRequest
from shared.imaging import decode_image
from shared.inference import ModelSpec
from shared.settings import ImageLimits, ServiceUrls, load_settings
from tests.servers import Server, all_running
from training.data import Sample


@pytest.fixture(scope="module")
def model_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    folder = tmp_path_factory.mktemp("model-services")
    servers = {
        name: Server(["--service", name], log=folder / f"{name}.log")
        for name in ("detector", "attributes", "style")
    }
    with all_running(servers) as running:
        yield running


def close_enough(local: object, remote: object, where: str = "") -> None:
    """Equal JSON, floats to 1e-4 (two processes may sum in another order)."""
    if isinstance(local, dict):
        assert isinstance(remote, dict) and list(local) == list(remote), where
        for key in local:
            close_enough(local[key], remote[key], f"{where}.{key}")
    elif isinstance(local, list):
        assert isinstance(remote, list) and len(local) == len(remote), where
        for index, (a, b) in enumerate(zip(local, remote, strict=True)):
            close_enough(a, b, f"{where}[{index}]")
    elif isinstance(local, float):
        assert remote == pytest.approx(local, abs=1e-4), where
    else:
        assert local == remote, where


def test_each_model_service_answers_the_same_in_process_and_over_http(
    model_servers: dict[str, Server], unseen: list[Sample]
) -> None:
    urls = ServiceUrls(**{name: server.url for name, server in model_servers.items()})
    settings = load_settings(models_dir=Path(__file__).parents[2] / "models", services=urls)
    local = LocalServices(settings, CollectorRegistry())
    local.start()
    remote = RemoteServices(settings)

    async def both(spec: ModelSpec, image: ImageInput, request: BaseModel) -> tuple[BaseModel, BaseModel]:
        return await local.predict(spec, image, request), await remote.predict(spec, image, request)

    async def compare(sample: Sample) -> int:
        data = sample.image_path.read_bytes()
        image = ImageInput(sample.image_path.name, data, decode_image(data, ImageLimits()).pixels)
        here, there = await both(DETECTOR, image, DetectRequest())
        assert type(here) is type(there)
        close_enough(here.model_dump(), there.model_dump(), "detect")
        boxes = [ItemBox(region=i.region, box=tuple(i.box)) for i in here.items]
        for spec, request in (
            (ATTRIBUTES, AttributesRequest(items=boxes, top_k=2)),
            (STYLE, StyleRequest(boxes=[b.box for b in boxes])),
        ):
            here_answer, there_answer = await both(spec, image, request)
            assert type(here_answer) is type(there_answer) is spec.response
            close_enough(here_answer.model_dump(), there_answer.model_dump(), spec.name)
        return len(here.items)

    async def run() -> list[int]:
        try:
            return [await compare(sample) for sample in unseen[:3]]
        finally:
            await remote.close()

    found = asyncio.run(run())
    assert sum(found) > 0  # the comparison covered garments, not only empty answers
