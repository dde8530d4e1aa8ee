"""The run state machine: one enum, one transition table, one function that checks it.

Codes are rego's, kept exactly (READY 100 … SUCCESS 500); the states of the other seeds are
mapped in (ASCOB's WAITING_LOCKS and IN_DOUBT, rnr's ACTION_PENDING and SKIPPED). A code of
400 or more is terminal, and a terminal status never changes again: a retry is a new run.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from herder.model.errors import InvalidTransition


class RunStatus(enum.StrEnum):
    """What the database stores is the name; ``code`` is rego's number beside it."""

    READY = "READY"
    WAITING = "WAITING"
    ACTION_PENDING = "ACTION_PENDING"
    JOB_DEPLOYED = "JOB_DEPLOYED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    IN_DOUBT = "IN_DOUBT"
    TIMEOUT = "TIMEOUT"
    PROC_ERROR = "PROC_ERROR"
    APP_ERROR = "APP_ERROR"
    ABORTED = "ABORTED"
    SKIPPED = "SKIPPED"
    SUCCESS = "SUCCESS"

    @property
    def code(self) -> int:
        return CODES[self]

    @property
    def terminal(self) -> bool:
        return CODES[self] >= 400

    @classmethod
    def parse(cls, text: str) -> RunStatus:
        """Accept a name (any case) or a numeric code, as users type either."""
        key = text.strip().upper()
        if key.isdigit():
            for status, code in CODES.items():
                if code == int(key):
                    return status
        elif key in cls.__members__:
            return cls[key]
        names = ", ".join(s.value for s in cls)
        raise ValueError(f"unknown run status {text[:40]!r}; expected one of {names}")


CODES: dict[RunStatus, int] = {
    RunStatus.READY: 100,
    RunStatus.WAITING: 150,
    RunStatus.ACTION_PENDING: 180,
    RunStatus.JOB_DEPLOYED: 200,
    RunStatus.PENDING: 250,
    RunStatus.RUNNING: 300,
    RunStatus.IN_DOUBT: 350,
    RunStatus.TIMEOUT: 400,
    RunStatus.PROC_ERROR: 410,
    RunStatus.APP_ERROR: 420,
    RunStatus.ABORTED: 430,
    RunStatus.SKIPPED: 450,
    RunStatus.SUCCESS: 500,
}

TERMINAL: frozenset[RunStatus] = frozenset(s for s in RunStatus if s.terminal)
ACTIVE: frozenset[RunStatus] = frozenset(s for s in RunStatus if not s.terminal)
# Handed to a backend: a process (or pod, or remote job) may exist for these.
LAUNCHED: frozenset[RunStatus] = frozenset(
    {RunStatus.JOB_DEPLOYED, RunStatus.PENDING, RunStatus.RUNNING, RunStatus.IN_DOUBT}
)
_ENDED_BY_BACKEND = frozenset(
    {RunStatus.TIMEOUT, RunStatus.PROC_ERROR, RunStatus.APP_ERROR, RunStatus.ABORTED,
     RunStatus.SUCCESS}
)
_NOT_STARTED_END = frozenset({RunStatus.ABORTED, RunStatus.SKIPPED, RunStatus.PROC_ERROR})

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.READY: frozenset(
        {RunStatus.WAITING, RunStatus.ACTION_PENDING, RunStatus.JOB_DEPLOYED} | _NOT_STARTED_END
    ),
    RunStatus.WAITING: frozenset({RunStatus.READY, RunStatus.JOB_DEPLOYED} | _NOT_STARTED_END),
    # ACTION_PENDING -> WAITING: approved, then queued behind its job's active runs.
    # -> SUCCESS: a workflow's approval step, approved; -> TIMEOUT: nobody answered in time.
    RunStatus.ACTION_PENDING: frozenset(
        {RunStatus.READY, RunStatus.WAITING, RunStatus.SUCCESS, RunStatus.TIMEOUT}
        | _NOT_STARTED_END
    ),
    RunStatus.JOB_DEPLOYED: frozenset(
        {RunStatus.PENDING, RunStatus.RUNNING, RunStatus.IN_DOUBT} | _ENDED_BY_BACKEND
    ),
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.IN_DOUBT} | _ENDED_BY_BACKEND),
    RunStatus.RUNNING: frozenset({RunStatus.IN_DOUBT} | _ENDED_BY_BACKEND),
    # IN_DOUBT -> READY: claimed, but its backend confirms it never started it (the server died
    # between the claim and the start): it is dispatched again, never run twice.
    RunStatus.IN_DOUBT: frozenset(
        {RunStatus.READY, RunStatus.PENDING, RunStatus.RUNNING} | _ENDED_BY_BACKEND
    ),
    **{status: frozenset() for status in TERMINAL},
}

# The reverse table, used by the store's guarded UPDATE … WHERE status IN (allowed sources).
SOURCES: dict[RunStatus, frozenset[RunStatus]] = {
    target: frozenset(s for s, targets in TRANSITIONS.items() if target in targets)
    for target in RunStatus
}


def transition(current: RunStatus, target: RunStatus) -> RunStatus:
    """Return ``target`` if the machine allows ``current -> target``; raise otherwise."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(
            f"a run cannot go from {current.value} to {target.value}",
            details={"from": current.value, "to": target.value},
        )
    return target


class Trigger(enum.StrEnum):
    """Why a run exists."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    API = "api"
    RETRY = "retry"
    WORKFLOW = "workflow"
    EVENT = "event"
    CHAIN = "chain"


class StopReason(enum.StrEnum):
    """Why herder itself stopped a run; decides the terminal status once the process is gone."""

    TIMEOUT = "timeout"
    CANCEL = "cancel"


def outcome(
    *, exit_code: int | None, signal: int | None, stop_reason: StopReason | None
) -> RunStatus:
    """The terminal status of a run whose process has ended.

    A run herder asked to stop ends as what it was stopped for, whatever the process did on its
    way out (a script that traps SIGTERM and exits 0 was still cut short).
    """
    if stop_reason is StopReason.TIMEOUT:
        return RunStatus.TIMEOUT
    if stop_reason is StopReason.CANCEL:
        return RunStatus.ABORTED
    if exit_code == 0 and signal is None:
        return RunStatus.SUCCESS
    return RunStatus.APP_ERROR


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One execution of a job, as the store keeps it."""

    id: int
    job_id: int | None
    namespace: str
    job_name: str
    status: RunStatus
    trigger: Trigger
    attempt: int
    parent_id: int | None
    submitter: str | None
    params: dict[str, Any]
    env: dict[str, str]
    spec: dict[str, Any]
    backend: str
    node: str | None
    labels: dict[str, str]
    exit_code: int | None
    error: str | None
    scheduled_for: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deadline_at: datetime | None
    cancel_requested_at: datetime | None
    cancel_force: bool
    stop_reason: StopReason | None
    handle: dict[str, Any] | None
    owner: str | None
    owner_epoch: int | None = None
    upstream_run_id: int | None = None  # the run whose end started this one (a job chain)
    not_before: datetime | None = None  # not dispatched before (retry backoff, jitter)
    outputs: dict[str, Any] = field(default_factory=dict)  # published through $HERDER_OUTPUT
    outputs_error: str | None = None  # why the output file was not kept
    # A workflow's step run: its workflow run, step and foreach item (see store.tables).
    workflow_run_id: int | None = None
    step: str | None = None
    item: int = 0
    context: dict[str, Any] | None = None  # the step's template context, laid over the run's
    decided_by: str | None = None  # who approved or rejected it, when it waited for a person
    decided_at: datetime | None = None

    @property
    def job_ref(self) -> str:
        return f"{self.namespace}/{self.job_name}"
