"""Lock specs and the grant rule: parsing, bad cases, and no deadlock, no overbooking, no
starvation under random contention."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herder.model.errors import InvalidSpec
from herder.model.jobs import JobSpec
from herder.model.locks import LockUse, Waiter, grantable, parse_locks, uses_of, waiting_reason


def test_names_are_mutexes_and_mappings_semaphores() -> None:
    assert parse_locks(["db", {"name": "pool", "slots": 3}, {"name": "x"}]) == (
        LockUse(name="db"), LockUse(name="pool", slots=3), LockUse(name="x"),
    )
    assert parse_locks(None) == ()
    assert parse_locks(["db", {"name": "db", "slots": 1}]) == (LockUse(name="db"),)


def test_a_spec_keeps_its_locks_through_the_store_form() -> None:
    spec = JobSpec(name="j", command="true", locks=parse_locks(["db", {"name": "p", "slots": 2}]))
    stored = spec.to_dict()
    assert stored["locks"] == [{"name": "db", "slots": 1}, {"name": "p", "slots": 2}]
    assert JobSpec.from_dict(stored) == spec
    assert uses_of(stored) == spec.locks
    assert uses_of({}) == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("db", "a list"),
        ([""], "must not be empty"),
        (["DB"], "not a valid name"),
        (["a" * 64], "at most 63"),
        ([7], "a name or {name, slots}"),
        ([{"slots": 2}], "needs a name"),
        ([{"name": "db", "slots": 0}], "from 1 to"),
        ([{"name": "db", "slots": True}], "whole number"),
        ([{"name": "db", "slots": "2"}], "whole number"),
        ([{"name": "db", "slots": 10_001}], "from 1 to"),
        ([{"name": "db", "mode": "x"}], "unknown key 'mode'"),
        (["db", {"name": "db", "slots": 2}], "named twice, with 1 and 2 slots"),
        ([f"l{i}" for i in range(33)], "at most 32"),
        (["../etc"], "not a valid name"),
    ],
)
def test_bad_lock_specs_are_refused_with_the_reason(value: Any, message: str) -> None:
    with pytest.raises(InvalidSpec, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_locks(value)


def test_manifests_normalize_locks_as_the_server_does() -> None:
    from herder.cli.apply import to_manifest
    from herder.cli.manifests import normalize_job

    locks = ["db", {"name": "p", "slots": 2}]
    job = normalize_job({"name": "j", "command": "true", "locks": locks})
    assert job["locks"] == [{"name": "db", "slots": 1}, {"name": "p", "slots": 2}]
    assert to_manifest(job)["spec"]["locks"] == job["locks"]
    assert "locks" not in to_manifest(normalize_job({"name": "j", "command": "true"}))["spec"]


def test_strict_order_for_a_mutex() -> None:
    waiters = [Waiter(run_id=1, locks=frozenset("ab")), Waiter(run_id=2, locks=frozenset("b"))]
    # b is free, but run 1 is ahead of run 2 for it, and run 1 cannot have a: nobody goes.
    assert grantable(waiters, {"a": 1, "b": 1}, {"a": 1}) == []
    assert grantable(waiters, {"a": 1, "b": 1}, {}) == [1]


def test_a_semaphore_lets_in_as_many_as_it_has_free_slots() -> None:
    waiters = [Waiter(run_id=i, locks=frozenset("p")) for i in range(5)]
    assert grantable(waiters, {"p": 3}, {"p": 1}) == [0, 1]
    assert grantable(waiters, {"p": 3}, {"p": 4}) == []  # slots lowered under its holders


def test_a_younger_run_may_use_slots_an_older_one_leaves_free() -> None:
    waiters = [Waiter(run_id=1, locks=frozenset("ab")), Waiter(run_id=2, locks=frozenset("a"))]
    # a has two free slots: run 1 (waiting for b) keeps one, run 2 takes the other.
    assert grantable(waiters, {"a": 2, "b": 1}, {"b": 1}) == [2]


def test_the_reason_names_what_is_in_the_way() -> None:
    assert waiting_reason([("db", [812], 0)]) == "waiting for lock db (held by run 812)"
    assert waiting_reason([("p", [1, 2], 3), ("q", [], 1)]) == (
        "waiting for lock p (held by runs 1, 2; 3 waiting ahead), lock q (free; 1 waiting ahead)"
    )
    assert "and 2 more" in waiting_reason([("p", list(range(7)), 0)])


lock_sets = st.lists(
    st.frozensets(st.sampled_from("abcd"), min_size=1, max_size=3), min_size=1, max_size=40
)


@settings(max_examples=200, deadline=None)
@given(sets=lock_sets, slots=st.dictionaries(st.sampled_from("abcd"), st.integers(1, 3)),
       seed=st.integers(0, 2**32))
def test_random_contention_ends_with_everyone_served(
    sets: list[frozenset[str]], slots: dict[str, int], seed: int
) -> None:
    """Runs arrive, are granted by the rule and end in random order: holders never exceed
    slots, the oldest waiter is never overtaken on a lock it waits for, and all get served."""
    rng = random.Random(seed)
    capacity = {name: slots.get(name, 1) for name in "abcd"}
    pending = list(enumerate(sets))
    waiting: dict[int, frozenset[str]] = {}
    holding: dict[int, frozenset[str]] = {}
    served = 0
    while pending or waiting or holding:
        if pending and (not holding or rng.random() < 0.5):
            run_id, wanted = pending.pop(0)
            waiting[run_id] = wanted
        elif holding:
            del holding[rng.choice(sorted(holding))]
        held = {name: sum(name in s for s in holding.values()) for name in capacity}
        queue = [Waiter(run_id=r, locks=s) for r, s in sorted(waiting.items())]
        granted = grantable(queue, capacity, held)
        if waiting and not holding:
            assert granted, "nothing held, someone waits, nobody granted: a deadlock"
        if waiting and min(waiting) not in granted:
            # Younger runs take a lock the oldest waits for only if a slot stays free for it.
            oldest = waiting[min(waiting)]
            for name in oldest:
                taken = sum(name in waiting[g] for g in granted)
                assert not taken or held[name] + taken < capacity[name]
        for run_id in granted:
            holding[run_id] = waiting.pop(run_id)
            served += 1
        for name, limit in capacity.items():
            assert sum(name in s for s in holding.values()) <= limit
    assert served == len(sets)
