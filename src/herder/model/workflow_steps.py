"""From a decision to what the engine stores: each step run as it is to be created
(``plan_step``), and a workflow run's graph as data (``graph``), for the API and the CLI to
draw. Pure: the engine feeds in what the store has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from herder.model import templates
from herder.model.errors import InvalidSpec
from herder.model.workflow_state import (
    NOT_STARTED,
    StepState,
    context,
    ended_as,
    foreach_status,
    outcome,
)
from herder.model.workflows import Kind, Step, WorkflowSpec, refers_to


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRun:
    """What one ``Start`` becomes.

    * a job step: a run of ``job`` (namespace, name) with ``params`` as overrides of the job's
      and ``env`` added, both rendered now;
    * a command step: a run of ``command``, which the launcher renders as it renders a job's,
      with ``context`` (``steps``, ``workflow``, ``item``, and ``run`` as the workflow run)
      laid over its own, so that a template is rendered once, in the sandbox, at launch;
    * a nested step: a run of the workflow ``workflow`` with ``params`` as its params;
    * an approval: ``message`` for the person asked.
    """

    step: str
    kind: Kind
    job: tuple[str, str] | None = None
    workflow: tuple[str, str] | None = None
    command: list[str] | str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    backend: str = "local"
    message: str = ""


def plan_step(
    spec: WorkflowSpec,
    step: Step,
    states: Mapping[str, StepState],
    *,
    params: Mapping[str, Any],
    run_id: int,
    attempt: int = 1,
    item: Any = None,
) -> StepRun:
    """The step run to create for a ``Start``; ``InvalidSpec`` when one of its templates
    cannot be rendered (the engine then records the step run PROC_ERROR with that message)."""
    seen = context(spec, step, states, params=params, run_id=run_id, attempt=attempt, item=item)
    env = {key: _render(value, seen, f"env.{key}") for key, value in step.env.items()}
    given = {key: _render(value, seen, f"params.{key}") if isinstance(value, str) else value
             for key, value in step.params.items()}
    if step.kind == "job":
        assert step.job is not None
        return StepRun(step=step.name, kind="job", job=refers_to(step.job, spec.namespace),
                       params=given, env=env, timeout=step.timeout)
    if step.kind == "workflow":
        assert step.workflow is not None
        return StepRun(step=step.name, kind="workflow",
                       workflow=refers_to(step.workflow, spec.namespace), params=given,
                       timeout=step.timeout)
    if step.kind == "approval":
        assert step.approval is not None
        return StepRun(step=step.name, kind="approval", message=step.approval.message,
                       timeout=step.timeout)
    # A command step sees its own params beside the workflow's; the launcher renders it.
    seen["params"] = {**seen["params"], **given}
    return StepRun(step=step.name, kind="command", command=step.command, params=given, env=env,
                   context=seen, timeout=step.timeout, backend=step.backend or "local")


def _render(text: str, seen: Mapping[str, Any], where: str) -> str:
    try:
        return templates.render(text, seen, shell=False)
    except InvalidSpec as exc:
        raise InvalidSpec(f"{where}: {exc.message}") from None


def _node(spec: WorkflowSpec, step: Step, section: str, state: StepState) -> dict[str, Any]:
    node: dict[str, Any] = {"id": step.name, "kind": step.kind, "section": section}
    if step.foreach is not None and state.items:
        ordered = [state.items[i] for i in sorted(state.items)]
        counts: dict[str, int] = {}
        for item in ordered:
            key = item.status.value if item.status is not None else "NOT_STARTED"
            counts[key] = counts.get(key, 0) + 1
        ended = all(i.status is not None and i.status.terminal for i in ordered)
        node["items"] = counts
        node["status"] = foreach_status(ordered).value if ended else "RUNNING"
        # Ended once every item has, none with a retry still to come.
        node["ended"] = ended and all(ended_as(step.retries, i) is not None for i in ordered)
    else:
        node["status"] = None if state.status is None else state.status.value
        node["ended"] = outcome(spec, step, state) is not None or (
            step.foreach is not None and state.status is not None and state.status.terminal
        )
    node["attempt"] = state.attempt
    return node


def graph(spec: WorkflowSpec, states: Mapping[str, StepState]) -> dict[str, Any]:
    """``{"nodes", "edges"}``: a node per step (``status`` null until it has a run; a foreach
    step counts its items by status), an edge per need with its condition. On_failure steps
    are nodes of section ``on_failure``."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for section in ("steps", "on_failure"):
        for step in getattr(spec, section):
            nodes.append(_node(spec, step, section, states.get(step.name, NOT_STARTED)))
            edges.extend({"from": n.step, "to": step.name, "on": n.on} for n in step.needs)
    return {"nodes": nodes, "edges": edges}
