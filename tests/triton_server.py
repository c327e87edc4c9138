"""A real Triton server for tests and benchmarks: PyTriton's bundled Triton in .venv-triton (made by
`scripts/setup.sh test`), serving a repository written by `kfashion models triton-repo`, on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kfashion.stack import TRITON_PYTHON, free_port, triton_command
from tests.servers import ROOT

READY_TIMEOUT_S = 90


def require_triton() -> None:
    """Skip (on a user's machine) or fail (under CI) when the Triton environment is missing."""
    if not TRITON_PYTHON.is_file():
        reason = f"no Triton environment at {TRITON_PYTHON.parent.parent}: run `scripts/setup.sh test`"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must run the Triton tests)")
        pytest.skip(reason)


def write_repository(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "kfashion", "models", "triton-repo", str(out), "--variant", "cpu"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return out


@dataclass
class TritonServer:
    repository: Path
    log: Path
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> TritonServer:
        import tritonclient.http as triton_http

        command, extra = triton_command(self.repository, self.http_port, self.grpc_port, self.metrics_port)
        env = {**os.environ, **extra}
        # A session of its own: PyTriton starts tritonserver as a child, and stop() ends both.
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        client = triton_http.InferenceServerClient(self.http_url)
        deadline = time.monotonic() + READY_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"Triton exited with {self.process.returncode}; log: {self.log}")
                try:
                    if client.is_server_ready() and all(
                        client.is_model_ready(m) for m in ("detector", "attributes", "style")
                    ):
                        return self
                except Exception:  # not listening yet
                    pass
                time.sleep(0.3)
        finally:
            client.close()
        raise TimeoutError(f"Triton not ready after {READY_TIMEOUT_S} s; log: {self.log}")

    def stop(self) -> None:
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
                time.sleep(0.5)  # the group's other processes
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of the group is left
