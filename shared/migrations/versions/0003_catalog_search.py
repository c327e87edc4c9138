"""Catalog search: capture dates (for trends) and saved collections of results.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("catalog_images", sa.Column("captured", sa.DateTime))
    op.create_index("ix_catalog_images_captured", "catalog_images", ["captured"])
    op.create_table(
        "collections",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("description", sa.String(1024), nullable=False, server_default=""),
    )
    op.create_table(
        "collection_entries",
        sa.Column(
            "collection",
            sa.String(128),
            sa.ForeignKey("collections.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "image_id",
            sa.Integer,
            sa.ForeignKey("catalog_images.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("item_id", sa.Integer, primary_key=True, server_default="0"),
        sa.Column("score", sa.Float),
        sa.Column("note", sa.String(1024), nullable=False, server_default=""),
        sa.Column("added", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("collection_entries")
    op.drop_table("collections")
    op.drop_index("ix_catalog_images_captured", "catalog_images")
    op.drop_column("catalog_images", "captured")
