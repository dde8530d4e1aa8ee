"""Alembic's environment: always online, on the engine herder hands over."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from herder.store.tables import metadata

# Any constant: on PostgreSQL, servers starting together migrate one after the other.
MIGRATION_LOCK = 0x6865726465720001

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": MIGRATION_LOCK})
        context.run_migrations()
