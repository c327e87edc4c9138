"""API keys at the gateway (gateway/access.py) over HTTP, against a real server configured with a read key
and a write key."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from gateway.access import needed_scope
from tests.servers import Server, gateway_env
from training.data import Sample

READ = {"X-API-Key": "app-key-read"}
WRITE = {"X-API-Key": "backend-key-write"}
SHOP = "https://shop.example"  # a web shop whose pages call the API from the browser


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("keyed")
    env = gateway_env(folder / "data") | {
        "KFASHION_GATEWAY__API_KEYS": '{"app-key-read": "read", "backend-key-write": "write"}',
        "KFASHION_GATEWAY__CORS_ORIGINS": f'["{SHOP}"]',
    }
    server = Server([], env, log=folder / "log")
    yield server.start()
    server.kill()


def _error(response: httpx2.Response, status: int, code: str) -> str:
    envelope = response.json()
    assert response.status_code == envelope["resultCode"] == status, response.text
    assert envelope["body"]["error"]["code"] == code
    return envelope["resultMessage"]


def test_requests_without_a_valid_key_are_refused(keyed: Server) -> None:
    missing = httpx2.post(f"{keyed.url}/search", json={"text": "black"})
    assert "X-API-Key" in _error(missing, 401, "UNAUTHORIZED")
    assert missing.headers["www-authenticate"] == "X-API-Key"
    wrong = httpx2.get(f"{keyed.url}/catalog/images", headers={"X-API-Key": "app-key-reaD"})
    assert _error(wrong, 401, "UNAUTHORIZED") == "send a valid API key in the X-API-Key header"
    # Probes, metrics, the taxonomy, the API's description and the console need none.
    for path in ("/healthz", "/readyz", "/metrics", "/taxonomy", "/openapi.json", "/", "/console/console.js"):
        assert httpx2.get(f"{keyed.url}{path}").status_code == 200, path


def test_a_read_key_reads_and_a_write_key_writes(keyed: Server, unseen: list[Sample]) -> None:
    photo = [("files", (unseen[0].image_path.name, unseen[0].image_path.read_bytes()))]
    refused = httpx2.post(f"{keyed.url}/catalog/images", files=photo, headers=READ, timeout=60)
    assert "needs a write key" in _error(refused, 403, "FORBIDDEN")
    added = httpx2.post(f"{keyed.url}/catalog/images", files=photo, headers=WRITE, timeout=60)
    assert added.status_code == 200, added.text
    image_id = added.json()["body"]["results"][0]["image_id"]
    tagged = httpx2.post(f"{keyed.url}/tagging", files=photo, headers=READ, timeout=60)
    assert tagged.status_code == 200 and tagged.json()["body"]["results"][0]["items"]
    found = httpx2.post(f"{keyed.url}/search", files=photo, headers=READ, timeout=60).json()["body"][
        "results"
    ]
    assert found[0]["image_id"] == image_id
    # The result's image loads in an image view, which sends no header.
    assert httpx2.get(f"{keyed.url}{found[0]['image_url']}").content == unseen[0].image_path.read_bytes()
    saved = httpx2.post(f"{keyed.url}/search", json={"text": "black", "save_to": "picks"}, headers=READ)
    assert "save_to" in _error(saved, 403, "FORBIDDEN")
    assert httpx2.post(
        f"{keyed.url}/search", json={"text": "black", "save_to": "picks"}, headers=WRITE
    ).is_success
    assert httpx2.get(f"{keyed.url}/collections/picks", headers=READ).is_success
    catalog_job = {"catalog": "true"}
    job = httpx2.post(f"{keyed.url}/tagging/jobs", files=photo, data=catalog_job, headers=READ, timeout=60)
    assert "catalog=true" in _error(job, 403, "FORBIDDEN")
    assert httpx2.post(f"{keyed.url}/tagging/jobs", files=photo, headers=READ, timeout=60).status_code == 202
    _error(httpx2.delete(f"{keyed.url}/catalog/images/{image_id}", headers=READ), 403, "FORBIDDEN")
    assert httpx2.delete(f"{keyed.url}/catalog/images/{image_id}", headers=WRITE).is_success


def test_a_shops_pages_may_call_from_the_browser(keyed: Server) -> None:
    asked = {
        "Origin": SHOP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key",
    }
    preflight = httpx2.options(f"{keyed.url}/search", headers=asked)  # the browser sends no key here
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == SHOP
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
    answered = httpx2.post(f"{keyed.url}/search", json={"text": "black"}, headers={"Origin": SHOP} | READ)
    assert answered.status_code == 200 and answered.headers["access-control-allow-origin"] == SHOP
    refused = httpx2.post(f"{keyed.url}/search", json={"text": "black"}, headers={"Origin": SHOP})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == SHOP  # readable
    elsewhere = httpx2.options(f"{keyed.url}/search", headers=asked | {"Origin": "https://other.example"})
    assert elsewhere.status_code == 400 and "access-control-allow-origin" not in elsewhere.headers


def test_what_each_route_needs(keyed: Server) -> None:
    described = httpx2.get(f"{keyed.url}/openapi.json").json()
    routes = described["paths"]
    # The description says which operations need a key, so /docs can send one.
    assert described["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    assert routes["/search"]["post"]["security"] == [{"ApiKey": []}]
    assert routes["/catalog/images/{image_id}"]["delete"]["description"].startswith("Needs a write key.")
    assert (
        "security" not in routes["/healthz"]["get"]
        and "security" not in routes["/catalog/images/{image_id}/file"]["get"]
    )
    needs = {
        (method.upper(), path): needed_scope(method.upper(), path)
        for path in routes
        for method in routes[path]
    }
    reads = {route for route, scope in needs.items() if scope == "read" and route[0] != "GET"}
    assert reads == {
        ("POST", "/tagging"),
        ("POST", "/tagging/jobs"),
        ("POST", "/search"),
        ("POST", "/recommend"),
    }
    assert all(
        scope == "write" for (method, _), scope in needs.items() if method in ("PUT", "PATCH", "DELETE")
    )
    assert needs[("POST", "/catalog/images")] == needs[("POST", "/collections")] == "write"
    assert needed_scope("GET", "/catalog/images/12/file") is None
    assert needed_scope("DELETE", "/catalog/images/12/file") == "write"
    assert needed_scope("OPTIONS", "/catalog/images/12") is None  # a CORS preflight
