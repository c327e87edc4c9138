"""Tagging jobs: one row per job, one per image.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tagging_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
    )
    op.create_table(
        "tagging_job_items",
        sa.Column(
            "job_id", sa.String(32), sa.ForeignKey("tagging_jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("url", sa.String(2048)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("finished", sa.DateTime),
    )
    op.create_index("ix_tagging_job_items_status", "tagging_job_items", ["status"])


def downgrade() -> None:
    op.drop_index("ix_tagging_job_items_status", "tagging_job_items")
    op.drop_table("tagging_job_items")
    op.drop_table("tagging_jobs")
