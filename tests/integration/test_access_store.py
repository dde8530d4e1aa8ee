"""Namespaces, tokens and the audit trail in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from herder.model.errors import Conflict, NameTaken, NotFound
from herder.model.jobs import JobSpec
from herder.model.runs import RunStatus, Trigger
from herder.model.tokens import Role, digest
from herder.store import audit as audit_store
from herder.store import jobs as job_store
from herder.store import namespaces as namespace_store
from herder.store import runs as run_store
from herder.store import tokens as token_store
from herder.store.database import Database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_default_exists_and_namespaces_are_rows(db: Database) -> None:
    assert db.read_sync(namespace_store.exists, "default")
    db.write_sync(namespace_store.create, "ops", NOW)
    with pytest.raises(NameTaken):
        db.write_sync(namespace_store.create, "ops", NOW)
    with pytest.raises(NotFound, match="herder namespace create data"):
        db.write_sync(namespace_store.ensure, "data", NOW, create_missing=False)
    db.write_sync(namespace_store.ensure, "data", NOW, create_missing=True)
    names = db.read_sync(namespace_store.search, readable=None, after=None, limit=10)
    assert [n["name"] for n in names] == ["data", "default", "ops"]
    mine = db.read_sync(namespace_store.search, readable=frozenset({"ops"}), after=None, limit=10)
    assert [n["name"] for n in mine] == ["ops"]
    assert db.read_sync(namespace_store.search, readable=None, after="default", limit=10)[0][
        "name"] == "ops"


def _job_and_run(db: Database, namespace: str, status: RunStatus) -> int:
    spec = JobSpec(name="j", namespace=namespace, command="true")
    job = db.write_sync(job_store.create, spec, NOW)
    new = run_store.NewRun(job=job, params={}, env={}, trigger=Trigger.API, now=NOW,
                           status=status)
    return db.write_sync(run_store.create_many, [new])[0].id


def test_deleting_a_namespace(db: Database) -> None:
    db.write_sync(namespace_store.create, "ops", NOW)
    run_id = _job_and_run(db, "ops", RunStatus.SUCCESS)
    db.write_sync(token_store.create, name="t", namespace="ops", role=Role.VIEWER,
                  secret_hash=digest("s"), now=NOW, created_by="test")
    assert db.read_sync(namespace_store.holdings, "ops") == {"runs": 1, "jobs": 1, "tokens": 1}
    with pytest.raises(Conflict, match="jobs: 1"):
        db.write_sync(namespace_store.delete, "ops", force=False)
    gone = db.write_sync(namespace_store.delete, "ops", force=True)
    assert [r.id for r in gone] == [run_id]
    assert not db.read_sync(namespace_store.exists, "ops")
    assert db.read_sync(token_store.search, readable=None, before_id=None, limit=10) == []
    with pytest.raises(Conflict, match="always exists"):
        db.write_sync(namespace_store.delete, "default", force=True)
    with pytest.raises(NotFound):
        db.write_sync(namespace_store.delete, "nowhere", force=True)


def test_active_runs_keep_their_namespace(db: Database) -> None:
    db.write_sync(namespace_store.create, "busy", NOW)
    _job_and_run(db, "busy", RunStatus.READY)
    with pytest.raises(Conflict, match="active run"):
        db.write_sync(namespace_store.delete, "busy", force=True)
    assert db.read_sync(namespace_store.exists, "busy")


def test_tokens(db: Database) -> None:
    assert not db.read_sync(token_store.any_exist)
    assert not db.read_sync(token_store.admin_exists, NOW)
    admin = db.write_sync(token_store.create, name="root", namespace="*", role=Role.ADMIN,
                          secret_hash=digest("s"), now=NOW, created_by="test",
                          expires_at=NOW + timedelta(days=1))
    viewer = db.write_sync(token_store.create, name="v", namespace="ops", role=Role.VIEWER,
                           secret_hash=digest("t"), now=NOW, created_by="root")
    assert db.read_sync(token_store.any_exist)
    assert db.read_sync(token_store.admin_exists, NOW)
    assert not db.read_sync(token_store.admin_exists, NOW + timedelta(days=2))  # expired
    found = db.read_sync(token_store.get, viewer.id)
    assert found == viewer and found.secret_hash == digest("t")
    listed = db.read_sync(token_store.search, readable=None, before_id=None, limit=10)
    assert [t.id for t in listed] == [viewer.id, admin.id]
    ops = db.read_sync(token_store.search, readable=frozenset({"ops"}), before_id=None, limit=10)
    assert [t.id for t in ops] == [viewer.id]
    db.write_sync(token_store.touch, viewer.id, NOW)
    assert db.read_sync(token_store.get, viewer.id).last_used_at == NOW
    revoked = db.write_sync(token_store.revoke, admin.id, NOW)
    assert revoked.revoked_at == NOW
    assert db.write_sync(token_store.revoke, admin.id, NOW + timedelta(1)).revoked_at == NOW
    assert not db.read_sync(token_store.admin_exists, NOW)
    assert db.read_sync(token_store.any_exist)  # revoked ones count: authentication stays on
    with pytest.raises(NotFound, match="no token with id 999"):
        db.read_sync(token_store.get, 999)


def _entry(at: datetime, **fields: object) -> dict[str, object]:
    return {"at": at, "actor": "root", "token_id": None, "action": "job.create",
            "method": "POST", "path": "/api/v1/jobs", "namespace": "ops", "object": "ops/j",
            "client": "127.0.0.1", "status": 201, **fields}


def test_the_audit_trail(db: Database) -> None:
    db.write_sync(audit_store.record, [
        _entry(NOW),
        _entry(NOW + timedelta(seconds=1), actor="ci", action="run.cancel", status=403),
        _entry(NOW + timedelta(seconds=2), namespace="data", action="job.delete"),
        _entry(NOW + timedelta(seconds=3), namespace=None, action="namespace.create"),
    ])
    every = db.read_sync(audit_store.search, scope=None)
    assert [e["action"] for e in every] == ["namespace.create", "job.delete", "run.cancel",
                                            "job.create"]
    assert every[0]["at"] == NOW + timedelta(seconds=3)
    ops = db.read_sync(audit_store.search, scope=frozenset({"ops"}))
    assert [e["action"] for e in ops] == ["run.cancel", "job.create"]
    assert [e["status"] for e in db.read_sync(audit_store.search, scope=None, actor="ci")] == [403]
    jobs = db.read_sync(audit_store.search, scope=None, action="job.*")
    assert [e["action"] for e in jobs] == ["job.delete", "job.create"]
    assert db.read_sync(audit_store.search, scope=None, action="job%") == []
    window = db.read_sync(audit_store.search, scope=None, since=NOW + timedelta(seconds=1),
                          until=NOW + timedelta(seconds=3))
    assert [e["action"] for e in window] == ["job.delete", "run.cancel"]
    page = db.read_sync(audit_store.search, scope=None, limit=2)
    rest = db.read_sync(audit_store.search, scope=None, before_id=page[-1]["id"])
    assert [e["id"] for e in page + rest] == [e["id"] for e in every]


def test_lists_keep_to_readable_namespaces(db: Database) -> None:
    _job_and_run(db, "ops", RunStatus.SUCCESS)
    _job_and_run(db, "data", RunStatus.SUCCESS)
    ops = frozenset({"ops"})
    assert [j.spec.namespace for j in db.read_sync(job_store.search, readable=ops)] == ["ops"]
    assert [r.namespace for r in db.read_sync(run_store.search, readable=ops)] == ["ops"]
    assert db.read_sync(run_store.search, readable=frozenset()) == []
    assert len(db.read_sync(run_store.search, readable=None)) == 2
