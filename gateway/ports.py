"""How the gateway reaches the three model services: in-process (embedded) or over HTTP (microservices).

Both answer the same three calls with the same JSON the services' own endpoints answer, so the
gateway's pipeline is one code path whichever way it runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2
import numpy as np
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from services.attributes.model import AttributeClassifier, ItemBox
from services.detector.model import Detector, detection_json
from services.style.model import StyleClassifier
from shared.errors import ApiError, ErrorCode
from shared.manifest import MODEL_NAMES
from shared.runtime import create_runtime
from shared.settings import Settings

log = logging.getLogger("kfashion.gateway")
SERVICE_NAMES = ("detector", "attributes", "style")


@dataclass(frozen=True)
class ImageInput:
    name: str
    data: bytes  # the bytes as received, sent on unchanged to remote services
    pixels: np.ndarray  # RGB, decoded once by the gateway


class ModelServices(Protocol):
    async def detect(self, image: ImageInput) -> list[dict]: ...

    async def describe(self, image: ImageInput, items: list[dict], top_k: int) -> list[dict]: ...

    async def style(self, image: ImageInput, boxes: list[list[float]]) -> dict: ...

    def readiness(self) -> tuple[bool, dict[str, Any]]: ...

    def ensure_ready(self) -> None:
        """Raise a 503 when it is known without asking over the network that a call would fail."""

    def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalServices:
    """The three services' models in this process, sharing one runtime; calls run in worker threads."""

    mode = "embedded"

    def __init__(self, settings: Settings, registry: CollectorRegistry):
        self.runtime = create_runtime(settings.models_dir, settings.runtime, registry)
        self.detector = Detector(self.runtime, settings.detector)
        self.classifier = AttributeClassifier(self.runtime, settings.gateway.top_k)
        self.styles = StyleClassifier(self.runtime)

    def start(self) -> None:
        self.runtime.load(MODEL_NAMES)

    async def detect(self, image: ImageInput) -> list[dict]:
        found = await run_in_threadpool(self.detector.detect, [image.pixels])
        return [detection_json(d) for d in found[0]]

    async def describe(self, image: ImageInput, items: list[dict], top_k: int) -> list[dict]:
        boxes = [ItemBox(item["region"], tuple(item["box"])) for item in items]
        return await run_in_threadpool(self.classifier.describe, image.pixels, boxes, top_k)

    async def style(self, image: ImageInput, boxes: list[list[float]]) -> dict:
        result = await run_in_threadpool(self.styles.classify, [(image.pixels, [tuple(b) for b in boxes])])
        return result[0]

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return self.runtime.healthy(), {"mode": self.mode, "runtime": self.runtime.describe()}

    def ensure_ready(self) -> None:
        if not self.runtime.ready:
            raise ApiError(
                ErrorCode.SERVICE_UNAVAILABLE,
                "the models are still loading; try again in a few seconds",
                {"service": "gateway", "runtime": self.runtime.describe()},
            )

    async def close(self) -> None:
        return None


async def request_with_retries(
    client: httpx2.AsyncClient,
    service: str,
    method: str,
    url: str,
    retries: int,
    timeout: float,
    **kwargs: Any,
) -> httpx2.Response:
    """A service's answer, whatever its status. Connection errors are retried (with back-off) up to
    `retries` times; a timeout or a service that stays unreachable is a 503 naming it."""
    last_error = ""
    for attempt in range(retries + 1):
        try:
            return await client.request(method, url, **kwargs)
        except httpx2.TimeoutException as exc:
            raise ApiError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"the {service} service did not answer within {timeout:g} s",
                {"service": service, "url": url},
            ) from exc
        except httpx2.TransportError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            if attempt < retries:
                await asyncio.sleep(0.1 * 2**attempt)
    raise ApiError(
        ErrorCode.SERVICE_UNAVAILABLE,
        f"the {service} service is down ({last_error})",
        {"service": service, "url": url, "tries": retries + 1},
    )


def service_body(service: str, url: str, response: httpx2.Response) -> Any:
    """The body of a service's successful answer; its client errors become the same error here, a 503 the
    service's unavailability, anything else a SERVICE_ERROR naming it."""
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    if response.status_code < 400:
        return payload["body"]
    error = (payload.get("body") or {}).get("error", {})
    if response.status_code == 503:
        raise ApiError(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"the {service} service is not ready: {error.get('message', response.status_code)}",
            {"service": service, "url": url},
        )
    if 400 <= response.status_code < 500 and error.get("code") in ErrorCode.__members__:
        raise ApiError(ErrorCode(error["code"]), error.get("message", ""), error.get("details"))
    raise ApiError(
        ErrorCode.SERVICE_ERROR,
        f"the {service} service failed with HTTP {response.status_code}",
        {"service": service, "url": url, "error": error},
    )


class RemoteServices:
    """The services over HTTP: timeouts, retries on connection errors, and a 503 naming a service that
    is down."""

    mode = "microservices"

    def __init__(self, settings: Settings):
        self.urls = {name: getattr(settings.services, name) for name in SERVICE_NAMES}
        missing = [name for name, url in self.urls.items() if not url]
        if missing:
            raise ValueError(f"microservice mode needs every service's URL; missing: {', '.join(missing)}")
        self.timeout = settings.services.timeout_s
        self.retries = settings.services.retries
        self.client = httpx2.AsyncClient(timeout=self.timeout)

    def start(self) -> None:
        return None

    def ensure_ready(self) -> None:
        return None  # each call names the service that does not answer

    async def _post(self, service: str, path: str, image: ImageInput, form: dict[str, str]) -> dict:
        url = f"{self.urls[service].rstrip('/')}{path}"
        files = {"files" if service == "detector" else "file": (image.name, image.data)}
        response = await request_with_retries(
            self.client, service, "POST", url, self.retries, self.timeout, files=files, data=form
        )
        return service_body(service, url, response)

    async def detect(self, image: ImageInput) -> list[dict]:
        body = await self._post("detector", "/detect", image, {})
        return body["results"][0]["items"]

    async def describe(self, image: ImageInput, items: list[dict], top_k: int) -> list[dict]:
        if not items:
            return []
        form = {
            "items": json.dumps([{"region": i["region"], "box": i["box"]} for i in items]),
            "top_k": str(top_k),
        }
        return (await self._post("attributes", "/attributes", image, form))["items"]

    async def style(self, image: ImageInput, boxes: list[list[float]]) -> dict:
        body = await self._post("style", "/style", image, {"boxes": json.dumps(boxes)})
        body.pop("file", None)
        return body

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        states = {}
        for name, url in self.urls.items():
            try:
                response = httpx2.get(f"{url.rstrip('/')}/readyz", timeout=2.0)
                states[name] = {"url": url, "ready": response.status_code == 200}
            except httpx2.HTTPError as exc:
                states[name] = {"url": url, "ready": False, "error": f"{type(exc).__name__}: {exc}"}
        return all(s["ready"] for s in states.values()), {"mode": self.mode, "services": states}

    async def close(self) -> None:
        await self.client.aclose()


def model_services(settings: Settings, registry: CollectorRegistry) -> ModelServices:
    return RemoteServices(settings) if settings.services.remote else LocalServices(settings, registry)
