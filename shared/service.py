"""What every service app and the gateway share: /healthz, /readyz, /metrics (Prometheus), envelope errors,
request metrics, and models loaded in the background at start (ready only once loaded and warmed up)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.envelope import failure, success
from shared.errors import ApiError, ErrorCode
from shared.memory import IdleTrimmer
from shared.openapi import ApiDescription, describe_answers
from shared.web import install_error_handlers

ReadyCheck = Callable[[], tuple[bool, dict[str, Any]]]
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


class ServiceState:
    """Readiness of one app: a check answering (ready, details), plus work started in the background."""

    def __init__(self, name: str, registry: CollectorRegistry):
        self.name = name
        self.registry = registry
        self.ready_check: ReadyCheck = lambda: (True, {})
        self.startup: list[Callable[[], None]] = []  # run in a background thread at start
        self.started: list[Callable[[], None]] = []  # run in the event loop at start
        self.shutdown: list[Callable[[], Any]] = []  # sync or async, run at stop
        self.description = ApiDescription(media={("get", "/metrics"): ["text/plain"]})

    def require_ready(self) -> None:
        ready, details = self.ready_check()
        if not ready:
            problem = details.get("problem", "models are not loaded yet")
            raise ApiError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"{self.name} is not ready: {problem}",
                {"service": self.name, **details},
            )


class RequestMetrics:
    """Middleware (plain ASGI, as shared/web.py's RequestGate says why) that counts and times each answer
    by route and status, marks the process busy for the idle trimmer, and sets the security headers."""

    def __init__(
        self, app: ASGIApp, service: str, requests: Counter, latency: Histogram, trimmer: IdleTrimmer
    ) -> None:
        self.app, self.service = app, service
        self.requests, self.latency, self.trimmer = requests, latency, trimmer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        if scope["path"] not in PROBES:  # probes every few seconds are no load
            self.trimmer.touch()
        status = 500  # what the client gets when the app raises

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Answers are data, never pages to sniff or frame (the console's HTML is served as such).
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")  # the router sets it in this scope
            self.requests.labels(self.service, path, str(status)).inc()
            self.latency.labels(self.service, path).observe(time.perf_counter() - began)


def create_service_app(
    name: str, title: str, description: str, registry: CollectorRegistry | None = None
) -> tuple[FastAPI, ServiceState]:
    """`registry`: where the app's metrics go, when something built before the app (a model's runtime)
    reports into it too."""
    registry = registry or CollectorRegistry()
    state = ServiceState(name, registry)
    requests = Counter(
        "kfashion_http_requests", "HTTP requests answered", ["service", "route", "status"], registry=registry
    )
    latency = Histogram(
        "kfashion_http_request_seconds", "time to answer a request", ["service", "route"], registry=registry
    )

    trimmer = IdleTrimmer()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for job in state.startup:
            threading.Thread(target=job, name=f"{name}-startup", daemon=True).start()
        for job in state.started:
            job()
        trimmer.start()
        yield
        await trimmer.stop()
        for job in state.shutdown:
            result = job()
            if hasattr(result, "__await__"):
                await result

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.state.service = state
    install_error_handlers(app)
    describe_answers(app, state.description)

    app.add_middleware(RequestMetrics, service=name, requests=requests, latency=latency, trimmer=trimmer)

    @app.get("/healthz", tags=["operations"], summary="the process is alive")
    def healthz() -> dict:
        return success({"service": name, "status": "alive"})

    @app.get("/readyz", tags=["operations"], summary="models loaded and warmed up; 503 until then")
    def readyz() -> JSONResponse:
        ready, details = state.ready_check()
        if ready:
            return JSONResponse(success({"service": name, "ready": True, **details}))
        error = ApiError(ErrorCode.SERVICE_UNAVAILABLE, f"{name} is not ready", {"service": name, **details})
        return JSONResponse(failure(error), status_code=error.status)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app, state


def runtime_ready_check(runtime: Any) -> ReadyCheck:
    def check() -> tuple[bool, dict[str, Any]]:
        problem = runtime.problem()
        return problem is None, {"runtime": runtime.status(), **(problem or {})}

    return check
