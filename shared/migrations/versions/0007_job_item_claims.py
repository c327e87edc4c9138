"""Job images claimed by one worker at a time: several gateway processes share the job rows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tagging_job_items") as table:
        table.add_column(sa.Column("claimed_by", sa.String(64)))
        table.add_column(sa.Column("claimed_until", sa.DateTime))


def downgrade() -> None:
    with op.batch_alter_table("tagging_job_items") as table:
        table.drop_column("claimed_until")
        table.drop_column("claimed_by")
