"""How the gateway reaches the services: the three model services in-process (embedded) or over HTTP
(microservices), and the search service (its app in-process through ASGI, or over HTTP).

Model calls take and answer the types of the service's spec (services/*/schemas.py): in-process the model's
own `predict`, over HTTP its endpoint's JSON parsed into the same type, so the gateway's pipeline is one
code path whichever way it runs. Embedded, the services' own code runs here: `build_models` (the model
services) and the search service's app; these are the gateway's only imports of services' code beside their
schemas.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2
import numpy as np
from fastapi import Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry

from services.attributes.schemas import ATTRIBUTES
from services.detector.schemas import DETECTOR
from services.model_app import build_models
from services.search.app import create_app as create_search_app
from services.style.schemas import STYLE
from shared.errors import ApiError, ErrorCode
from shared.inference import ImageModel, ModelSpec, RequestT, ResponseT
from shared.manifest import MODEL_NAMES
from shared.runtime import create_runtime
from shared.settings import Settings
from shared.web import json_body
from shared.work import ModelExecutor

log = logging.getLogger("kfashion.gateway")
MODEL_SPECS: tuple[ModelSpec, ...] = (DETECTOR, ATTRIBUTES, STYLE)
SERVICE_NAMES = tuple(spec.name for spec in MODEL_SPECS)
HOP_HEADERS = ("content-type", "content-disposition")


@dataclass(frozen=True)
class ImageInput:
    name: str
    data: bytes  # the bytes as received, sent on unchanged to remote services
    pixels: np.ndarray  # RGB, decoded once by the gateway


class ModelServices(Protocol):
    async def predict(
        self, spec: ModelSpec[RequestT, ResponseT], image: ImageInput, request: RequestT
    ) -> ResponseT:
        """The model service of `spec` on one image."""
        ...

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
        self.models: dict[str, ImageModel] = build_models(settings, self.runtime)
        self.executor = ModelExecutor(settings.runtime.workers, settings.runtime.queue, settings.runtime.nice)

    def start(self) -> None:
        self.runtime.load(MODEL_NAMES)

    async def predict(
        self, spec: ModelSpec[RequestT, ResponseT], image: ImageInput, request: RequestT
    ) -> ResponseT:
        answers = await self.executor.run(self.models[spec.name].predict, [image.pixels], [request])
        return answers[0]

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return self.runtime.healthy(), {"mode": self.mode, "runtime": self.runtime.status()}

    def ensure_ready(self) -> None:
        if not self.runtime.ready:
            raise ApiError(
                ErrorCode.SERVICE_UNAVAILABLE,
                "the models are still loading; try again in a few seconds",
                {"service": "gateway", "runtime": self.runtime.status()},
            )

    async def close(self) -> None:
        self.executor.close()


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

    async def predict(
        self, spec: ModelSpec[RequestT, ResponseT], image: ImageInput, request: RequestT
    ) -> ResponseT:
        url = f"{self.urls[spec.name].rstrip('/')}{spec.route}"
        form = {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in request.model_dump(exclude_none=True).items()
        }
        response = await request_with_retries(
            self.client,
            spec.name,
            "POST",
            url,
            self.retries,
            self.timeout,
            files={spec.file_field: (image.name, image.data)},
            data=form,
        )
        body = service_body(spec.name, url, response)
        return spec.response.model_validate(body["results"][0] if spec.batched else body)

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


class SearchClient:
    def __init__(self, settings: Settings):
        self.url = settings.services.search
        self.timeout = settings.services.timeout_s
        self.retries = settings.services.retries
        if self.url:
            self.app = None
            self.client = httpx2.AsyncClient(base_url=self.url.rstrip("/"), timeout=self.timeout)
        else:
            self.app = create_search_app(settings)
            transport = httpx2.ASGITransport(app=self.app)
            self.client = httpx2.AsyncClient(
                transport=transport, base_url="http://search", timeout=self.timeout
            )

    @property
    def mode(self) -> str:
        return "remote" if self.url else "embedded"

    def start(self) -> None:
        """Embedded: open the catalog and its indexes (what the service's own start would do)."""
        if self.app is not None:
            for job in self.app.state.service.startup:
                job()

    async def close(self) -> None:
        await self.client.aclose()
        if self.app is not None:
            for job in self.app.state.service.shutdown:
                job()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.app is not None:
            ready, details = self.app.state.service.ready_check()
            return ready, {"mode": self.mode, **details}
        try:
            response = httpx2.get(f"{self.url.rstrip('/')}/readyz", timeout=2.0)
            return response.status_code == 200, {"mode": self.mode, "url": self.url}
        except httpx2.HTTPError as exc:
            return False, {"mode": self.mode, "url": self.url, "error": f"{type(exc).__name__}: {exc}"}

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        """The search service's answer, whatever its status; a 503 naming it when it cannot be reached."""
        return await request_with_retries(
            self.client, "search", method, path, self.retries, self.timeout, **kwargs
        )

    @staticmethod
    def relay(response: httpx2.Response) -> Response:
        headers = {k: v for k, v in response.headers.items() if k.lower() in HOP_HEADERS}
        return Response(response.content, status_code=response.status_code, headers=headers)

    async def forward(self, request: Request) -> Response:
        """Pass a request on unchanged (method, path, query, body) and its answer back."""
        # The path as it came, still percent-encoded: decoded, a control character in it is no URL.
        raw_path = request.scope.get("raw_path")
        response = await self.send(
            request.method,
            raw_path.decode("ascii") if raw_path else request.url.path,
            params=request.query_params.multi_items(),
            content=await json_body(request),
            headers={k: v for k, v in request.headers.items() if k.lower() == "content-type"},
        )
        return self.relay(response)

    def body(self, response: httpx2.Response) -> dict:
        """The body of a successful answer; an error answer becomes the same error here."""
        return service_body("search", self.url or "embedded", response)


def model_services(settings: Settings, registry: CollectorRegistry) -> ModelServices:
    return RemoteServices(settings) if settings.services.remote else LocalServices(settings, registry)
