"""`kfashion serve` (the embedded server or one service) and `kfashion predict` (tag files here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from kfashion.commands.common import (
    check_paths,
    err,
    local_pipeline,
    settings_with,
    write_sheet,
)
from shared.errors import ApiError
from shared.imaging import decode_image
from shared.labels import record_view


def predict(
    images: Annotated[list[Path], typer.Argument(help="image files")],
    out: Annotated[Path | None, typer.Option(help="draw the results on a contact sheet (PNG/JPEG)")] = None,
    models_dir: Annotated[
        Path | None, typer.Option("--models", help="models folder (default: settings)")
    ] = None,
) -> None:
    """Tag images with the installed models, through the same pipeline as /tagging; prints one
    `labels show`-style JSON object per image."""
    import asyncio

    from gateway.clients import ImageInput
    from gateway.exports import result_record

    check_paths(images)
    settings = settings_with(models_dir=models_dir)
    pipeline = local_pipeline(settings)
    drawn = []
    for path in images:
        try:
            data = path.read_bytes()
            pixels = decode_image(data, settings.image, str(path)).pixels
        except ApiError as error:
            err.print(f"[red]{error.message}")
            continue
        result = asyncio.run(pipeline.tag(ImageInput(path.name, data, pixels)))
        record = result_record(result)
        sys.stdout.write(json.dumps(record_view(record, str(path)), ensure_ascii=False) + "\n")
        drawn.append((pixels, record))
    if out and drawn:
        write_sheet(drawn, out)


SERVICES = ("gateway", "detector", "attributes", "style", "search")


def serve(
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    service: Annotated[
        str | None,
        typer.Option(
            help="run one service: gateway, detector, attributes, style or search (default: all in one)"
        ),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="where jobs and results are stored")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models", help="models folder")] = None,
    detector_url: Annotated[str | None, typer.Option(help="gateway: the detector service's URL")] = None,
    attributes_url: Annotated[str | None, typer.Option(help="gateway: the attribute service's URL")] = None,
    style_url: Annotated[str | None, typer.Option(help="gateway: the style service's URL")] = None,
    search_url: Annotated[str | None, typer.Option(help="gateway: the search service's URL")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the API. Embedded by default: the gateway and every model service in this process. With
    --service, one service of a microservice deployment (the gateway then calls the others by URL)."""
    from shared.http_server import serve

    if service is not None and service not in SERVICES:
        err.print(f"[red]unknown service {service!r}; choose from {', '.join(SERVICES)}")
        raise typer.Exit(2)
    settings = settings_with(data_dir, models_dir)
    urls = {"detector": detector_url, "attributes": attributes_url, "style": style_url, "search": search_url}
    if any(urls.values()):
        settings.services = settings.services.model_copy(update={k: v for k, v in urls.items() if v})
    if service in (None, "gateway"):
        if service is None and (settings.services.remote or settings.services.search):
            err.print("[red]service URLs are set: run the gateway with --service gateway, or unset them")
            raise typer.Exit(2)
        if service == "gateway" and not settings.services.remote:
            err.print("[yellow]no service URLs: the gateway runs the models in-process (embedded)")
        if host not in ("127.0.0.1", "localhost", "::1") and not settings.gateway.api_keys:
            err.print(
                f"[yellow]listening on {host} with no API keys: anyone who reaches it can change the catalog"
                " (set KFASHION_GATEWAY__API_KEYS, docs/api.md)"
            )
        from gateway.app import create_app
    elif service == "search":
        from services.search.app import create_app
    else:
        from services.model_app import model_service_app

        serve(model_service_app(service, settings), host, port, log_level, settings.head_timeout_s)
        return
    serve(create_app(settings), host, port, log_level, settings.head_timeout_s)
