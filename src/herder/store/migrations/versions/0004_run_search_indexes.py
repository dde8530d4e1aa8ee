"""run search indexes: a job's runs by name, and runs by status in a time range

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_namespace_job_name_id", "runs", ["namespace", "job_name", "id"])
    op.create_index("ix_runs_status_created_at", "runs", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_status_created_at", "runs")
    op.drop_index("ix_runs_namespace_job_name_id", "runs")
