"""The relational databases tests run against: SQLite (a file) and the real PostgreSQL of these machines.

PostgreSQL missing on a user's machine: those tests skip with the reason. Under CI (CI=true) they fail
instead, so a CI run can never pass without having exercised PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

POSTGRES_URL = os.environ.get("KFASHION_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def database_url(kind: str, folder: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'test.db'}"
    try:
        with sa.create_engine(POSTGRES_URL).connect() as connection:
            connection.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        reason = f"PostgreSQL not reachable at {POSTGRES_URL}: {exc.orig}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must run the PostgreSQL tests)")
        pytest.skip(reason)
    return POSTGRES_URL
