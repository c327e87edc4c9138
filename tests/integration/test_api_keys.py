"""API keys and rate limits at the gateway (gateway/access.py) over HTTP, against real servers configured
with read, write and admin keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from gateway.access import needed_scope
from tests.servers import Server, gateway_env
from training.data import Sample

READ = {"X-API-Key": "app-key-read-0123456789"}
OTHER_APP = {"X-API-Key": "another-app-key-read-0123"}
WRITE = {"X-API-Key": "backend-key-write-0123456"}
ADMIN = {"X-API-Key": "operator-key-admin-012345"}
SHOP = "https://shop.example"  # a web shop whose pages call the API from the browser
HOOKS = "hooks.example"  # the shop backend's callback host


def keys_setting(*keys: tuple[dict[str, str], str]) -> str:
    return json.dumps({key["X-API-Key"]: scope for key, scope in keys})


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("keyed")
    env = gateway_env(folder / "data") | {
        "KFASHION_GATEWAY__API_KEYS": keys_setting(
            (READ, "read"), (OTHER_APP, "read"), (WRITE, "write"), (ADMIN, "admin")
        ),
        "KFASHION_GATEWAY__CORS_ORIGINS": f'["{SHOP}"]',
        "KFASHION_GATEWAY__CALLBACK_HOSTS": f'["{HOOKS}"]',
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
    wrong = httpx2.get(f"{keyed.url}/catalog/images", headers={"X-API-Key": "app-key-read-012345678X"})
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
    assert "cross-origin request refused" in _error(elsewhere, 403, "FORBIDDEN")
    assert "access-control-allow-origin" not in elsewhere.headers
    for answer in (preflight, refused, elsewhere):  # security headers on refusals too
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_jobs_belong_to_the_key_that_created_them(keyed: Server, unseen: list[Sample]) -> None:
    photo = [("files", (unseen[1].image_path.name, unseen[1].image_path.read_bytes()))]
    hook = f"https://shop:s3cret@{HOOKS}/jobs/done?token=t0ken"
    created = httpx2.post(
        f"{keyed.url}/tagging/jobs", files=photo, data={"callback_url": hook}, headers=READ, timeout=60
    )
    assert created.status_code == 202, created.text
    job = created.json()["body"]
    assert job["callback"]["url"] == f"https://{HOOKS}/jobs/done"  # credentials never come back
    job_id = job["id"]
    paths = [f"/tagging/jobs/{job_id}", f"/tagging/jobs/{job_id}/results?format=csv"]
    paths += [f"/tagging/jobs/{job_id}/images", f"/tagging/jobs/{job_id}/images/0"]
    for path in paths:
        _error(httpx2.get(f"{keyed.url}{path}", headers=OTHER_APP, timeout=60), 404, "NOT_FOUND")
    _error(httpx2.delete(f"{keyed.url}/tagging/jobs/{job_id}", headers=WRITE), 404, "NOT_FOUND")
    listed = {
        name: httpx2.get(f"{keyed.url}/tagging/jobs", headers=key).json()["body"]
        for name, key in (("own", READ), ("other", OTHER_APP), ("admin", ADMIN))
    }
    assert job_id in [j["id"] for j in listed["own"]["jobs"]]
    assert job_id not in [j["id"] for j in listed["other"]["jobs"]]
    assert listed["own"]["total"] > listed["other"]["total"] - 1 and listed["admin"]["total"] >= 1
    assert job_id in [j["id"] for j in listed["admin"]["jobs"]]  # an admin key sees every key's jobs
    for key in (READ, ADMIN):
        seen = httpx2.get(f"{keyed.url}/tagging/jobs/{job_id}", headers=key)
        assert seen.status_code == 200 and "s3cret" not in seen.text and "t0ken" not in seen.text
    assert httpx2.delete(f"{keyed.url}/tagging/jobs/{job_id}", headers=ADMIN).is_success


def test_a_short_key_is_refused_at_start_up(tmp_path: Path) -> None:
    env = gateway_env(tmp_path / "data") | {"KFASHION_GATEWAY__API_KEYS": '{"short-key": "read"}'}
    server = Server([], env, log=tmp_path / "log")
    with pytest.raises(RuntimeError, match="exited"):
        server.start()
    assert "at least 16 characters" in (tmp_path / "log").read_text()
    assert "short-key" not in (tmp_path / "log").read_text()  # the log does not print the key


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("limited")
    env = gateway_env(folder / "data") | {
        "KFASHION_GATEWAY__API_KEYS": keys_setting((READ, "read")),
        "KFASHION_GATEWAY__RATE_LIMITS__FAILED_KEYS": "10",
        "KFASHION_GATEWAY__RATE_LIMITS__PER_KEY": "40",
    }
    server = Server([], env, log=folder / "log")
    yield server.start()
    server.kill()


def _from(address: str) -> httpx2.Client:
    """A client whose requests come from another loopback address (the server sees another client)."""
    return httpx2.Client(transport=httpx2.HTTPTransport(local_address=address), timeout=30)


def test_wrong_keys_and_busy_keys_get_429(limited: Server) -> None:
    with _from("127.0.0.2") as guesser:
        answers = [
            guesser.get(f"{limited.url}/catalog/images", headers={"X-API-Key": f"guess-{n:012d}"})
            for n in range(300)
        ]
        statuses = [a.status_code for a in answers]
        assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}, statuses[:15]
        assert "wrong API key" in _error(answers[-1], 429, "RATE_LIMITED")
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
        # The right key from that address waits too: a guess that worked would otherwise show.
        _error(guesser.get(f"{limited.url}/catalog/images", headers=READ), 429, "RATE_LIMITED")
        assert guesser.get(f"{limited.url}/healthz").status_code == 200  # probes are never limited
    with _from("127.0.0.3") as app, _from("127.0.0.4") as elsewhere:
        assert app.get(f"{limited.url}/catalog/images", headers=READ).status_code == 200  # another address
        statuses = [app.get(f"{limited.url}/catalog/images", headers=READ).status_code for _ in range(50)]
        assert 38 <= statuses.count(200) <= 42 and statuses[-1] == 429, statuses
        busy = elsewhere.get(f"{limited.url}/catalog/images", headers=READ)  # the key's budget, any address
        assert "this API key" in _error(busy, 429, "RATE_LIMITED")


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
