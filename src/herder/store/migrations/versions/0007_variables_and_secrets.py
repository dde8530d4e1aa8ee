"""variables and secrets: named values for templates, per namespace or global (``*``)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def _create(table: str, *columns: sa.Column[object]) -> None:
    op.create_table(
        table,
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        *columns,
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.UniqueConstraint("namespace", "name", name=f"uq_{table}_namespace_name"),
    )


def upgrade() -> None:
    _create("variables", sa.Column("value", sa.Text(), nullable=False))
    _create(
        "secrets",
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("secrets")
    op.drop_table("variables")
