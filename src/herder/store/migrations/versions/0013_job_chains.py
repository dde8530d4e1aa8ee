"""job chains: which jobs follow which, and the run whose end started a chained run

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CHAINED = sa.text("trigger = 'chain'")


def upgrade() -> None:
    op.create_table(
        "job_chains",
        sa.Column("follower_id", BigId, nullable=False),
        sa.Column("upstream_id", BigId, nullable=False),
        sa.Column("condition", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("follower_id", "upstream_id", name="pk_job_chains"),
        sa.ForeignKeyConstraint(
            ["follower_id"], ["jobs.id"], ondelete="CASCADE",
            name="fk_job_chains_follower_id_jobs",
        ),
        sa.ForeignKeyConstraint(
            ["upstream_id"], ["jobs.id"], ondelete="CASCADE",
            name="fk_job_chains_upstream_id_jobs",
        ),
    )
    op.create_index("ix_job_chains_upstream_id", "job_chains", ["upstream_id"])
    # A column and an index: SQLite adds both without rebuilding the runs table.
    op.add_column("runs", sa.Column("upstream_run_id", BigId, nullable=True))
    op.create_index(
        "uq_runs_upstream_run_id_job_id", "runs", ["upstream_run_id", "job_id"], unique=True,
        sqlite_where=CHAINED, postgresql_where=CHAINED,
    )


def downgrade() -> None:
    op.drop_index("uq_runs_upstream_run_id_job_id", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("upstream_run_id")
    op.drop_index("ix_job_chains_upstream_id", table_name="job_chains")
    op.drop_table("job_chains")
