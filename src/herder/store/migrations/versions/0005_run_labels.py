"""run labels as rows, for label search; filled from the runs already kept

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Each store spells "one row per key of a JSON object" its own way.
_BACKFILL = {
    "sqlite": "INSERT INTO run_labels (key, value, run_id) "
    "SELECT j.key, j.value, runs.id FROM runs, json_each(runs.labels) AS j",
    "postgresql": "INSERT INTO run_labels (key, value, run_id) "
    "SELECT j.key, j.value, runs.id FROM runs, jsonb_each_text(runs.labels) AS j",
}


def upgrade() -> None:
    op.create_table(
        "run_labels",
        sa.Column("key", sa.String(320), nullable=False),
        sa.Column("value", sa.String(63), nullable=False),
        sa.Column("run_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_labels_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key", "value", "run_id", name="pk_run_labels"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_run_labels_run_id", "run_labels", ["run_id"])
    op.execute(_BACKFILL[op.get_bind().dialect.name])


def downgrade() -> None:
    op.drop_index("ix_run_labels_run_id", "run_labels")
    op.drop_table("run_labels")
