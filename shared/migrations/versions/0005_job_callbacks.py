"""Job callbacks: where to POST a tagging job when it is done, and how the delivery went.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tagging_jobs") as table:
        table.add_column(sa.Column("callback_url", sa.String(2048)))
        table.add_column(sa.Column("callback_status", sa.String(16)))
        table.add_column(sa.Column("callback_detail", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("tagging_jobs") as table:
        table.drop_column("callback_detail")
        table.drop_column("callback_status")
        table.drop_column("callback_url")
