"""Catalog ids are never reused: SQLite's AUTOINCREMENT on the catalog tables.

Without it SQLite hands the id of a deleted last row to the next insert, so a re-tagged or deleted-and-added
image could get its predecessor's item ids: a saved index would look current while holding other vectors,
and a collection entry would point at another garment. PostgreSQL's sequences never reuse ids already.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("catalog_images", "catalog_items")


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(False)
