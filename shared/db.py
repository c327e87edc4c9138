"""The relational database: engines (SQLite by default, PostgreSQL in production) and schema migrations.

The schema is created and upgraded only by Alembic migrations (shared/migrations), when a service or a
command first opens the database; tables are declared once, in shared/schema.py.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Table, and_, bindparam, create_engine, delete, event, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def database_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the worker's writes
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


MIGRATION_LOCK = 0x6B66_6173  # "kfas": the PostgreSQL advisory lock key of schema migrations


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """One migration at a time across processes (a gateway and a search service starting together):
    a PostgreSQL advisory lock, or an exclusive lock on a file beside the SQLite database."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database's schema to `revision` (the latest by default); a no-op when it is there."""
    with migration_lock(engine):
        command.upgrade(alembic_config(engine), revision)


def row_count(engine: Engine, table: Table) -> int:
    """How many rows the table holds (its schema brought up to date first)."""
    migrate(engine)
    with engine.connect() as db:
        return db.execute(select(func.count()).select_from(table)).scalar_one()


def add_to_counts(db: Connection, table: Table, count: str, changes: dict[tuple, int]) -> None:
    """Add to the `count` column of the rows keyed by `changes`' keys (the table's primary key columns, in
    order), creating rows first counted and forgetting those that fall to 0. Rows are written in key order,
    so that concurrent writers lock them in one order (no deadlock on PostgreSQL)."""
    names = [column.name for column in table.primary_key.columns]
    grown = [dict(zip(names, key, strict=True)) | {count: n} for key, n in sorted(changes.items()) if n > 0]
    shrunk = [{f"_{k}": v for k, v in zip(names, key, strict=True)} | {"_change": n}
              for key, n in sorted(changes.items()) if n < 0]  # fmt: skip
    if grown:
        insert = postgresql_insert if db.dialect.name == "postgresql" else sqlite_insert
        statement = insert(table)
        db.execute(
            statement.on_conflict_do_update(
                index_elements=list(table.primary_key.columns),
                set_={count: table.c[count] + statement.excluded[count]},
            ),
            grown,
        )
    if shrunk:
        row = and_(*(table.c[name] == bindparam(f"_{name}") for name in names))
        db.execute(update(table).where(row).values({count: table.c[count] + bindparam("_change")}), shrunk)
        db.execute(
            delete(table).where(row, table.c[count] <= 0),
            [{k: v for k, v in one.items() if k != "_change"} for one in shrunk],
        )
