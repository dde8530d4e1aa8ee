"""The migrations produce exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
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



@pytest.mark.postgres
def test_servers_starting_together_migrate_once(postgres_url: str) -> None:
    """Three processes migrate one empty database at once: the advisory lock lines them up."""
    import subprocess
    import sys

    empty = make_engine(postgres_url)
    with empty.begin() as conn:  # start from nothing: the fixture's copy is already migrated
        metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE alembic_version"))
    empty.dispose()
    code = ("import sys; from herder.store.database import make_engine; "
            "from herder.store.migrate import upgrade; upgrade(make_engine(sys.argv[1]))")
    starts = [subprocess.Popen([sys.executable, "-c", code, postgres_url],
                               stderr=subprocess.PIPE) for _ in range(3)]
    errors = [p.communicate(timeout=60)[1].decode() for p in starts]
    assert [p.returncode for p in starts] == [0, 0, 0], errors
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()
