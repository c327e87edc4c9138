"""The catalog: images (stored once by content hash) and their items.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_images",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("file_name", sa.String(1024), nullable=False),
        sa.Column("blob_key", sa.String(256), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("style", sa.String(32)),
        sa.Column("sub_style", sa.String(32)),
        sa.Column("styles", sa.JSON, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("versions", sa.JSON, nullable=False),
    )
    op.create_index("ix_catalog_images_created", "catalog_images", ["created"])
    op.create_table(
        "catalog_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "image_id", sa.Integer, sa.ForeignKey("catalog_images.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("box", sa.JSON, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("category", sa.String(32)),
        sa.Column("color", sa.String(32)),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
    )
    for column in ("image_id", "category", "color"):
        op.create_index(f"ix_catalog_items_{column}", "catalog_items", [column])


def downgrade() -> None:
    op.drop_table("catalog_items")
    op.drop_table("catalog_images")
