"""The run state machine: codes, the transition table, and the pure ``transition``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herder.model.errors import InvalidTransition
from herder.model.runs import (
    CODES,
    SOURCES,
    TERMINAL,
    TRANSITIONS,
    RunStatus,
    StopReason,
    outcome,
    transition,
)

REGO = {"READY": 100, "JOB_DEPLOYED": 200, "PENDING": 250, "RUNNING": 300, "TIMEOUT": 400,
        "PROC_ERROR": 410, "APP_ERROR": 420, "ABORTED": 430, "SUCCESS": 500}


def test_rego_codes_are_kept_exactly() -> None:
    for name, code in REGO.items():
        assert RunStatus[name].code == code


def test_terminal_means_code_400_or_more() -> None:
    assert {s for s in RunStatus if s.code >= 400} == TERMINAL
    assert all(s.terminal for s in TERMINAL)


@given(st.sampled_from(list(RunStatus)), st.sampled_from(list(RunStatus)))
def test_transition_follows_the_table(current: RunStatus, target: RunStatus) -> None:
    if target in TRANSITIONS[current]:
        assert transition(current, target) is target
        assert current in SOURCES[target]
    else:
        with pytest.raises(InvalidTransition) as info:
            transition(current, target)
        assert current.value in info.value.message and target.value in info.value.message


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_a_terminal_status_never_changes(status: RunStatus) -> None:
    assert TRANSITIONS[status] == frozenset()


def test_every_active_status_can_end() -> None:
    # No run can be stuck: from every non-terminal status some terminal one is reachable.
    for status in RunStatus:
        if not status.terminal:
            assert TRANSITIONS[status] & TERMINAL, status


@pytest.mark.parametrize(
    ("exit_code", "signal", "reason", "expected"),
    [
        (0, None, None, RunStatus.SUCCESS),
        (3, None, None, RunStatus.APP_ERROR),
        (137, 9, None, RunStatus.APP_ERROR),
        (0, None, StopReason.TIMEOUT, RunStatus.TIMEOUT),
        (143, 15, StopReason.CANCEL, RunStatus.ABORTED),
        (0, None, StopReason.CANCEL, RunStatus.ABORTED),
    ],
)
def test_outcome(
    exit_code: int, signal: int | None, reason: StopReason | None, expected: RunStatus
) -> None:
    assert outcome(exit_code=exit_code, signal=signal, stop_reason=reason) is expected


@pytest.mark.parametrize("text", ["success", "SUCCESS", "500", " running "])
def test_parse_accepts_names_and_codes(text: str) -> None:
    assert RunStatus.parse(text).code in CODES.values()


@pytest.mark.parametrize("text", ["", "nope", "999", "../etc"])
def test_parse_refuses_the_rest(text: str) -> None:
    with pytest.raises(ValueError, match="unknown run status"):
        RunStatus.parse(text)
