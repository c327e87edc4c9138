"""What every service app and the gateway share: /healthz, /readyz, /metrics (Prometheus), envelope errors,
request metrics, and models loaded in the background at start (ready only once loaded and warmed up)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

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

    @app.middleware("http")
    async def _count(request: Request, call_next: Callable) -> Response:
        began = time.perf_counter()
        if request.url.path not in PROBES:  # probes every few seconds are no load
            trimmer.touch()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        # Answers are data, never pages to sniff or frame (the console's HTML is served as what it is).
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        requests.labels(name, path, str(response.status_code)).inc()
        latency.labels(name, path).observe(time.perf_counter() - began)
        return response

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
