"""The state of a workflow run: its own status, and each step's as the decision sees it.

Step outcomes
-------------
A step's current run (its latest attempt) says how it ended:

* **success**: SUCCESS (an approval that was approved);
* **failure**: TIMEOUT, PROC_ERROR, APP_ERROR, ABORTED (a rejected approval, a step run
  cancelled on its own) once its ``retries`` are used up (ABORTED is never retried);
* **skipped**: SKIPPED (its condition was not met, or a person skipped it).

A need ``on: success`` is met by success, ``on: failure`` by failure, ``on: always`` by any
of the three. A need that can no longer be met skips the step (SKIPPED, with the reason), so
skips flow down ``success`` and ``failure`` needs and stop at ``always`` ones. A foreach step
is one run per item: it fails if an item failed, is skipped if every item was (or its list is
empty), and succeeds otherwise; its outputs are the list of its items' outputs.

Workflow run status
-------------------
======================  =====================================================================
RUNNING                 steps are running or about to start
ACTION_PENDING          nothing runs; one or more approvals wait for a person
PAUSED                  paused: steps running go on to their end, none starts
CANCELLING              cancel requested: active step runs are being stopped
FAILING                 the steps are done and one failed unhandled: ``on_failure`` steps run
SUCCESS                 every step ended, none with an unhandled failure   (terminal)
FAILED                  a step failed unhandled; ``on_failure`` steps have ended   (terminal)
ABORTED                 cancelled; every step run has stopped   (terminal)
======================  =====================================================================

A failure is *handled* when some step needs the failed step ``on: failure``: the workflow
planned for it. Other branches go on after a failure (steps that do not depend on the failed
one still run); the workflow fails once nothing more can run.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from herder.model import templates
from herder.model.errors import InvalidSpec
from herder.model.policies import Retries
from herder.model.runs import RunStatus
from herder.model.workflow_graph import reads_steps, visible_steps
from herder.model.workflows import MAX_ITEMS, Step, WorkflowSpec


class WorkflowStatus(enum.StrEnum):
    """A workflow run's own status (see the module docstring)."""

    RUNNING = "RUNNING"
    ACTION_PENDING = "ACTION_PENDING"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"
    FAILING = "FAILING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    ABORTED = "ABORTED"

    @property
    def terminal(self) -> bool:
        return self in (WorkflowStatus.SUCCESS, WorkflowStatus.FAILED, WorkflowStatus.ABORTED)


FAILURE = frozenset(
    {RunStatus.TIMEOUT, RunStatus.PROC_ERROR, RunStatus.APP_ERROR, RunStatus.ABORTED}
)
# Occupying a parallelism slot: everything active but a person's decision.
BUSY = frozenset(
    {RunStatus.READY, RunStatus.WAITING, RunStatus.JOB_DEPLOYED, RunStatus.PENDING,
     RunStatus.RUNNING, RunStatus.IN_DOUBT}
)
# What a nested workflow's run counts as, for the step that runs it.
AS_STEP: dict[WorkflowStatus, RunStatus] = {
    WorkflowStatus.SUCCESS: RunStatus.SUCCESS,
    WorkflowStatus.FAILED: RunStatus.APP_ERROR,
    WorkflowStatus.ABORTED: RunStatus.ABORTED,
    **dict.fromkeys(
        (WorkflowStatus.RUNNING, WorkflowStatus.ACTION_PENDING, WorkflowStatus.PAUSED,
         WorkflowStatus.CANCELLING, WorkflowStatus.FAILING),
        RunStatus.RUNNING,
    ),
}
_EXPRESSION = re.compile(r"\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*", re.DOTALL)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepState:
    """What the store has for one step (or one foreach item): its current run.

    ``attempt`` counts the runs made so far; ``status`` is None while the current attempt has
    no run yet (never started, or reset by a retry). ``items`` is a foreach step's runs by item
    index (items not started yet are absent)."""

    status: RunStatus | None = None
    attempt: int = 0
    outputs: Mapping[str, Any] = field(default_factory=dict)
    items: Mapping[int, StepState] = field(default_factory=dict)


NOT_STARTED = StepState()

def outcome(spec: WorkflowSpec, step: Step, state: StepState) -> RunStatus | None:
    """The step's end as its dependents see it (``SUCCESS``, a failure, ``SKIPPED``), or None
    while it has not ended (a retry still to come counts as not ended)."""
    if step.foreach is not None and state.status is None:
        return None  # items still to count: ``decide`` settles a foreach step
    return ended_as(step.retries, state)


def ended_as(retries: Retries | None, state: StepState) -> RunStatus | None:
    if state.status is None or not state.status.terminal:
        return None
    if retries is not None and retries.wants(state.status, state.attempt):
        return None
    return state.status


def items_of(step: Step, context: Mapping[str, Any]) -> list[Any]:
    """A foreach step's items: its list, or what its template gives (a list; text holding a
    JSON list; or text, one item per non-blank line)."""
    if isinstance(step.foreach, list):
        return list(step.foreach)
    assert step.foreach is not None
    whole = _EXPRESSION.fullmatch(step.foreach)
    if whole is not None:
        value = templates.evaluate(whole.group("expr"), context)
    else:
        value = templates.render(step.foreach, context, shell=False)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise InvalidSpec(
                    "foreach: the text looks like a JSON list but is not one"
                ) from None
        else:
            value = [line for line in text.splitlines() if line.strip()]
    if not isinstance(value, list | tuple):
        raise InvalidSpec(f"foreach: gave {type(value).__name__}, not a list")
    if len(value) > MAX_ITEMS:
        raise InvalidSpec(f"foreach: gave {len(value)} items; at most {MAX_ITEMS}")
    return list(value)


def context(
    spec: WorkflowSpec,
    step: Step,
    states: Mapping[str, StepState],
    *,
    params: Mapping[str, Any],
    run_id: int,
    attempt: int = 1,
    item: Any = None,
) -> dict[str, Any]:
    """What the step's templates see (``model.workflow_graph`` checked they read only this):
    ``params`` (the run's), ``steps`` it may see with their outputs and status, ``run``,
    ``workflow`` and, in a foreach step, ``item``."""
    seen: dict[str, dict[str, Any]] = {}
    visible = visible_steps(spec, step)
    named = reads_steps(spec, step)
    for name in visible if named is None else visible & named:
        state = states.get(name, NOT_STARTED)
        upstream = spec.step(name)
        if upstream.foreach is not None:
            ordered = [state.items[i] for i in sorted(state.items)]
            seen[name] = {"outputs": [dict(s.outputs) for s in ordered],
                          "status": foreach_status(ordered).value}
        else:
            seen[name] = {"outputs": dict(state.outputs),
                          "status": state.status.value if state.status else None}
    own = step.params if step.kind == "command" else {}
    data = {
        "params": {**params, **own},
        "steps": seen,
        "run": {"id": run_id, "attempt": attempt},
        "workflow": {"name": spec.name, "namespace": spec.namespace},
    }
    if step.foreach is not None:
        data["item"] = item
    return data


def foreach_status(items: list[StepState]) -> RunStatus:
    statuses = [s.status for s in items if s.status is not None]
    failed = [s for s in statuses if s in FAILURE]
    if failed:
        return failed[0]
    if statuses and all(s is RunStatus.SKIPPED for s in statuses):
        return RunStatus.SKIPPED
    return RunStatus.SUCCESS


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowRun:
    """One run of a workflow, as the store keeps it. Its steps are runs (``Run.step``);
    ``spec`` is the workflow as it was when the run started (its JSON form)."""

    id: int
    workflow_id: int | None
    namespace: str
    workflow_name: str
    spec: dict[str, Any]
    params: dict[str, Any]
    status: WorkflowStatus
    reason: str
    trigger: str
    submitter: str | None
    scheduled_for: Any
    parent_run_id: int | None
    parent_step: str | None
    parent_item: int
    parent_attempt: int
    rerun_of: int | None
    floors: dict[str, int]
    version: int
    created_at: Any
    updated_at: Any
    finished_at: Any
    paused_at: Any
    cancel_requested_at: Any

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.workflow_name}"
