"""jobs and runs

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("namespace", "name", name="uq_jobs_namespace_name"),
    )
    op.create_table(
        "runs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("job_id", BigId, nullable=True),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("job_name", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("parent_id", BigId, nullable=True),
        sa.Column("submitter", sa.String(255), nullable=True),
        sa.Column("params", JSON, nullable=False),
        sa.Column("env", JSON, nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("node", sa.String(255), nullable=True),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("scheduled_for", Time, nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("started_at", Time, nullable=True),
        sa.Column("finished_at", Time, nullable=True),
        sa.Column("deadline_at", Time, nullable=True),
        sa.Column("cancel_requested_at", Time, nullable=True),
        sa.Column("cancel_force", sa.Boolean(), nullable=False),
        sa.Column("stop_reason", sa.String(16), nullable=True),
        sa.Column("handle", JSON, nullable=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_runs_job_id_jobs", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint(
            "job_id", "scheduled_for", "attempt", name="uq_runs_job_id_scheduled_for_attempt"
        ),
    )
    op.create_index("ix_runs_job_id_id", "runs", ["job_id", "id"])
    op.create_index("ix_runs_namespace_id", "runs", ["namespace", "id"])
    op.create_index("ix_runs_status_id", "runs", ["status", "id"])


def downgrade() -> None:
    op.drop_table("runs")
    op.drop_table("jobs")
