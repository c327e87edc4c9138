"""Alembic environment: runs migrations on the engine handed over by shared.db.migrate."""

from __future__ import annotations

from alembic import context

from shared.schema import metadata

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        # SQLite rebuilds a table to alter it (batch mode): with foreign keys enforced, dropping the old copy
        # would cascade-delete the rows that point at it. The pragma only works outside a transaction.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        with connection.begin():
            context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
            context.run_migrations()
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
