"""Catalog products: the shop's own product id and fields on each catalog image.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_images") as table:
        table.add_column(sa.Column("product_id", sa.String(128)))
        table.add_column(sa.Column("product", sa.JSON))
        table.create_index("ix_catalog_images_product_id", ["product_id"])


def downgrade() -> None:
    with op.batch_alter_table("catalog_images") as table:
        table.drop_index("ix_catalog_images_product_id")
        table.drop_column("product")
        table.drop_column("product_id")
