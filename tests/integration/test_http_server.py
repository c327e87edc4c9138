"""The served HTTP protocol (shared/http_server.py) on a real gateway process: a client that trickles its
request head is cut off at the deadline; one that sends its head in time is answered, on a reused
connection too."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Server, gateway_env

HEAD_TIMEOUT_S = 1.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("head-deadline")
    env = gateway_env(folder / "data") | {"KFASHION_HEAD_TIMEOUT_S": str(HEAD_TIMEOUT_S)}
    running = Server([], env, log=folder / "log")
    yield running.start()
    running.kill()


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def test_a_trickled_request_head_is_cut_off(server: Server) -> None:
    with _connect(server) as connection:
        started = time.monotonic()
        closed_after = None
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:
            try:
                connection.sendall(bytes([byte]))
            except OSError:  # the server closed it
                closed_after = time.monotonic() - started
                break
            time.sleep(0.1)
        if closed_after is None:
            assert connection.recv(1024) == b""  # closed, nothing answered
            closed_after = time.monotonic() - started
    assert HEAD_TIMEOUT_S - 0.2 <= closed_after <= HEAD_TIMEOUT_S + 1.0, closed_after


def test_heads_sent_in_time_are_answered_on_one_connection(server: Server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.connect()
    opened = connection.sock
    for pause in (0.0, 1.0, 1.0):  # each head arrives within the deadline of the answer before it
        time.sleep(pause)
        connection.request("GET", "/healthz")
        answer = connection.getresponse()
        assert answer.status == 200 and b'"alive"' in answer.read(), pause
    assert connection.sock is opened  # the same connection throughout
    connection.close()
