"""Real servers for tests: `kfashion serve` processes (uvicorn) on loopback ports, waited for until ready."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from kfashion.stack import free_port

ROOT = Path(__file__).parents[1]
READY_TIMEOUT_S = 120
MAX_BYTES = 3_000_000  # image limits of the test gateways
MAX_PIXELS = 6_000_000


@dataclass
class Server:
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    log: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> Server:
        command = [
            sys.executable,
            "-m",
            "kfashion",
            "serve",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        output = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [*command, *self.args],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        if wait:
            try:
                self.wait_ready()
            except BaseException:  # a server that never got ready is not left running
                self.kill()
                raise
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(
                    f"server {self.args} exited with {self.process.returncode}; log: {self.log}"
                )
            try:
                if httpx2.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server {self.args} not ready after {timeout} s")

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def all_running(servers: dict[str, Server]) -> Iterator[dict[str, Server]]:
    """Start every server at once (their models load side by side), wait until each is ready, and stop
    them all at the end."""
    try:
        for server in servers.values():
            if server.process is None:
                server.start(wait=False)
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        for server in servers.values():
            server.kill()


def gateway_env(data_dir: Path) -> dict[str, str]:
    return {
        "KFASHION_DATA_DIR": str(data_dir),
        "KFASHION_GATEWAY__URL_HOSTS": '["127.0.0.1"]',
        "KFASHION_GATEWAY__CALLBACK_HOSTS": '["127.0.0.1"]',
        "KFASHION_GATEWAY__SYNC_MAX_IMAGES": "16",
        "KFASHION_IMAGE__MAX_BYTES": str(MAX_BYTES),
        "KFASHION_IMAGE__MAX_PIXELS": str(MAX_PIXELS),
    }
