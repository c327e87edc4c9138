"""The public API, K-Fashion Serve's one entry: /tagging (now, or as background jobs), the catalog,
/search and /recommend, over the model services (in-process when embedded, or over HTTP) and the search
service. Routes live in gateway/routes/, what they work on in gateway/state.py."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from gateway.access import install_access
from gateway.clients import ModelServices, SearchClient, model_services
from gateway.openapi import describe_gateway
from gateway.routes import catalog, jobs, operations, tagging
from gateway.routes.operations import CONSOLE
from gateway.state import Gateway
from shared.service import create_service_app
from shared.settings import Settings, load_settings


def create_app(
    settings: Settings | None = None,
    services: ModelServices | None = None,
    search: SearchClient | None = None,
) -> FastAPI:
    """`services` and `search`: what the gateway calls (default: as the settings say, embedded or by URL);
    a test passes its own to build a gateway in-process over services it controls."""
    settings = settings or load_settings()
    app, state = create_service_app(
        "gateway",
        "K-Fashion Serve",
        "Fashion photo tagging over the K-Fashion taxonomy. Every response is the envelope "
        '{"resultCode", "resultMessage", "body", "responseDate"}.',
    )
    install_access(app, settings.gateway)
    describe_gateway(state.description)
    gateway = Gateway(
        settings,
        services or model_services(settings, state.registry),
        search or SearchClient(settings),
        state.registry,
    )
    app.state.gateway = gateway
    state.startup.append(gateway.services.start)
    state.startup.append(gateway.search.start)
    state.ready_check = gateway.readiness
    state.started.append(gateway.worker.start)
    state.shutdown.append(gateway.close)
    for router in (tagging.router, jobs.router, catalog.router, operations.router):
        app.include_router(router)
    app.mount("/console", StaticFiles(directory=CONSOLE), name="console")
    return app
