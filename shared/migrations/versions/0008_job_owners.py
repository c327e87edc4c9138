"""A job belongs to the API key that created it (an id derived from the key, never the key).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tagging_jobs") as table:
        table.add_column(sa.Column("owner", sa.String(64)))
        table.create_index("ix_tagging_jobs_owner", ["owner"])


def downgrade() -> None:
    with op.batch_alter_table("tagging_jobs") as table:
        table.drop_index("ix_tagging_jobs_owner")
        table.drop_column("owner")
