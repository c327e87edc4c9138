"""The text search's term statistics and postings in the database (issue 37): the catalog-wide state a
search replica read into memory from every item. Existing catalogs are indexed when the search service
opens them (CatalogText.index_missing).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_terms",
        sa.Column("term", sa.String(255), primary_key=True),
        sa.Column("documents", sa.Integer, nullable=False),
    )
    op.create_table(
        "catalog_text",
        sa.Column(
            "item_id",
            sa.Integer,
            sa.ForeignKey("catalog_items.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("term", sa.String(255), primary_key=True),
        sa.Column("tf", sa.Float, nullable=False),
    )
    op.create_index("ix_catalog_text_term", "catalog_text", ["term"])


def downgrade() -> None:
    op.drop_index("ix_catalog_text_term", "catalog_text")
    op.drop_table("catalog_text")
    op.drop_table("catalog_terms")
