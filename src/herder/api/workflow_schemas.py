"""Request and response bodies of ``/api/v1/workflows``. The body is read field by field by
``model.workflows.parse_workflow``, whose refusals name the path of the problem
(``steps[2].needs[0]: unknown step 'transfrom' (did you mean 'transform'?)``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from herder.backends import base as backends
from herder.model import jobs as rules
from herder.model.errors import InvalidSpec
from herder.model.workflow_state import WorkflowRun
from herder.model.workflows import Workflow, WorkflowSpec, parse_workflow

Scalar = str | int | float | bool
_STEP = (
    "{name, job | command | workflow | approval: {message}, params, env, needs: [name | "
    "{step, on: success|failure|always}], foreach, parallelism, timeout, retries, backend}"
)


class WorkflowIn(BaseModel):
    """A workflow as the API and manifests take it: the spec with its name and namespace."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="DNS-label-like, unique in its namespace", max_length=200)
    namespace: str = Field(rules.DEFAULT_NAMESPACE, max_length=200)
    description: str = Field("", max_length=4096)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Scalar] = Field(
        default_factory=dict, description="declared params and their defaults"
    )
    steps: list[dict[str, Any]] = Field(description=f"the graph, each step {_STEP}")
    on_failure: list[dict[str, Any]] = Field(
        default_factory=list, description="steps run once the workflow has failed"
    )
    parallelism: int | None = Field(None, description="steps running at once; default no limit")
    schedule: dict[str, Any] | None = Field(None, description="as a job's schedule")
    misfire: dict[str, Any] | None = Field(None, description="as a job's misfire")
    concurrency: str = Field("allow", description="allow | forbid | replace | queue")
    max_active: int = 1
    enabled: bool = True
    timeout: str | float | None = Field(None, description="'90s', '1h' or seconds")
    retention: dict[str, Any] | None = None

    def to_spec(self) -> WorkflowSpec:
        """The checked spec; ``InvalidSpec`` (422) with the path of the first problem."""
        data = {k: v for k, v in self.model_dump().items() if v is not None}
        spec = parse_workflow(data)
        for section in ("steps", "on_failure"):
            for i, step in enumerate(getattr(spec, section)):
                if step.backend is not None:
                    try:
                        backends.check_name(step.backend)
                    except InvalidSpec as exc:
                        raise InvalidSpec(f"{section}[{i}].{exc.message}") from None
        return spec


class WorkflowPatch(BaseModel):
    """Any subset of a workflow's fields; the result is checked as a whole."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    namespace: str | None = None
    description: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    params: dict[str, Scalar] | None = None
    steps: list[dict[str, Any]] | None = None
    on_failure: list[dict[str, Any]] | None = None
    parallelism: int | None = None
    schedule: dict[str, Any] | None = None
    misfire: dict[str, Any] | None = None
    concurrency: str | None = None
    max_active: int | None = None
    enabled: bool | None = None
    timeout: str | float | None = None
    retention: dict[str, Any] | None = None


class WorkflowOut(BaseModel):
    """A stored workflow: its spec in canonical form, with what the store adds."""

    id: int
    ref: str = Field(description="namespace/name")
    name: str
    namespace: str
    description: str
    labels: dict[str, str]
    annotations: dict[str, str]
    params: dict[str, Scalar]
    steps: list[dict[str, Any]]
    on_failure: list[dict[str, Any]]
    parallelism: int | None
    schedule: dict[str, Any] | None
    misfire: dict[str, Any]
    concurrency: str
    max_active: int
    enabled: bool
    timeout: float | None
    retention: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    next_run_at: datetime | None = Field(
        None, description="the next slot the schedule fires at (UTC); null when none is due"
    )

    @classmethod
    def of(cls, workflow: Workflow) -> WorkflowOut:
        return cls(
            id=workflow.id, ref=workflow.ref, created_at=workflow.created_at,
            updated_at=workflow.updated_at, next_run_at=workflow.next_run_at,
            **workflow.spec.to_dict(),
        )


class WorkflowRunIn(BaseModel):
    """Start a workflow run: ``params`` override the workflow's declared ones."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Scalar] = Field(default_factory=dict)


class WorkflowRunOut(BaseModel):
    id: int
    workflow: str = Field(description="namespace/name")
    workflow_id: int | None
    namespace: str
    status: str = Field(description="RUNNING, ACTION_PENDING, PAUSED, CANCELLING, FAILING, "
                                    "SUCCESS, FAILED or ABORTED")
    reason: str
    params: dict[str, Any]
    trigger: str
    submitter: str | None
    scheduled_for: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    paused_at: datetime | None
    cancel_requested_at: datetime | None
    parent_run_id: int | None = Field(description="the workflow run this one is a step of")
    parent_step: str | None
    rerun_of: int | None = Field(description="the workflow run this one reran")

    @classmethod
    def of(cls, run: WorkflowRun) -> WorkflowRunOut:
        return cls(
            id=run.id, workflow=run.ref, workflow_id=run.workflow_id, namespace=run.namespace,
            status=run.status.value, reason=run.reason, params=run.params, trigger=run.trigger,
            submitter=run.submitter, scheduled_for=run.scheduled_for, created_at=run.created_at,
            updated_at=run.updated_at, finished_at=run.finished_at, paused_at=run.paused_at,
            cancel_requested_at=run.cancel_requested_at, parent_run_id=run.parent_run_id,
            parent_step=run.parent_step, rerun_of=run.rerun_of,
        )


class StepRunOut(BaseModel):
    id: int
    item: int | None = Field(description="a foreach step's item index")
    attempt: int
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = Field(None, description="why it failed, or why it was skipped")


class NodeOut(BaseModel):
    id: str = Field(description="the step's name")
    kind: str = Field(description="job, command, workflow or approval")
    section: str = Field(description="steps or on_failure")
    status: str | None = Field(description="its current run's status; null before it has one")
    ended: bool
    attempt: int
    items: dict[str, int] | None = Field(None, description="a foreach step's items by status")
    runs: list[StepRunOut] = Field(description="every run of the step, oldest first")
    child: int | None = Field(description="a nested step: its workflow run")
    message: str | None = Field(description="an approval's message")
    started_at: datetime | None
    finished_at: datetime | None


class EdgeOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    source: str = Field(alias="from", serialization_alias="from")
    to: str
    on: str = Field(description="success, failure or always")


class GraphOut(BaseModel):
    """A workflow run as a graph: a node per step, an edge per need."""

    run: WorkflowRunOut
    nodes: list[NodeOut]
    edges: list[EdgeOut]


class WorkflowRunDetail(WorkflowRunOut):
    """A workflow run with its steps (the graph's nodes)."""

    steps: list[NodeOut]
