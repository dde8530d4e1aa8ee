"""Request and response bodies. Requests forbid unknown fields; each converts to the domain."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from herder.api.lock_schemas import RunLockOut, waiting_for
from herder.backends import base as backends
from herder.model import chains, locks, policies, schedules
from herder.model import jobs as rules
from herder.model.durations import parse_duration
from herder.model.errors import InvalidSpec
from herder.model.jobs import Job, JobSpec
from herder.model.runs import Run
from herder.store.lock_reads import RunLock

Scalar = str | int | float | bool
T = TypeVar("T")


def _check(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Turn the model's ``InvalidSpec`` into the ``ValueError`` pydantic reports per field."""
    try:
        return fn(*args, **kwargs)
    except InvalidSpec as exc:
        raise ValueError(exc.message) from None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobIn(Strict):
    """A job as the API and manifests take it: the spec with its name and namespace."""

    name: str = Field(description="DNS-label-like, unique in its namespace", max_length=200)
    namespace: str = Field(rules.DEFAULT_NAMESPACE, max_length=200)
    description: str = Field("", max_length=4096)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    command: list[str] | str | None = Field(
        description="an argv list (run as is) or a shell string (run by /bin/sh -c); "
        "required unless script is given"
    )
    script: dict[str, Any] | None = Field(
        None, description="{bundle: <id>, entrypoint: script.sh}: an uploaded bundle, unpacked "
        "in the run's working folder, instead of command"
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="values may be templates: {{ params.x }}, {{ vars.y }}, {{ secrets.z }}",
    )
    params: dict[str, Scalar] = Field(
        default_factory=dict,
        description="declared params and their defaults; a default may be a template naming "
        "vars and secrets (values given for one run are never rendered)",
    )
    backend: str = "local"
    timeout: str | float | None = Field(None, description="'90s', '1h' or seconds")
    enabled: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)
    schedule: dict[str, Any] | None = Field(
        None,
        description="{cron: '0 3 * * *', timezone: Europe/Rome} or {every: 30s} or "
        "{at: 2026-12-01T10:00:00Z}; optional jitter, start, end",
    )
    misfire: dict[str, Any] | None = Field(
        None, description="{policy: skip|run_once|run_all, grace: 60s}; default run_once, 60s"
    )
    concurrency: str = Field("allow", description="allow | forbid | replace | queue")
    max_active: int = Field(1, description="active runs at once under forbid, replace, queue")
    retries: dict[str, Any] | int | None = Field(
        None, description="{limit: 3, backoff: 10s, factor: 2, max_backoff: 10m, jitter: 0.1}"
    )
    retention: dict[str, Any] | None = Field(
        None, description="{max_age: 30d, max_runs: 1000}: ended runs and logs kept; default: "
        "the server's HERDER_RETENTION_* settings"
    )
    locks: list[str | dict[str, Any]] = Field(
        default_factory=list, description="locks its runs hold while they run: names (a "
        "mutex) or {name, slots} (a semaphore), in the job's namespace"
    )
    after: list[str | dict[str, Any]] = Field(
        default_factory=list, description="job chains: [{job, on}], run when a run of job "
        "(a name in this namespace, or namespace/name) ends: on success (the default; a bare "
        "name is short for it), failure or always"
    )

    @model_validator(mode="before")
    @classmethod
    def _script_instead(cls, data: Any) -> Any:
        # A script stands in for the command: then "command" may be left out.
        if isinstance(data, dict) and data.get("script") is not None and "command" not in data:
            return {**data, "command": None}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return str(_check(rules.check_name, v))

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        return str(_check(rules.check_name, v, what="namespace"))

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return dict(_check(rules.check_labels, v))

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, v: dict[str, str]) -> dict[str, str]:
        return dict(_check(rules.check_annotations, v))

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str] | str | None) -> list[str] | str | None:
        if v is None:
            return None
        checked: list[str] | str = _check(rules.check_command, v)
        return checked

    @field_validator("script")
    @classmethod
    def _script(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if v is None else dict(_check(rules.parse_script, v).to_dict())

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        return dict(_check(rules.check_env, v, allow_reserved=True))

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Scalar]) -> dict[str, Scalar]:
        return dict(_check(rules.check_params, v, templates_allowed=True))

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        return str(_check(backends.check_name, v))

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, v: object) -> float | None:
        if v is None:
            return None
        if not isinstance(v, str | int | float):
            raise ValueError("expected a duration such as '90s' or '1h'")
        return float(_check(parse_duration, v, field="timeout"))

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(v)) > rules.MAX_METADATA:
            raise ValueError("larger than 64 KiB")
        return v

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if v is None else _check(schedules.parse_schedule, v).to_dict()

    @field_validator("misfire")
    @classmethod
    def _misfire(cls, v: dict[str, Any] | None) -> dict[str, Any]:
        return dict(_check(schedules.parse_misfire, v).to_dict())

    @field_validator("concurrency")
    @classmethod
    def _concurrency(cls, v: str) -> str:
        return str(_check(policies.check_concurrency, v))

    @field_validator("max_active", mode="before")
    @classmethod
    def _max_active(cls, v: object) -> int:
        return int(_check(policies.check_max_active, v))

    @field_validator("retries")
    @classmethod
    def _retries(cls, v: dict[str, Any] | int | None) -> dict[str, Any] | None:
        retries = _check(policies.parse_retries, v)
        return None if retries is None else dict(retries.to_dict())

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return dict(_check(policies.parse_retention, v).to_dict()) or None

    @field_validator("locks", mode="before")
    @classmethod
    def _locks(cls, v: object) -> list[dict[str, Any]]:
        return [use.to_dict() for use in _check(locks.parse_locks, v)]

    @model_validator(mode="after")
    def _renders(self) -> JobIn:
        self.after = [f.to_dict() for f in _check(
            chains.parse_after, self.after, namespace=self.namespace, name=self.name
        )]
        if (self.command is None) == (self.script is None):
            raise ValueError(
                "command: give either a command or a script ({bundle: <id>}), not both"
                if self.script is not None else "command: a job needs a command (or a script)"
            )
        _check(rules.check_renders, self.to_spec())
        return self

    def to_spec(self) -> JobSpec:
        # Validated above: parsing again cannot fail, it turns the plain forms into the model's.
        plain = self.model_dump(
            exclude={"timeout", "schedule", "misfire", "retries", "retention", "script", "locks",
                     "after"}
        )
        return JobSpec(
            **plain,
            script=None if self.script is None else rules.parse_script(self.script),
            timeout=self.timeout if isinstance(self.timeout, float) else None,
            schedule=None if self.schedule is None else schedules.parse_schedule(self.schedule),
            misfire=schedules.parse_misfire(self.misfire),
            retries=policies.parse_retries(self.retries),
            retention=policies.parse_retention(self.retention),
            locks=locks.parse_locks(self.locks),
            after=chains.parse_after(self.after, namespace=self.namespace, name=self.name),
        )


class JobPatch(Strict):
    """Any subset of a job's fields; the result is validated as a whole."""

    name: str | None = None
    namespace: str | None = None
    description: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    command: list[str] | str | None = None
    script: dict[str, Any] | None = None
    env: dict[str, str] | None = None
    params: dict[str, Scalar] | None = None
    backend: str | None = None
    timeout: str | float | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    misfire: dict[str, Any] | None = None
    concurrency: str | None = None
    max_active: int | None = None
    retries: dict[str, Any] | int | None = None
    retention: dict[str, Any] | None = None
    locks: list[str | dict[str, Any]] | None = None
    after: list[str | dict[str, Any]] | None = None


class JobOut(BaseModel):
    id: int
    ref: str = Field(description="namespace/name")
    name: str
    namespace: str
    description: str
    labels: dict[str, str]
    annotations: dict[str, str]
    command: list[str] | str | None
    script: dict[str, Any] | None = None
    env: dict[str, str]
    params: dict[str, Scalar]
    backend: str
    timeout: float | None
    enabled: bool
    metadata: dict[str, Any]
    schedule: dict[str, Any] | None
    misfire: dict[str, Any]
    concurrency: str
    max_active: int
    retries: dict[str, Any] | None
    retention: dict[str, Any] | None = None
    locks: list[dict[str, Any]] = Field(default_factory=list)
    after: list[dict[str, Any]] = Field(
        default_factory=list, description="the jobs it follows (job chains): [{job, on}]"
    )
    created_at: datetime
    updated_at: datetime
    run_count: int
    next_run_at: datetime | None = Field(
        None, description="the next slot the schedule fires at (UTC); null when none is due"
    )

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id, ref=job.ref, created_at=job.created_at, updated_at=job.updated_at,
            run_count=job.run_count, next_run_at=rules.next_run(job, datetime.now(UTC)),
            **job.spec.to_dict(),
        )


class Follower(BaseModel):
    """A job that follows another (job chains)."""

    job: str = Field(description="namespace/name")
    on: str = Field(description="success | failure | always")


class SlotFate(BaseModel):
    slot: datetime = Field(description="the slot (UTC): the run's scheduled_for")
    local: datetime = Field(description="the slot in the schedule's time zone")
    fate: str = Field(description="ran | skipped | pending")
    run_id: int
    status: str
    reason: str | None = Field(description="why it was skipped, or how it was retried")
    dst: str | None = Field(description="how a DST change moved this slot, if it did")


class SlotPreview(BaseModel):
    slot: datetime
    local: datetime
    dst: str | None


class UnlistedSlots(BaseModel):
    after: str | None
    through: str
    reason: str | None


class ScheduleReport(BaseModel):
    """What became of a job's recent slots, and which come next."""

    job: str
    enabled: bool
    schedule: dict[str, Any] | None
    misfire: dict[str, Any]
    concurrency: str
    next_run_at: datetime | None
    recent: list[SlotFate] = Field(description="newest slot first")
    skipped_total: int = Field(description="slots skipped by the misfire policy, in all")
    unlisted: UnlistedSlots | None = Field(
        description="older skipped slots summed up after a long absence"
    )
    upcoming: list[SlotPreview]
    notes: list[str]


class RunNow(Strict):
    """Body of ``POST /jobs/{ref}/runs``: overrides for this run only."""

    params: dict[str, Scalar] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    manual_start: bool = Field(
        False, description="create the run ACTION_PENDING: it starts once approved "
        "(POST /runs/{id}/approve), so input files can be attached first"
    )
    submitter: str | None = Field(
        None, min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$",
        description="who the run is for; only an admin may name someone else",
    )


class CancelIn(Strict):
    force: bool = Field(False, description="kill at once instead of SIGTERM, grace, SIGKILL")


class RunOut(BaseModel):
    id: int
    job: str = Field(description="namespace/name")
    job_id: int | None
    namespace: str
    status: str
    status_code: int
    exit_code: int | None
    error: str | None
    trigger: str
    scheduled_for: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempt: int
    parent_id: int | None
    upstream_run: int | None = Field(
        None, description="a job chain's run: the run whose end started it (trigger chain; "
        "its retries keep it)"
    )
    submitter: str | None
    params: dict[str, Scalar]
    outputs: dict[str, Any] = Field(
        default_factory=dict, description="what the run published through $HERDER_OUTPUT"
    )
    outputs_error: str | None = Field(
        None, description="why its output file was not kept (outputs is then empty)"
    )
    backend: str
    node: str | None
    labels: dict[str, str]
    cancel_requested_at: datetime | None
    locks: list[RunLockOut] = Field(
        default_factory=list, description="the locks it holds or waits for, while it is active"
    )
    reason: str | None = Field(
        None, description="while WAITING, what for: e.g. 'waiting for lock db (held by run 812)'"
    )
    workflow_run: int | None = Field(None, description="the workflow run this run is a step of")
    step: str | None = Field(None, description="the workflow step it runs")
    item: int | None = Field(None, description="a foreach step's item (its index)")
    decided_by: str | None = Field(None, description="who approved, rejected or skipped it")
    decided_at: datetime | None = None

    @classmethod
    def of(cls, run: Run, held: list[RunLock] | None = None) -> RunOut:
        held = held or []
        return cls(
            locks=[RunLockOut.of(lock) for lock in held], reason=waiting_for(run, held),
            id=run.id, job=run.job_ref, job_id=run.job_id, namespace=run.namespace,
            status=run.status.value, status_code=run.status.code, exit_code=run.exit_code,
            error=run.error, trigger=run.trigger.value, scheduled_for=run.scheduled_for,
            created_at=run.created_at, started_at=run.started_at, finished_at=run.finished_at,
            attempt=run.attempt, parent_id=run.parent_id, submitter=run.submitter,
            upstream_run=run.upstream_run_id,
            params=run.params, outputs=run.outputs, outputs_error=run.outputs_error,
            backend=run.backend, node=run.node, labels=run.labels,
            cancel_requested_at=run.cancel_requested_at,
            workflow_run=run.workflow_run_id, step=run.step,
            item=run.item if run.step is not None and run.item >= 0 else None,
            decided_by=run.decided_by, decided_at=run.decided_at,
        )


class Page(BaseModel, Generic[T]):
    """A page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = None

    @classmethod
    def of(cls, found: list[Any], limit: int, convert: Callable[[Any], T]) -> Page[T]:
        """A page from ``limit + 1`` rows in the list's order: ``limit`` of them, and a cursor
        (the last one's id) when there was one more."""
        shown = found[:limit]
        more = len(found) > limit
        return cls(items=[convert(row) for row in shown],
                   next_cursor=str(shown[-1].id) if more else None)


class Health(BaseModel):
    status: str
    version: str


class ErrorInfo(BaseModel):
    code: str = Field(description="stable, e.g. not_found, invalid, conflict, name_taken")
    message: str = Field(description="what went wrong and, where it helps, what to do")
    details: Any = Field(None, description="more, by error: the field problems of a 422")


class ErrorOut(BaseModel):
    """Every error answer has this body, whatever its status."""

    error: ErrorInfo


# Declared on every route, so clients generated from /openapi.json know the error body.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in [
        (400, "malformed request (e.g. the body is not JSON)"),
        (401, "no token, or a token that is unknown, expired or revoked"),
        (403, "the token may not do this"),
        (404, "no such object, or one the token may not see"),
        (409, "the object's state does not allow it, or the name is taken"),
        (413, "the request body is too large"),
        (422, "invalid input; nothing was changed"),
    ]
}
