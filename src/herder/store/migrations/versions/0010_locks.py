"""locks: the locks jobs declare, and the runs holding or waiting for them

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "locks",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("slots", sa.Integer, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_locks"),
        sa.UniqueConstraint("namespace", "name", name="uq_locks_namespace_name"),
    )
    op.create_table(
        "job_locks",
        sa.Column("job_id", BigId, nullable=False),
        sa.Column("lock_id", BigId, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "lock_id", name="pk_job_locks"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_locks_job_id_jobs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["lock_id"], ["locks.id"], name="fk_job_locks_lock_id_locks", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_job_locks_lock_id", "job_locks", ["lock_id"])
    op.create_table(
        "lock_claims",
        sa.Column("lock_id", BigId, nullable=False),
        sa.Column("run_id", BigId, nullable=False),
        sa.Column("requested_at", Time, nullable=False),
        sa.Column("granted_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("lock_id", "run_id", name="pk_lock_claims"),
        sa.ForeignKeyConstraint(
            ["lock_id"], ["locks.id"], name="fk_lock_claims_lock_id_locks", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_lock_claims_run_id_runs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_lock_claims_run_id", "lock_claims", ["run_id"])


def downgrade() -> None:
    op.drop_table("lock_claims")
    op.drop_table("job_locks")
    op.drop_table("locks")
