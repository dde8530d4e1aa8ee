"""workflow runs: a workflow's runs, and their steps as runs

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workflow_runs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("workflow_id", BigId, nullable=True),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("workflow_name", sa.String(63), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("submitter", sa.String(255), nullable=True),
        sa.Column("scheduled_for", Time, nullable=True),
        sa.Column("parent_run_id", BigId, nullable=True),
        sa.Column("parent_step", sa.String(63), nullable=True),
        sa.Column("parent_item", sa.Integer(), nullable=False),
        sa.Column("parent_attempt", sa.Integer(), nullable=False),
        sa.Column("rerun_of", BigId, nullable=True),
        sa.Column("floors", JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.Column("finished_at", Time, nullable=True),
        sa.Column("paused_at", Time, nullable=True),
        sa.Column("cancel_requested_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_runs"),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], ondelete="SET NULL",
            name="fk_workflow_runs_workflow_id_workflows",
        ),
        sa.ForeignKeyConstraint(
            ["parent_run_id"], ["workflow_runs.id"], ondelete="CASCADE",
            name="fk_workflow_runs_parent_run_id_workflow_runs",
        ),
        sa.UniqueConstraint(
            "workflow_id", "scheduled_for", name="uq_workflow_runs_workflow_id_scheduled_for"
        ),
        sa.UniqueConstraint(
            "parent_run_id", "parent_step", "parent_item", "parent_attempt",
            name="uq_workflow_runs_parent",
        ),
    )
    op.create_index("ix_workflow_runs_workflow_id_id", "workflow_runs", ["workflow_id", "id"])
    op.create_index("ix_workflow_runs_namespace_id", "workflow_runs", ["namespace", "id"])
    op.create_index("ix_workflow_runs_status_id", "workflow_runs", ["status", "id"])
    # Columns and an index only: SQLite adds them in place, without rebuilding the runs table
    # (a rebuild would drop it, and with it the rows that cascade from it). So the step
    # runs' link to their workflow run is a plain column, not a foreign key.
    op.add_column("runs", sa.Column("workflow_run_id", BigId, nullable=True))
    op.add_column("runs", sa.Column("step", sa.String(63), nullable=True))
    op.add_column("runs", sa.Column("item", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("runs", sa.Column("context", JSON, nullable=True))
    op.add_column("runs", sa.Column("decided_by", sa.String(255), nullable=True))
    op.add_column("runs", sa.Column("decided_at", Time, nullable=True))
    op.create_index(
        "ix_runs_workflow_run_id_step_item_attempt", "runs",
        ["workflow_run_id", "step", "item", "attempt"], unique=True,
    )


def downgrade() -> None:
    op.drop_index("ix_runs_workflow_run_id_step_item_attempt", "runs")
    with op.batch_alter_table("runs") as batch:
        for column in ("decided_at", "decided_by", "context", "item", "step", "workflow_run_id"):
            batch.drop_column(column)
    op.drop_index("ix_workflow_runs_status_id", "workflow_runs")
    op.drop_index("ix_workflow_runs_namespace_id", "workflow_runs")
    op.drop_index("ix_workflow_runs_workflow_id_id", "workflow_runs")
    op.drop_table("workflow_runs")
