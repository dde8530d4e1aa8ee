"""Run-time controls of a workflow run, as rules over its step states: which steps a retry or
a rerun sets aside, and which step a person may skip. The engine applies them; ``decide`` then
starts what was set aside as its needs allow."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from herder.model.errors import Conflict
from herder.model.runs import RunStatus
from herder.model.workflow_graph import dependents
from herder.model.workflow_state import (
    FAILURE,
    NOT_STARTED,
    StepState,
    foreach_status,
    outcome,
)
from herder.model.workflows import WorkflowSpec


def to_reset(spec: WorkflowSpec, states: Mapping[str, StepState], steps: Iterable[str]) -> set[str]:
    """The steps whose current run a retry of ``steps`` sets aside: those steps, and every step
    downstream of them that was skipped (so it may run this time). Steps downstream that ran
    keep their runs. The engine gives each a new attempt (``StepState(attempt=n)``, no
    status), and ``decide`` starts them again as their needs allow."""
    below = dependents(spec)
    reset = set(steps)
    todo = list(reset)
    while todo:
        for name in below[todo.pop()]:
            if name not in reset and states.get(name, NOT_STARTED).status is RunStatus.SKIPPED:
                reset.add(name)
                todo.append(name)
    return reset


def retry_step(spec: WorkflowSpec, states: Mapping[str, StepState], step: str) -> set[str]:
    """``POST …/steps/{step}/retry``: only a step that failed (and will not retry on its
    own) may be retried; answers what ``to_reset`` sets aside."""
    try:
        found = spec.step(step)
    except KeyError:
        raise Conflict(f"this workflow has no step {step!r}") from None
    state = states.get(step, NOT_STARTED)
    if found.foreach is not None and state.items:
        ended: RunStatus | None = foreach_status([state.items[i] for i in sorted(state.items)])
        if any(s.status is None or not s.status.terminal for s in state.items.values()):
            ended = None
    else:
        ended = outcome(spec, found, state)
    if ended not in FAILURE:
        now = "has not ended" if ended is None else f"ended {ended.value}"
        raise Conflict(f"step {step!r} {now}; only a failed step can be retried")
    return to_reset(spec, states, [step])


def rerun_from_failed(spec: WorkflowSpec, states: Mapping[str, StepState]) -> set[str]:
    """``POST …/rerun``: the steps a rerun runs again (the failed ones and what they made
    skip); every other step keeps its run and outputs. The ``on_failure`` steps are reset too."""
    ended = {s.name: outcome(spec, s, states.get(s.name, NOT_STARTED)) for s in spec.steps}
    failed = [name for name, status in ended.items() if status in FAILURE]
    return to_reset(spec, states, failed) | {s.name for s in spec.on_failure}


def can_skip(state: StepState) -> bool:
    """A person may skip a step that has not started running: no run yet, or one waiting
    (READY, WAITING, ACTION_PENDING)."""
    return state.status in (None, RunStatus.READY, RunStatus.WAITING, RunStatus.ACTION_PENDING)
