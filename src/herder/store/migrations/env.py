"""Alembic's environment: always online, on the engine herder hands over."""

from __future__ import annotations

from alembic import context

from herder.store.tables import metadata

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
