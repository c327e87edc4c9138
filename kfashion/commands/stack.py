"""`kfashion stack up|down|status`: the microservice deployment on one machine."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from kfashion.commands.common import (
    StackDir,
    err,
)

stack_app = typer.Typer(
    help="The microservice deployment on one machine: every service its own process.", no_args_is_help=True
)


@stack_app.command("up")
def stack_up(
    folder: StackDir = Path("data/stack"),
    port: Annotated[int, typer.Option(min=1, max=65535, help="the gateway's port")] = 8000,
    triton: Annotated[bool, typer.Option(help="models on a Triton server (needs .venv-triton)")] = False,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL; default SQLite in the folder")] = None,
    s3_endpoint: Annotated[
        str | None, typer.Option(help="host:port of an S3 server; default local disk")
    ] = None,
    s3_bucket: Annotated[str, typer.Option()] = "kfashion",
    s3_prefix: Annotated[str, typer.Option()] = "",
    s3_access_key: Annotated[str | None, typer.Option(envvar="KFASHION_STORAGE__ACCESS_KEY")] = None,
    s3_secret_key: Annotated[str | None, typer.Option(envvar="KFASHION_STORAGE__SECRET_KEY")] = None,
    s3_server: Annotated[
        bool, typer.Option(help="start a local S3-protocol server (moto's) as well")
    ] = False,
    schema: Annotated[str | None, typer.Option(help="PostgreSQL schema for the tables (created)")] = None,
) -> None:
    """Start detector, attributes, style, search and the gateway as separate processes (and Triton with
    --triton, an S3 server with --s3-server), wait until each is ready, and return; `kfashion stack down`
    stops them."""
    from kfashion import stack

    try:
        started = stack.up(
            folder, port, triton, database, s3_endpoint, s3_bucket, s3_prefix, s3_access_key, s3_secret_key,
            s3_server=s3_server, schema=schema,
        )  # fmt: skip
    except (RuntimeError, TimeoutError) as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    for process in started.processes:
        err.print(f"{process.name:10} pid {process.pid:7}  {process.url}  log {process.log}")
    sys.stdout.write(json.dumps({"gateway": started.gateway_url, "folder": started.folder}) + "\n")


@stack_app.command("down")
def stack_down(folder: StackDir = Path("data/stack")) -> None:
    """Stop every process of the stack."""
    from kfashion import stack

    stopped = stack.down(folder)
    sys.stdout.write(json.dumps({"stopped": stopped}) + "\n")


@stack_app.command("status")
def stack_status(folder: StackDir = Path("data/stack")) -> None:
    """Each process of the stack: pid, URL, alive."""
    from kfashion import stack

    sys.stdout.write(json.dumps(stack.status(folder)) + "\n")
