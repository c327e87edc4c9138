"""A real Milvus server for tests: Milvus standalone from the `milvus` package (the server's binaries in a
wheel) in .venv-milvus (made by `scripts/setup.sh test`), on loopback. milvus-lite serves one process; a
server lets several search services share one Milvus, as a deployment does."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kfashion.stack import free_port
from tests.servers import ROOT

MILVUS_PYTHON = ROOT / ".venv-milvus" / "bin" / "python"
READY_TIMEOUT_S = 120
# Run by .venv-milvus's Python: start the server, print its port, stop it on SIGTERM.
RUNNER = """
import signal, sys, threading
from milvus import default_server
default_server.set_base_dir(sys.argv[1])
default_server.listen_port = int(sys.argv[2])
default_server.start()
print("ready", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
default_server.stop()
"""


def require_milvus() -> None:
    """Skip (on a user's machine) or fail (under CI) when the Milvus server's environment is missing."""
    if not MILVUS_PYTHON.is_file():
        reason = f"no Milvus server environment at {MILVUS_PYTHON.parent.parent}: run `scripts/setup.sh test`"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must run the Milvus server tests)")
        pytest.skip(reason)


@dataclass
class MilvusServer:
    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MilvusServer:
        require_milvus()
        log = (self.folder / "milvus.log").open("ab")
        self.process = subprocess.Popen(
            [str(MILVUS_PYTHON), "-c", RUNNER, str(self.folder / "server"), str(self.port)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.strip() == "ready":
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"the Milvus server exited; log: {self.folder / 'milvus.log'}")
        raise TimeoutError(f"the Milvus server did not start in {READY_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
