"""Request and response bodies. Requests forbid unknown fields; each converts to the domain."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from herder.backends import base as backends
from herder.model import jobs as rules
from herder.model.durations import parse_duration
from herder.model.errors import InvalidSpec
from herder.model.jobs import Job, JobSpec
from herder.model.runs import Run

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
    command: list[str] | str = Field(
        description="an argv list (run as is) or a shell string (run by /bin/sh -c)"
    )
    env: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Scalar] = Field(
        default_factory=dict, description="declared params and their defaults"
    )
    backend: str = "local"
    timeout: str | float | None = Field(None, description="'90s', '1h' or seconds")
    enabled: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)

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
    def _command(cls, v: list[str] | str) -> list[str] | str:
        checked: list[str] | str = _check(rules.check_command, v)
        return checked

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        return dict(_check(rules.check_env, v, allow_reserved=True))

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Scalar]) -> dict[str, Scalar]:
        return dict(_check(rules.check_params, v))

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

    @model_validator(mode="after")
    def _renders(self) -> JobIn:
        _check(rules.check_renders, self.to_spec())
        return self

    def to_spec(self) -> JobSpec:
        timeout = self.timeout if isinstance(self.timeout, float) else None
        return JobSpec(**(self.model_dump(exclude={"timeout"}) | {"timeout": timeout}))


class JobPatch(Strict):
    """Any subset of a job's fields; the result is validated as a whole."""

    name: str | None = None
    namespace: str | None = None
    description: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    command: list[str] | str | None = None
    env: dict[str, str] | None = None
    params: dict[str, Scalar] | None = None
    backend: str | None = None
    timeout: str | float | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None


class JobOut(BaseModel):
    id: int
    ref: str = Field(description="namespace/name")
    name: str
    namespace: str
    description: str
    labels: dict[str, str]
    annotations: dict[str, str]
    command: list[str] | str
    env: dict[str, str]
    params: dict[str, Scalar]
    backend: str
    timeout: float | None
    enabled: bool
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    run_count: int
    next_run_at: datetime | None = None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id, ref=job.ref, created_at=job.created_at, updated_at=job.updated_at,
            run_count=job.run_count, **job.spec.to_dict(),
        )


class RunNow(Strict):
    """Body of ``POST /jobs/{ref}/runs``: overrides for this run only."""

    params: dict[str, Scalar] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)


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
    submitter: str | None
    params: dict[str, Scalar]
    outputs: dict[str, Any] = Field(default_factory=dict)
    backend: str
    node: str | None
    labels: dict[str, str]
    cancel_requested_at: datetime | None

    @classmethod
    def of(cls, run: Run) -> RunOut:
        return cls(
            id=run.id, job=run.job_ref, job_id=run.job_id, namespace=run.namespace,
            status=run.status.value, status_code=run.status.code, exit_code=run.exit_code,
            error=run.error, trigger=run.trigger.value, scheduled_for=run.scheduled_for,
            created_at=run.created_at, started_at=run.started_at, finished_at=run.finished_at,
            attempt=run.attempt, parent_id=run.parent_id, submitter=run.submitter,
            params=run.params, backend=run.backend, node=run.node, labels=run.labels,
            cancel_requested_at=run.cancel_requested_at,
        )


class Page(BaseModel, Generic[T]):
    """A page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = None


class Health(BaseModel):
    status: str
    version: str
