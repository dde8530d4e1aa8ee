"""Variables and secrets in the store, on SQLite and PostgreSQL: scopes, the namespaced value
over the global one, and a secret column that holds ciphertext, never the value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from herder.model.errors import InvalidSpec, NameTaken, NotFound
from herder.model.jobs import JobSpec
from herder.model.templates import Refs
from herder.secret_keys import SecretKeys, new_key
from herder.store import jobs as job_store
from herder.store import variables as store
from herder.store.database import Database
from herder.store.tables import secrets

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
VALUE = "s3cret-value-42"


def _var(db: Database, namespace: str, name: str, value: str) -> None:
    db.write_sync(store.put, "variable", namespace, name, value, now=NOW)


def test_variables_by_scope(db: Database) -> None:
    _var(db, "*", "host", "global-host")
    _var(db, "ops", "host", "ops-host")
    _var(db, "*", "port", "5432")
    found, _ = db.read_sync(store.resolve, "ops", Refs(vars=frozenset({"host", "port", "nope"})))
    assert found == {"host": "ops-host", "port": "5432"}
    found, _ = db.read_sync(store.resolve, "dev", Refs(vars=frozenset({"host"})))
    assert found == {"host": "global-host"}
    assert db.read_sync(store.get, "variable", "ops", "host").value == "ops-host"
    listed = db.read_sync(store.search, "variable", namespace="*")
    assert [v.name for v in listed] == ["host", "port"]
    assert [v.ref for v in db.read_sync(store.search, "variable",
                                         readable=frozenset({"ops"}))] == ["ops/host"]


def test_create_put_delete(db: Database) -> None:
    db.write_sync(store.create, "variable", "default", "x", "1", now=NOW)
    with pytest.raises(NameTaken):
        db.write_sync(store.create, "variable", "default", "x", "2", now=NOW)
    _, created = db.write_sync(store.put, "variable", "default", "x", "3", now=NOW)
    assert not created and db.read_sync(store.get, "variable", "default", "x").value == "3"
    db.write_sync(store.delete, "variable", "default", "x")
    with pytest.raises(NotFound, match="no variable named 'x' in namespace 'default'"):
        db.read_sync(store.get, "variable", "default", "x")
    with pytest.raises(NotFound, match="globally"):
        db.write_sync(store.delete, "secret", "*", "x")


def test_a_secret_column_holds_ciphertext(db: Database) -> None:
    keys = SecretKeys(key=new_key())
    sealed = keys.encrypt("ops", "pw", VALUE)
    db.write_sync(store.create, "secret", "ops", "pw", sealed, key_id=keys.current_id, now=NOW)

    def raw(conn: sa.Connection) -> list[str]:
        return [str(v) for row in conn.execute(sa.select(secrets)) for v in row]

    stored = db.read_sync(raw)
    assert all(VALUE not in v for v in stored) and sealed in stored
    found = db.read_sync(store.get, "secret", "ops", "pw")
    assert found.value is None and found.key_id == keys.current_id
    _, opened = db.read_sync(store.resolve, "ops", Refs(secrets=frozenset({"pw"})))
    namespace, data = opened["pw"]
    assert keys.decrypt(namespace, "pw", data) == VALUE


def test_a_job_naming_undefined_values_is_refused(db: Database) -> None:
    spec = JobSpec(name="j", namespace="ops", command=["x", "{{ vars.a }}", "{{ secrets.b }}"])
    with pytest.raises(InvalidSpec, match="variable 'a' and secret 'b' not defined"):
        db.write_sync(job_store.create, spec, NOW)
    _var(db, "*", "a", "1")
    db.write_sync(store.create, "secret", "ops", "b", "v1.x.y", key_id="x", now=NOW)
    assert db.write_sync(job_store.create, spec, NOW).spec == spec
