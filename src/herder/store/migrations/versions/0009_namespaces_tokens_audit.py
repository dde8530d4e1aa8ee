"""namespaces as rows, API tokens (hashes only), and the audit trail

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "namespaces",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_namespaces"),
    )
    # ``default``, and every namespace the jobs and runs already use: nothing becomes orphaned.
    op.execute(
        "INSERT INTO namespaces (name, created_at) "
        "SELECT name, CURRENT_TIMESTAMP FROM ("
        "SELECT 'default' AS name UNION SELECT namespace FROM jobs "
        "UNION SELECT namespace FROM runs) AS used"
    )
    op.create_table(
        "tokens",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("expires_at", Time, nullable=True),
        sa.Column("revoked_at", Time, nullable=True),
        sa.Column("last_used_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
    )
    op.create_index("ix_tokens_namespace", "tokens", ["namespace"])
    op.create_table(
        "audit",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("at", Time, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("token_id", BigId, nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=True),
        sa.Column("object", sa.String(255), nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit"),
    )
    op.create_index("ix_audit_actor_id", "audit", ["actor", "id"])
    op.create_index("ix_audit_action_id", "audit", ["action", "id"])
    op.create_index("ix_audit_namespace_id", "audit", ["namespace", "id"])
    op.create_index("ix_audit_at", "audit", ["at"])


def downgrade() -> None:
    op.drop_table("audit")
    op.drop_table("tokens")
    op.drop_table("namespaces")
