"""The relational databases tests run against: SQLite (a file) and the real PostgreSQL of these machines.

Each PostgreSQL test gets a schema of its own (dropped afterwards), so runs never see each other's tables.
PostgreSQL missing on a user's machine: those tests skip with the reason. Under CI (CI=true) they fail
instead, so a CI run can never pass without having exercised PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

POSTGRES_URL = os.environ.get("KFASHION_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def database_url(kind: str, folder: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'test.db'}"
    schema = f"kf_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    except sa.exc.OperationalError as exc:
        reason = f"PostgreSQL not reachable at {POSTGRES_URL}: {exc.orig}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must run the PostgreSQL tests)")
        pytest.skip(reason)

    def drop() -> None:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    request.addfinalizer(drop)
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
