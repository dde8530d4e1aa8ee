"""Concurrency and retry policies, and the job spec fields that carry them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herder.model.errors import InvalidSpec
from herder.model.jobs import JobSpec
from herder.model.policies import Retries, check_concurrency, check_max_active, parse_retries
from herder.model.runs import RunStatus
from herder.model.schedules import parse_misfire, parse_schedule


def test_retries_apply_to_failures_not_to_aborts_or_skips() -> None:
    retries = Retries(limit=2)
    for status in (RunStatus.TIMEOUT, RunStatus.APP_ERROR, RunStatus.PROC_ERROR):
        assert retries.wants(status, 1) and retries.wants(status, 2)
        assert not retries.wants(status, 3)  # the third attempt was the last
    for status in (RunStatus.ABORTED, RunStatus.SKIPPED, RunStatus.SUCCESS):
        assert not retries.wants(status, 1)


@given(
    backoff=st.floats(0, 3600), factor=st.floats(1, 10), cap=st.floats(0, 7200),
    jitter=st.floats(0, 1), retry=st.integers(1, 100), key=st.text(max_size=20),
)
def test_backoff_grows_is_capped_and_jitter_only_adds(
    backoff: float, factor: float, cap: float, jitter: float, retry: int, key: str
) -> None:
    cap = max(cap, backoff)
    retries = Retries(limit=100, backoff=backoff, factor=factor, max_backoff=cap, jitter=jitter)
    base = min(backoff * factor ** (retry - 1), cap)
    delay = retries.delay(retry, key)
    assert base <= delay <= base * (1 + jitter) + 1e-9
    assert delay == retries.delay(retry, key)  # the same answer after a restart


def test_retries_as_written_in_a_manifest() -> None:
    retries = parse_retries({"limit": 3, "backoff": "10s", "factor": 2, "max_backoff": "10m"})
    assert retries == Retries(limit=3, backoff=10.0, factor=2.0, max_backoff=600.0)
    assert parse_retries(retries.to_dict()) == retries
    assert parse_retries(2) == Retries(limit=2)
    assert parse_retries(None) is None and parse_retries({"limit": 0}) is None
    assert parse_retries({"limit": 1, "backoff": "1h"}).max_backoff == 3600  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"backoff": "10s"}, "'limit'"),
        ({"limit": -1}, "from 0 to 100"),
        ({"limit": 1000}, "from 0 to 100"),
        ({"limit": True}, "whole number"),
        ({"limit": 1, "factor": 0.5}, "factor"),
        ({"limit": 1, "factor": "2"}, "must be a number"),
        ({"limit": 1, "jitter": 2}, "fraction"),
        ({"limit": 1, "backoff": "1h", "max_backoff": "1m"}, "backoff <= max_backoff"),
        ({"limit": 1, "backoff": "soon"}, "not a duration"),
        ({"limit": 1, "tries": 3}, "unknown key 'tries'"),
        ("three", "mapping"),
    ],
)
def test_bad_retries_say_what_is_wrong(data: object, message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        parse_retries(data)


def test_concurrency_and_max_active_are_checked() -> None:
    assert check_concurrency("queue") == "queue"
    with pytest.raises(InvalidSpec, match="allow, forbid, replace, queue"):
        check_concurrency("serial")
    assert check_max_active(3) == 3
    for bad in (0, -1, 10_001, True, "2"):
        with pytest.raises(InvalidSpec, match="max_active"):
            check_max_active(bad)


def test_a_job_spec_keeps_its_schedule_and_policies_through_the_store_form() -> None:
    spec = JobSpec(
        name="backup",
        command="true",
        schedule=parse_schedule({"cron": "0 3 * * *", "timezone": "Europe/Rome", "jitter": "5m"}),
        misfire=parse_misfire({"policy": "run_all", "grace": "5m"}),
        concurrency="queue",
        max_active=2,
        retries=parse_retries({"limit": 3, "backoff": "30s"}),
    )
    stored = spec.to_dict()
    assert stored["schedule"] == {"cron": "0 3 * * *", "timezone": "Europe/Rome", "jitter": "5m"}
    assert stored["misfire"] == {"policy": "run_all", "grace": "5m"}
    assert JobSpec.from_dict(stored) == spec
    # Specs stored before schedules existed read back with the defaults.
    old = {k: v for k, v in stored.items()
           if k not in ("schedule", "misfire", "concurrency", "max_active", "retries")}
    plain = JobSpec.from_dict(old)
    assert plain.schedule is None and plain.concurrency == "allow" and plain.retries is None
