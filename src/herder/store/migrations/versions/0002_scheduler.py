"""scheduler: next slots, run fencing and backoff, server leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("next_run_at", Time, nullable=True))
        jobs.add_column(sa.Column("plan_at", Time, nullable=True))
        jobs.add_column(sa.Column("schedule_state", JSON, nullable=True))
        jobs.create_index("ix_jobs_plan_at", ["plan_at"])
    with op.batch_alter_table("runs") as runs:
        runs.add_column(sa.Column("owner_epoch", sa.Integer, nullable=True))
        runs.add_column(sa.Column("not_before", Time, nullable=True))
        runs.create_index("ix_runs_job_id_status", ["job_id", "status"])
    op.create_table(
        "servers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("data_dir", sa.Text, nullable=False),
        sa.Column("started_at", Time, nullable=False),
        sa.Column("heartbeat_at", Time, nullable=False),
        sa.Column("lease_until", Time, nullable=False),
        sa.Column("stopped_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_servers"),
    )


def downgrade() -> None:
    op.drop_table("servers")
    with op.batch_alter_table("runs") as runs:
        runs.drop_index("ix_runs_job_id_status")
        runs.drop_column("not_before")
        runs.drop_column("owner_epoch")
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_index("ix_jobs_plan_at")
        jobs.drop_column("plan_at")
        jobs.drop_column("schedule_state")
        jobs.drop_column("next_run_at")
