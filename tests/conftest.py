"""Shared fixtures: a fresh, migrated store per test, on SQLite and on PostgreSQL.

PostgreSQL tests need ``HERDER_TEST_DATABASE_URL`` (e.g. ``postgresql://postgres@127.0.0.1/test``).
Outside CI they are skipped with that reason when it is unset; in CI (``CI=true``) a missing URL
fails them instead, so they can never be skipped silently there.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from herder.store.database import Database, make_engine
from herder.store.migrate import upgrade

PG_URL = os.environ.get("HERDER_TEST_DATABASE_URL", "")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_admin_url(database: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{database}"


def require_postgres() -> str:
    if not PG_URL:
        if IN_CI:
            pytest.fail("HERDER_TEST_DATABASE_URL is not set in CI: PostgreSQL tests must run")
        pytest.skip("HERDER_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    return PG_URL


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "herder.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    require_postgres()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"herder_template_{worker}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(_pg_admin_url(name))
    upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database cloned from the migrated template."""
    template = request.getfixturevalue("postgres_template")
    name = f"herder_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield _pg_admin_url(name)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "herder.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """The same contract tests over both stores."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def db(store_url: str) -> Iterator[Database]:
    database = Database(store_url)
    yield database
    database.close()
