"""The gateway's description beyond what its handlers declare (shared/openapi.py does the rest): the
operations passed on to the search service take that service's own parameters and bodies, some answer
files, and some answer statuses of their own."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from gateway.exports import XLSX_TYPE
from gateway.routes.catalog import FORWARDED
from services.search import routes as search_routes
from shared.openapi import ApiDescription

TABLES = ["application/json", "text/csv", XLSX_TYPE]
FILE_ANSWERS: dict[tuple[str, str], list[str]] = {
    ("post", "/tagging"): [*TABLES, "image/jpeg", "application/zip"],
    ("get", "/tagging/jobs/{job_id}/results"): TABLES,
    ("get", "/tagging/jobs/{job_id}/images/{position}"): ["image/jpeg"],
    ("get", "/tagging/jobs/{job_id}/images"): ["application/zip"],
    ("get", "/catalog/images/{image_id}/file"): ["image/*", "application/octet-stream"],
}
FETCHING = {("post", "/tagging"), ("post", "/tagging/jobs"), ("post", "/catalog/images")}
OWN_STATUSES: dict[tuple[str, str], set[int]] = {
    ("post", "/collections"): {404, 409},  # an entry's image not found; the name taken
    ("delete", "/catalog/images"): {404},  # no image of that product
    ("post", "/search"): {404},
    ("post", "/recommend"): {404},
}
# Operations that call another service, which may answer something the gateway cannot read (502).
CALLS_SERVICES = ("/tagging", "/catalog", "/collections", "/search", "/recommend", "/trends", "/services")


def forwarded_operations(schema: dict[str, Any]) -> None:
    """Each forwarded operation described by the search service's own handler: its path and query
    parameters, its body, and the schemas they refer to."""
    search = FastAPI()
    search.include_router(search_routes.router)
    source = search.openapi()
    for method, path, *_ in FORWARDED:
        theirs = source["paths"][path][method.lower()]
        ours = schema["paths"][path][method.lower()]
        for part in ("parameters", "requestBody"):
            if part in theirs:
                ours[part] = theirs[part]
        ours["responses"] = {s: a for s, a in theirs["responses"].items() if s.startswith("2")}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, component in source.get("components", {}).get("schemas", {}).items():
        components.setdefault(name, component)


def gateway_statuses(method: str, path: str, _: dict[str, Any]) -> set[int]:
    statuses = set(OWN_STATUSES.get((method, path), set()))
    if (method, path) in FETCHING:
        statuses |= {403, 502}  # a URL's host not allowed; its download failed
    if path.startswith(CALLS_SERVICES):
        statuses.add(502)
    return statuses


def describe_gateway(description: ApiDescription) -> None:
    description.changes.append(forwarded_operations)
    description.status_rules.append(gateway_statuses)
    description.media.update(FILE_ANSWERS)
