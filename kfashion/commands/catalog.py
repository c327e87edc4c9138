"""`kfashion catalog add|retag|copy`: the search catalog from the command line."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from kfashion.commands.common import (
    check_paths,
    err,
    local_pipeline,
    progress_bar,
    settings_with,
)
from shared.errors import ApiError

catalog_app = typer.Typer(help="The search catalog: add images to it.", no_args_is_help=True)


@catalog_app.command("add")
def catalog_add(
    folder: Annotated[
        str, typer.Argument(help="a folder of images, a K-Fashion dataset tree, or a folder link (http)")
    ],
    data_dir: Annotated[Path | None, typer.Option(help="the server's data dir (default: settings)")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models", help="models folder")] = None,
    batch: Annotated[int, typer.Option(min=1, max=64, help="images tagged and stored per step")] = 8,
    limit: Annotated[int | None, typer.Option(min=1, help="stop after this many images")] = None,
    products: Annotated[
        Path | None,
        typer.Option(
            help="CSV of the shop's products: a `file` column (the image's path under FOLDER, or its name), "
            "`product_id`, and any other columns as the product's fields"
        ),
    ] = None,
) -> None:
    """Tag every image under FOLDER and add it to the catalog (each stored once, by content), through the
    same path as POST /catalog/images, with its product from --products. FOLDER may be a folder link, read
    as /tagging reads one (a web server's index page or an S3 listing); its host need not be in
    KFASHION_GATEWAY__URL_HOSTS, since whoever runs the command chose it. Run it while the server is
    stopped (it opens the same database and indexes), or post to a running server's /catalog/images
    instead."""
    import asyncio

    from gateway.catalog import add_folder, folder_images, product_groups
    from gateway.clients import SearchClient
    from services.search.products import read_products

    settings = settings_with(data_dir, models_dir)
    root = Path(folder)
    if not folder.startswith(("http://", "https://")) and not root.is_dir():
        err.print(f"[red]{folder} is not a folder or a folder link")
        raise typer.Exit(2)
    try:
        items = asyncio.run(folder_images(folder, settings, limit))
        groups = product_groups(items, root, read_products(products) if products else {})
    except ApiError as error:
        err.print(f"[red]{error.message}")
        raise typer.Exit(1) from error
    except ValueError as exc:  # the products file
        err.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    if not items:
        err.print(f"[yellow]no images under {folder}")
        raise typer.Exit(1)
    pipeline = local_pipeline(settings)
    search = SearchClient(settings)
    search.start()
    counts: Counter[str] = Counter()
    failures: list[str] = []

    async def run(on_results: Callable[[list[dict]], None]) -> None:
        try:
            await add_folder(pipeline, search, groups, root, batch, on_results)
        finally:
            await pipeline.close()
            await search.close()

    with progress_bar() as bar:
        task = bar.add_task("catalog add", total=len(items))

        def count(results: list[dict]) -> None:
            for result in results:
                counts[result["status"]] += 1
                if result["status"] == "failed":
                    failures.append(f"{result['file']}: {result['error']['message']}")
            bar.advance(task, len(results))

        asyncio.run(run(count))
    for failure in failures:
        err.print(f"[red]failed[/red] {failure}")
    summary = {"images": len(items), **{k: counts[k] for k in ("added", "exists", "failed")}}
    sys.stdout.write(json.dumps(summary) + "\n")
    if counts["failed"]:
        raise typer.Exit(1)


@catalog_app.command("retag")
def catalog_retag(
    data_dir: Annotated[Path | None, typer.Option(help="the server's data dir (default: settings)")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models", help="models folder")] = None,
    every: Annotated[bool, typer.Option("--all", help="every image, not only those of other models")] = False,
) -> None:
    """Tag the catalog's images again with the installed models (after a model upgrade): by default the
    images tagged by other model or taxonomy versions. Their items, styles and search vectors are replaced.
    Run it while the server is stopped, or call POST /catalog/images/{id}/retag on a running one."""
    import asyncio

    from gateway.catalog import catalog_image_ids, retag_image
    from gateway.clients import SearchClient

    settings = settings_with(data_dir, models_dir)
    pipeline = local_pipeline(settings)
    search = SearchClient(settings)
    search.start()
    failures: list[str] = []

    async def run() -> int:
        try:
            ids = await catalog_image_ids(search, stale_only=not every)
            with progress_bar() as bar:
                task = bar.add_task("catalog retag", total=len(ids))
                for image_id in ids:
                    try:
                        await retag_image(pipeline, search, image_id)
                    except ApiError as error:
                        failures.append(f"image {image_id}: {error.message}")
                    bar.advance(task)
            return len(ids)
        finally:
            await pipeline.close()
            await search.close()

    total = asyncio.run(run())
    for failure in failures:
        err.print(f"[red]failed[/red] {failure}")
    sys.stdout.write(
        json.dumps({"images": total, "retagged": total - len(failures), "failed": len(failures)}) + "\n"
    )
    if failures:
        raise typer.Exit(1)


@catalog_app.command("copy")
def catalog_copy(
    to: Annotated[
        Path,
        typer.Option(
            "--to",
            help="an env file (KEY=VALUE lines) of the target's settings: KFASHION_DATABASE,"
            " KFASHION_STORAGE__* (and KFASHION_DATA_DIR for a local one), as deploy/k8s/credentials.env",
        ),
    ],
    data_dir: Annotated[Path | None, typer.Option(help="the source's data dir (default: settings)")] = None,
) -> None:
    """Copy the catalog (images, items with their vectors, products, collections, the saved indexes) and
    the tagging jobs (results, inputs still waiting, callbacks) to another database and file store, such as
    from the embedded default's SQLite and local disk to PostgreSQL and S3, keeping every id and tagging
    nothing again. The target's settings come from the --to file alone, the source's from the environment
    as `kfashion serve` reads it. Run it while the servers are stopped; a copy stopped part-way is taken
    up where it stopped by running it again, and the target's worker tags the jobs' waiting images."""
    from gateway.jobs import copy_jobs
    from services.search.copy import CopyRefused, copy_catalog
    from shared.blobs import create_blob_store
    from shared.db import database_engine, row_count
    from shared.schema import catalog_images, tagging_jobs
    from shared.settings import settings_from_env_file

    check_paths([to])
    source = settings_with(data_dir)
    target = settings_from_env_file(to)
    if (target.database_url, target.storage, target.data_dir.resolve()) == (
        source.database_url,
        source.storage,
        source.data_dir.resolve(),
    ):
        err.print(f"[red]{to} names the source itself")
        raise typer.Exit(2)
    source_engine, target_engine = database_engine(source.database_url), database_engine(target.database_url)
    stores = (
        source_engine,
        create_blob_store(source.storage, source.data_dir),
        target_engine,
        create_blob_store(target.storage, target.data_dir),
    )
    with progress_bar() as bar:
        images = bar.add_task("catalog images", total=row_count(source_engine, catalog_images))
        jobs = bar.add_task("tagging jobs", total=row_count(source_engine, tagging_jobs))
        try:
            counts = copy_catalog(*stores, on_progress=lambda n: bar.advance(images, n))
        except CopyRefused as exc:
            err.print(f"[red]{exc}")
            raise typer.Exit(1) from exc
        counts["jobs"] = copy_jobs(*stores, on_progress=lambda n: bar.advance(jobs, n))
    sys.stdout.write(json.dumps(counts) + "\n")


@catalog_app.command("check")
def catalog_check(
    repair: Annotated[
        bool, typer.Option(help="delete stray files, remove images whose file is gone")
    ] = False,
    data_dir: Annotated[Path | None, typer.Option(help="the server's data dir (default: settings)")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models", help="models folder")] = None,
) -> None:
    """Find what is out of step between the database, the stored files and the search indexes: files no
    image refers to (a process killed while adding a photo), images whose file is missing, indexes that
    do not hold what the database does (rebuilt as the search service opens them). Prints a JSON report;
    exits 1 when something was found and not repaired. Run it with uploads stopped."""
    from services.search.app import catalog_search
    from shared.blobs import create_blob_store
    from shared.db import database_engine

    settings = settings_with(data_dir, models_dir)
    engine = database_engine(settings.database_url)
    search = catalog_search(settings, engine, create_blob_store(settings.storage, settings.data_dir))
    search.open()
    try:
        report = search.check(repair) | {"indexes_rebuilt_at_open": search.rebuilt}
    finally:
        search.close()
        engine.dispose()
    sys.stdout.write(json.dumps(report) + "\n")
    found = report["files_without_image"] or report["images_without_file"]
    if found and not repair:
        raise typer.Exit(1)
