"""API keys at the gateway, the one public entry. With none configured every route is open (the embedded
default on one machine). With keys configured, every request but the open ones needs one in the X-API-Key
header, and the key's scope says what it may do: `read` (tag, search, recommend, read the catalog, trends
and jobs: a key a mobile app can carry) or `write` (also change the catalog, collections and jobs: a key for
the shop's own backend). The model services behind the gateway are not exposed (deploy/k8s)."""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Literal
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from shared.envelope import failure
from shared.errors import ApiError, ErrorCode

Scope = Literal["read", "write"]
API_KEY_HEADER = "X-API-Key"
OPEN_PATHS = frozenset(
    {
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/taxonomy",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)
OPEN_PREFIXES = ("/console/",)
# Result images load in image views (<img>, mobile image components), which send no headers; a catalog's
# product photos are what its shop shows anyway. Their ids come from search results.
OPEN_GETS = re.compile(r"^/catalog/images/\d+/file$")
READ_POSTS = frozenset({"/tagging", "/tagging/jobs", "/search", "/recommend"})


def needed_scope(method: str, path: str) -> Scope | None:
    """What a request needs: nothing, a read key or a write key. A browser's CORS preflight (OPTIONS)
    never carries the key, so it needs none; the request it clears does."""
    reading = method in ("GET", "HEAD")
    if method == "OPTIONS" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return None
    if reading and OPEN_GETS.match(path):
        return None
    return "read" if reading or (method == "POST" and path in READ_POSTS) else "write"


def key_scope(keys: dict[str, Scope], given: str | None) -> Scope | None:
    """The scope of the key given; None when it is none of them (compared in constant time)."""
    if given is None:
        return None
    found = None
    for key, scope in keys.items():  # every key compared, so the time does not say which one matched
        if hmac.compare_digest(key.encode(), given.encode()):
            found = scope
    return found


def require_write(request: Request, what: str) -> None:
    """For a read route that writes on request (a search saved to a collection)."""
    if getattr(request.state, "api_scope", "write") != "write":
        raise ApiError(
            ErrorCode.FORBIDDEN, f"{what} needs a write key; this key may only read", {"scope": "read"}
        )


def install_access(app: FastAPI, keys: dict[str, Scope], cors_origins: list[str]) -> None:
    """API keys, then CORS outside them (added last, it runs first), so a preflight is answered without a
    key and the answers to the origins' requests, refusals included, carry the CORS headers."""
    if keys:
        _install_api_keys(app, keys)
        _document_api_keys(app)
    _install_origin_check(app, cors_origins)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[API_KEY_HEADER, "Content-Type"],
            expose_headers=["Content-Disposition"],
        )


def _document_api_keys(app: FastAPI) -> None:
    """The OpenAPI description says which operations need which key, so /docs can send one (Authorize)."""
    described = app.openapi  # FastAPI's own, which builds the description once and keeps it

    def openapi() -> dict:
        schema = described()
        components = schema.setdefault("components", {})
        if "securitySchemes" not in components:
            components["securitySchemes"] = {
                "ApiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
            }
            for path, operations in schema["paths"].items():
                for method, operation in operations.items():
                    scope = needed_scope(method.upper(), re.sub(r"\{[^}]+\}", "0", path))
                    if scope is not None:
                        operation["security"] = [{"ApiKey": []}]
                        operation["description"] = f"Needs a {scope} key. " + operation.get("description", "")
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def cross_site(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """A request a browser sent from another site's page: its Origin is neither this server nor allowed."""
    if not origin or origin in allowed:
        return False
    return urlsplit(origin).netloc != (host or "")


def _install_origin_check(app: FastAPI, allowed: list[str]) -> None:
    """Changes sent from another site's page are refused, keys or not: without keys a plain cross-site
    form post would otherwise reach every route (browsers send no CORS preflight for one). Clients that
    are not browsers send no Origin and are not affected."""

    @app.middleware("http")
    async def _check_origin(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.method not in ("GET", "HEAD", "OPTIONS") and cross_site(
            request.headers.get("origin"), request.headers.get("host"), allowed
        ):
            error = ApiError(
                ErrorCode.FORBIDDEN,
                "requests from another site's pages are refused; add its origin to "
                "KFASHION_GATEWAY__CORS_ORIGINS to allow it",
                {"origin": request.headers.get("origin")},
            )
            return JSONResponse(failure(error), status_code=error.status)
        return await call_next(request)


def _install_api_keys(app: FastAPI, keys: dict[str, Scope]) -> None:

    @app.middleware("http")
    async def _check_key(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        needed = needed_scope(request.method, request.url.path)
        if needed is None:
            return await call_next(request)
        given = request.headers.get(API_KEY_HEADER)
        scope = key_scope(keys, given)
        if scope is None:
            error = ApiError(
                ErrorCode.UNAUTHORIZED,
                f"send a valid API key in the {API_KEY_HEADER} header"
                if given
                else f"this server needs an API key in the {API_KEY_HEADER} header",
                {"header": API_KEY_HEADER},
            )
            return JSONResponse(
                failure(error), status_code=error.status, headers={"WWW-Authenticate": API_KEY_HEADER}
            )
        if needed == "write" and scope != "write":
            error = ApiError(
                ErrorCode.FORBIDDEN,
                f"{request.method} {request.url.path} needs a write key; this key may only read",
                {"scope": scope, "needs": needed},
            )
            return JSONResponse(failure(error), status_code=error.status)
        request.state.api_scope = scope
        return await call_next(request)
