"""API keys and rate limits at the gateway, the one public entry. With no keys configured every route is
open (the embedded default on one machine). With keys configured, every request but the open ones needs
one in the X-API-Key header, and the key's scope says what it may do: `read` (tag, search, recommend, read
the catalog, trends and its own jobs: a key a mobile app can carry), `write` (also change the catalog,
collections and its jobs: a key for the shop's own backend) or `admin` (also every key's jobs). A job
belongs to the key that created it. Requests are counted per client address and per key (gateway/limits.py);
wrong keys have a budget of their own per address. The model services behind the gateway are not exposed
(deploy/k8s)."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers

from gateway.limits import TokenBuckets
from shared.errors import ApiError, ErrorCode
from shared.openapi import ApiDescription
from shared.settings import GatewaySettings, RateLimits
from shared.web import RequestGate, add_inner_middleware, error_response

Scope = Literal["read", "write", "admin"]
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


def key_owner(key: str) -> str:
    """The id a key's jobs are stored under: not the key, so the database holds no secret."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the id new jobs are stored under (None without keys) and whether it sees every
    key's jobs (no keys configured, or an admin key)."""

    owner: str | None
    sees_all: bool

    @property
    def jobs_of(self) -> str | None:
        """The owner whose jobs this caller may see; None: every job."""
        return None if self.sees_all else self.owner


def caller(request: Request) -> Caller:
    scope = getattr(request.state, "api_scope", None)
    return Caller(getattr(request.state, "api_owner", None), scope in (None, "admin"))


CallerOf = Annotated[Caller, Depends(caller)]


def require_write(request: Request, what: str) -> None:
    """For a read route that writes on request (a search saved to a collection)."""
    if getattr(request.state, "api_scope", "write") not in ("write", "admin"):
        raise ApiError(
            ErrorCode.FORBIDDEN, f"{what} needs a write key; this key may only read", {"scope": "read"}
        )


def install_access(app: FastAPI, settings: GatewaySettings) -> None:
    """CORS, then the origin check, then keys and rate limits, all inside the request metrics (their
    refusals are counted and carry the security headers). CORS runs first, so a preflight is answered
    without a key and the answers to the origins' requests, refusals included, carry the CORS headers."""
    keys, cors_origins = settings.api_keys, settings.cors_origins
    if cors_origins:
        add_inner_middleware(
            app,
            EnvelopeCORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[API_KEY_HEADER, "Content-Type"],
            expose_headers=["Content-Disposition"],
        )
    _install_origin_check(app, cors_origins)  # before the keys: another site's page is refused unread
    _install_key_and_rate_checks(app, keys, settings.rate_limits)
    description: ApiDescription = app.state.service.description
    description.status_rules.append(_access_statuses)
    if keys:
        _document_api_keys(description)


def _document_api_keys(description: ApiDescription) -> None:
    """The description says which operations need which key, so /docs can send one (Authorize), and
    what a missing, wrong or weak key is answered."""

    def add_security(schema: dict) -> None:
        components = schema.setdefault("components", {})
        components["securitySchemes"] = {"ApiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}}
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                scope = needed_scope(method.upper(), _example_path(path))
                if scope is not None:
                    operation["security"] = [{"ApiKey": []}]
                    operation["description"] = f"Needs a {scope} key. " + operation.get("description", "")

    def key_statuses(method: str, path: str, _: dict) -> set[int]:
        return set() if needed_scope(method.upper(), _example_path(path)) is None else {401, 403}

    description.changes.append(add_security)
    description.status_rules.append(key_statuses)


def _access_statuses(method: str, path: str, _: dict) -> set[int]:
    """Rate limits (429) on every counted operation; changes from another site's page refused (403)."""
    if needed_scope(method.upper(), _example_path(path)) is None:
        return set()
    return {429} if method in ("get", "head") else {403, 429}


def _example_path(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "0", template)


def cross_site(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """A request a browser sent from another site's page: its Origin is neither this server nor allowed."""
    if not origin or origin in allowed:
        return False
    return urlsplit(origin).netloc != (host or "")


def _install_origin_check(app: FastAPI, allowed: list[str]) -> None:
    """Changes sent from another site's page are refused, keys or not: without keys a plain cross-site
    form post would otherwise reach every route (browsers send no CORS preflight for one). Clients that
    are not browsers send no Origin and are not affected."""

    def check_origin(request: Request) -> Response | None:
        if request.method not in ("GET", "HEAD", "OPTIONS") and cross_site(
            request.headers.get("origin"), request.headers.get("host"), allowed
        ):
            error = ApiError(
                ErrorCode.FORBIDDEN,
                "requests from another site's pages are refused; add its origin to "
                "KFASHION_GATEWAY__CORS_ORIGINS to allow it",
                {"origin": request.headers.get("origin")},
            )
            return error_response(error)
        return None

    add_inner_middleware(app, RequestGate, check=check_origin)


class EnvelopeCORSMiddleware(CORSMiddleware):
    """Starlette's CORS handling, its refused preflights answered in the envelope rather than plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        error = ApiError(
            ErrorCode.FORBIDDEN,
            f"cross-origin request refused: {answer.body.decode(errors='replace')}",
            {"origin": request_headers.get("origin")},
        )
        return error_response(error)


def _too_many(what: str, wait_s: int) -> JSONResponse:
    return error_response(
        ApiError(
            ErrorCode.RATE_LIMITED, f"too many {what}; try again in {wait_s} s", {"retry_after_s": wait_s}
        )
    )


def _install_key_and_rate_checks(app: FastAPI, keys: dict[str, Scope], limits: RateLimits) -> None:
    per_address, per_key = TokenBuckets(limits.per_address), TokenBuckets(limits.per_key)
    failed_keys = TokenBuckets(limits.failed_keys)

    def check_access(request: Request) -> Response | None:
        needed = needed_scope(request.method, request.url.path)
        if needed is None:
            return None
        address = request.client.host if request.client else "unknown"
        if keys:
            # An address that keeps sending wrong keys is stopped before any key is compared.
            if wait_s := failed_keys.wait_s(address):
                return _too_many("requests with a wrong API key from this address", wait_s)
            given = request.headers.get(API_KEY_HEADER)
            scope = key_scope(keys, given)
            if scope is None:
                failed_keys.take(address)
                error = ApiError(
                    ErrorCode.UNAUTHORIZED,
                    f"send a valid API key in the {API_KEY_HEADER} header"
                    if given
                    else f"this server needs an API key in the {API_KEY_HEADER} header",
                    {"header": API_KEY_HEADER},
                )
                return error_response(error, {"WWW-Authenticate": API_KEY_HEADER})
            assert given is not None  # a scope was found for it
            if needed == "write" and scope not in ("write", "admin"):
                error = ApiError(
                    ErrorCode.FORBIDDEN,
                    f"{request.method} {request.url.path} needs a write key; this key may only read",
                    {"scope": scope, "needs": needed},
                )
                return error_response(error)
            request.state.api_scope = scope
            request.state.api_owner = key_owner(given)
            if wait_s := per_key.take(request.state.api_owner):
                return _too_many("requests with this API key", wait_s)
        if wait_s := per_address.take(address):
            return _too_many("requests from this address", wait_s)
        return None

    add_inner_middleware(app, RequestGate, check=check_access)
