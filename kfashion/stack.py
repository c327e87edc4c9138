"""`kfashion stack up/down/status`: the microservice deployment on one machine, as it runs in the cluster:
each service its own process (detector, attributes, style, search, gateway), optionally the models on a
Triton server, with the database and object storage given (PostgreSQL, S3) or local (SQLite, a folder).

The stack's folder holds `stack.json` (what runs where: pids, ports, URLs), one log per process and the
data of the local parts. `down` stops every process of the stack (each in its own session, so their
children go too).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[1]
STATE = "stack.json"
MODEL_SERVICES = ("detector", "attributes", "style")
TRITON_PYTHON = ROOT / ".venv-triton" / "bin" / "python"
TRITON_SERVE = ROOT / "deploy" / "triton" / "serve_repository.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Process:
    name: str
    pid: int
    url: str
    log: str


@dataclass
class Stack:
    folder: str
    gateway_url: str
    processes: list[Process] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)

    def save(self) -> None:
        (Path(self.folder) / STATE).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, folder: Path) -> Stack:
        data = json.loads((folder / STATE).read_text())
        return cls(
            data["folder"], data["gateway_url"], [Process(**p) for p in data["processes"]], data["settings"]
        )


def spawn(name: str, command: list[str], env: dict[str, str], folder: Path, url: str) -> Process:
    """Start `command` in the background, its output in `folder/<name>.log`, answering at `url`."""
    log = folder / f"{name}.log"
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: `down` stops it and its children
    )
    return Process(name, process.pid, url, str(log))


def _serve(service: str, port: int, args: list[str], env: dict[str, str], folder: Path) -> Process:
    command = [sys.executable, "-m", "kfashion", "serve", "--service", service, "--port", str(port), *args]
    return spawn(service, [*command, "--log-level", "warning"], env, folder, f"http://127.0.0.1:{port}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child of this process that exited but was not reaped counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def wait_ready(url: str, process: Process, timeout: float) -> None:
    """Until `url` answers 200; an error naming the log when the process exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(process.pid):
            raise RuntimeError(f"{process.name} exited; see {process.log}")
        try:
            if httpx2.get(url, timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{process.name} not ready after {timeout:.0f} s; see {process.log}")


def _start_s3_server(stack: Stack, folder: Path, timeout: float) -> str:
    """A local S3-protocol server for the stack (moto's, from the dev dependencies; it keeps objects in
    memory and does not check credentials: for trying the topology, not for keeping data)."""
    server = Path(sys.executable).parent / "moto_server"
    if not server.is_file():
        raise RuntimeError("--s3-server needs moto_server (the project's dev dependencies)")
    port = free_port()
    process = spawn(
        "s3", [str(server), "-H", "127.0.0.1", "-p", str(port)], {}, folder, f"http://127.0.0.1:{port}"
    )
    stack.processes.append(process)
    stack.save()
    wait_ready(f"{process.url}/moto-api/", process, timeout)
    return f"127.0.0.1:{port}"


def with_schema(database: str, schema: str) -> str:
    """A PostgreSQL URL whose tables live in `schema` (created if missing): stacks share one database."""
    import sqlalchemy as sa

    if not schema.isidentifier():
        raise RuntimeError(f"schema {schema!r}: letters, digits and _ only")
    engine = sa.create_engine(database)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()
    separator = "&" if "?" in database else "?"
    return f"{database}{separator}options=-csearch_path%3D{schema}"


def up(
    folder: Path,
    port: int = 8000,
    triton: bool = False,
    database: str | None = None,
    s3_endpoint: str | None = None,
    s3_bucket: str = "kfashion",
    s3_prefix: str = "",
    s3_access_key: str | None = None,
    s3_secret_key: str | None = None,
    models_dir: Path | None = None,
    timeout: float = 180.0,
    s3_server: bool = False,
    schema: str | None = None,
) -> Stack:
    """Start the stack. `s3_server`: start a local S3-protocol server too; `schema`: keep the tables in
    this PostgreSQL schema of `database` (created if missing)."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / STATE).exists() and any(_alive(p.pid) for p in Stack.load(folder).processes):
        raise RuntimeError(f"a stack is already running from {folder}: `kfashion stack down` first")
    models = (models_dir or ROOT / "models").resolve()
    stack = Stack(str(folder), f"http://127.0.0.1:{port}")
    if schema and database:
        database = with_schema(database, schema)
    if s3_server:
        s3_access_key, s3_secret_key = s3_access_key or "kfashion", s3_secret_key or "kfashion-local"
        try:
            s3_endpoint = _start_s3_server(stack, folder, timeout)
        except BaseException:
            down(folder)
            raise
    shared = {"KFASHION_MODELS_DIR": str(models), "KFASHION_DATA_DIR": str(folder / "data")}
    if database:
        shared["KFASHION_DATABASE"] = database
    if s3_endpoint:
        shared |= {
            "KFASHION_STORAGE__BACKEND": "s3",
            "KFASHION_STORAGE__ENDPOINT": s3_endpoint,
            "KFASHION_STORAGE__BUCKET": s3_bucket,
            "KFASHION_STORAGE__PREFIX": s3_prefix,
            "KFASHION_STORAGE__SECURE": "false",
            "KFASHION_STORAGE__REGION": "us-east-1",
        }
        if s3_access_key:
            shared["KFASHION_STORAGE__ACCESS_KEY"] = s3_access_key
        if s3_secret_key:
            shared["KFASHION_STORAGE__SECRET_KEY"] = s3_secret_key
    stack.settings = shared
    try:
        model_env = dict(shared)
        if triton:
            model_env |= _start_triton(stack, folder, models, timeout)
        services = {name: free_port() for name in (*MODEL_SERVICES, "search")}
        for name, service_port in services.items():
            env = model_env if name in MODEL_SERVICES else shared
            stack.processes.append(_serve(name, service_port, [], env, folder))
        urls = [arg for name, p in services.items() for arg in (f"--{name}-url", f"http://127.0.0.1:{p}")]
        stack.processes.append(_serve("gateway", port, urls, shared, folder))
        stack.save()
        probes = {"triton": "/v2/health/ready", "s3": "/moto-api/"}
        for process in stack.processes:
            wait_ready(f"{process.url}{probes.get(process.name, '/readyz')}", process, timeout)
    except BaseException:
        down(folder)
        raise
    return stack


def triton_command(repository: Path, http: int, grpc: int, metrics: int) -> tuple[list[str], dict[str, str]]:
    """The command and environment that serve a Triton repository with PyTriton's server (.venv-triton)."""
    command = [
        str(TRITON_PYTHON), str(TRITON_SERVE), str(repository),
        "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
    ]  # fmt: skip
    # PyTriton's Python backend loads the interpreter's libpython from the library path.
    return command, {"LD_LIBRARY_PATH": sysconfig.get_config_var("LIBDIR") or ""}


def _start_triton(stack: Stack, folder: Path, models: Path, timeout: float) -> dict[str, str]:
    from shared.triton_repo import write_repository

    if not TRITON_PYTHON.is_file():
        raise RuntimeError(
            f"no Triton environment at {TRITON_PYTHON.parents[1]}: run `scripts/setup.sh test`"
        )
    repository = folder / "triton-repository"
    write_repository(models, repository, "cpu")
    http, grpc, metrics = free_port(), free_port(), free_port()
    command, env = triton_command(repository, http, grpc, metrics)
    process = spawn("triton", command, env, folder, f"http://127.0.0.1:{http}")
    stack.processes.append(process)
    stack.save()
    wait_ready(f"{process.url}/v2/health/ready", process, timeout)
    return {
        "KFASHION_RUNTIME__BACKEND": "triton",
        "KFASHION_RUNTIME__TRITON_URL": f"127.0.0.1:{grpc}",
        "KFASHION_RUNTIME__TRITON_PROTOCOL": "grpc",
    }


def down(folder: Path, timeout: float = 30.0) -> list[str]:
    """Stop every process of the stack (gateway first); returns the names stopped."""
    path = folder.resolve() / STATE
    if not path.exists():
        return []
    stack = Stack.load(folder.resolve())
    stopped = []
    for process in reversed(stack.processes):
        if not _alive(process.pid):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # what is left of its group
        stopped.append(process.name)
    path.unlink()
    return stopped


def status(folder: Path) -> list[dict]:
    path = folder.resolve() / STATE
    if not path.exists():
        return []
    stack = Stack.load(folder.resolve())
    return [{"name": p.name, "pid": p.pid, "url": p.url, "alive": _alive(p.pid)} for p in stack.processes]
