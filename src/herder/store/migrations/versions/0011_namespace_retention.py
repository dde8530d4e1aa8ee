"""a namespace's retention: how long the ended runs of its jobs are kept, unless a job says

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("namespaces") as batch:
        batch.add_column(sa.Column("retention", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("namespaces") as batch:
        batch.drop_column("retention")
