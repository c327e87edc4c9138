"""The recommender's co-occurrence counts in the database (issue 37): the catalog-wide state each search
replica counted from every item. Existing catalogs are counted when the search service opens them
(CatalogStore.derive_missing).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_look_values",
        sa.Column("region", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(64), primary_key=True),
        sa.Column("images", sa.Integer, nullable=False),
    )
    op.create_table(
        "catalog_look_pairs",
        sa.Column("region", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(64), primary_key=True),
        sa.Column("other_region", sa.String(16), primary_key=True),
        sa.Column("other_value", sa.String(64), primary_key=True),
        sa.Column("images", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("catalog_look_pairs")
    op.drop_table("catalog_look_values")
