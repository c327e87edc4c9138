"""Every table, declared once. Changes to them go with a migration in shared/migrations/versions."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Integer, MetaData, String, Table

metadata = MetaData()

tagging_jobs = Table(
    "tagging_jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created", DateTime, nullable=False),
    Column("options", JSON, nullable=False),
)
tagging_job_items = Table(
    "tagging_job_items",
    metadata,
    Column("job_id", String(32), ForeignKey("tagging_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", String(1024), nullable=False),
    Column("url", String(2048)),
    Column("status", String(16), nullable=False, index=True),  # pending, done, failed
    Column("result", JSON),
    Column("finished", DateTime),
)
