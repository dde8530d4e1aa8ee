"""The migrations produce exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from herder.store.database import make_engine
from herder.store.migrate import upgrade
from herder.store.tables import metadata


def test_migrations_match_the_tables(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        upgrade(engine)  # idempotent on an already migrated database
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_migrations_run_on_an_empty_database(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/empty.db")
    try:
        upgrade(engine)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()
