"""The workflows store, on SQLite and PostgreSQL: definitions kept, found, checked against
the jobs and workflows they refer to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herder.model.errors import Conflict, InvalidSpec, NameTaken, NotFound
from herder.model.jobs import JobSpec
from herder.model.workflows import WorkflowSpec, parse_workflow
from herder.store import jobs as job_store
from herder.store import workflows as store
from herder.store.database import Database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def spec(name: str = "etl", namespace: str = "data", **fields: Any) -> WorkflowSpec:
    fields.setdefault("steps", [{"name": "a", "command": "true"}])
    return parse_workflow({"name": name, "namespace": namespace, **fields})


def test_a_workflow_is_stored_and_found_by_each_ref(db: Database) -> None:
    made = db.write_sync(store.create, spec(labels={"team": "bi"}), NOW)
    for ref in (str(made.id), "data/etl"):
        found = db.read_sync(store.get, ref)
        assert found.spec == made.spec and found.id == made.id
    assert found.created_at == NOW
    with pytest.raises(NotFound, match="no workflow with name default/etl"):
        db.read_sync(store.get, "etl")
    with pytest.raises(NameTaken):
        db.write_sync(store.create, spec(), NOW)


def test_replace_creates_then_updates_and_keeps_an_unchanged_one(db: Database) -> None:
    first, created = db.write_sync(store.replace, spec(), NOW)
    assert created
    same, created = db.write_sync(store.replace, spec(), NOW + timedelta(seconds=5))
    assert not created and same.updated_at == NOW
    changed, _ = db.write_sync(
        store.replace, spec(parallelism=2), NOW + timedelta(seconds=9)
    )
    assert changed.id == first.id and changed.spec.parallelism == 2
    assert changed.updated_at == NOW + timedelta(seconds=9)


def test_search_by_namespace_label_text_and_pages(db: Database) -> None:
    for i in range(3):
        db.write_sync(store.create, spec(f"w{i}", labels={"n": str(i)}), NOW)
    db.write_sync(store.create, spec("other", "ops", description="the w one"), NOW)
    assert [w.spec.name for w in db.read_sync(store.search, namespace="data")] == [
        "w0", "w1", "w2"]
    assert [w.spec.name for w in db.read_sync(store.search, labels={"n": "1"})] == ["w1"]
    assert [w.spec.name for w in db.read_sync(store.search, q="w one")] == ["other"]
    page = db.read_sync(store.search, limit=2)
    rest = db.read_sync(store.search, after_id=page[-1].id)
    assert [w.spec.name for w in page + rest] == ["w0", "w1", "w2", "other"]
    assert db.read_sync(store.search, readable=frozenset({"ops"}))[0].spec.name == "other"
    assert db.read_sync(store.search, readable=frozenset()) == []


def test_a_step_running_a_missing_job_or_an_undeclared_param_is_refused(db: Database) -> None:
    wanted = spec(steps=[{"name": "x", "job": "extract", "params": {"region": "eu"}}])
    with pytest.raises(InvalidSpec, match=r"steps\[0\].job: no job data/extract"):
        db.write_sync(store.create, wanted, NOW)
    db.write_sync(job_store.create, JobSpec(name="extract", namespace="data", command="true"),
                  NOW)
    with pytest.raises(InvalidSpec, match="declares no param 'region'; it declares: none"):
        db.write_sync(store.create, wanted, NOW)
    db.write_sync(job_store.create, JobSpec(
        name="extract", namespace="ops", command="true", params={"region": "us"}), NOW)
    ok = spec(steps=[{"name": "x", "job": "ops/extract", "params": {"region": "eu"}}])
    assert db.write_sync(store.create, ok, NOW).spec.steps[0].job == "ops/extract"
    assert db.read_sync(store.search) != []


def test_nested_workflows_must_exist_and_never_contain_themselves(db: Database) -> None:
    nested = spec("outer", steps=[{"name": "n", "workflow": "inner"}])
    with pytest.raises(InvalidSpec, match=r"steps\[0\].workflow: no workflow data/inner"):
        db.write_sync(store.create, nested, NOW)
    db.write_sync(store.create, spec("inner"), NOW)
    db.write_sync(store.create, nested, NOW)
    loop = spec("inner", steps=[{"name": "back", "workflow": "outer"}])
    with pytest.raises(InvalidSpec, match="data/inner runs data/outer runs data/inner"):
        db.write_sync(store.replace, loop, NOW)
    itself = spec("self", steps=[{"name": "me", "workflow": "self"}])
    with pytest.raises(InvalidSpec, match="data/self runs data/self"):
        db.write_sync(store.create, itself, NOW)
    with pytest.raises(Conflict, match="is run as a step by workflow data/outer"):
        db.write_sync(store.delete, "data/inner")
    db.write_sync(store.delete, "data/outer")
    db.write_sync(store.delete, "data/inner")
    assert db.read_sync(store.search) == []


def test_a_schedule_gives_the_next_run_and_disabling_clears_it(db: Database) -> None:
    made = db.write_sync(store.create, spec(schedule={"every": "1h"}), NOW)
    assert made.next_run_at == NOW + timedelta(hours=1)
    paused = db.write_sync(store.update, made.id, spec(schedule={"every": "1h"}, enabled=False),
                           NOW)
    assert paused.next_run_at is None and paused.schedule_state["disabled_at"]
    with pytest.raises(InvalidSpec, match="the workflow would never run"):
        db.write_sync(store.create, spec("once", schedule={"at": "2020-01-01T00:00:00Z"}), NOW)


def test_what_the_caller_may_not_read_counts_as_missing(db: Database) -> None:
    db.write_sync(job_store.create, JobSpec(name="secret", namespace="ops", command="true"), NOW)
    db.write_sync(store.create, spec("hidden", "ops"), NOW)
    only_data = lambda namespace: namespace == "data"  # noqa: E731
    wanted = spec(steps=[{"name": "x", "job": "ops/secret"}])
    with pytest.raises(InvalidSpec, match=r"steps\[0\].job: no job ops/secret; create it first"):
        db.write_sync(store.create, wanted, NOW, only_data)
    nested = spec(steps=[{"name": "x", "workflow": "ops/hidden"}])
    with pytest.raises(InvalidSpec, match=r"steps\[0\].workflow: no workflow ops/hidden"):
        db.write_sync(store.create, nested, NOW, only_data)
    assert db.write_sync(store.create, wanted, NOW).spec.steps[0].job == "ops/secret"
