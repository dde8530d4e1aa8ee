"""What a workflow run does next: one pure function, ``decide``, over the state of its steps.

The engine stores only step runs (every step execution is a run) and the run-time flags
(paused, cancel requested); after any of them changes it calls ``decide`` and applies the
answer in the same transaction. Because the answer depends on nothing but what is stored, a
server killed at any moment and restarted asks again and gets the answer it had not applied
yet: no step is started twice, none is forgotten.

The statuses and the rules about step outcomes are in ``model.workflow_state``; the
run-time controls (retry, rerun, skip) in ``model.workflow_controls``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from herder.model.errors import InvalidSpec
from herder.model.runs import TERMINAL, RunStatus
from herder.model.workflow_graph import order
from herder.model.workflow_state import (
    BUSY,
    FAILURE,
    NOT_STARTED,
    StepState,
    WorkflowStatus,
    context,
    foreach_status,
    items_of,
    outcome,
)
from herder.model.workflows import Need, Step, WorkflowSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """Create a run of ``step`` (``item``: the foreach item's index and ``value``), READY, or
    ACTION_PENDING for an approval. ``delay``: seconds before it may be dispatched (a retry's
    backoff)."""

    step: str
    attempt: int = 1
    item: int | None = None
    value: Any = None
    delay: float = 0.0
    approval: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    """Record ``step`` as ended without running: SKIPPED (condition not met, empty foreach),
    or PROC_ERROR (its foreach list could not be computed)."""

    step: str
    status: RunStatus
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What to do now, and the workflow run's status once it is done."""

    status: WorkflowStatus
    start: tuple[Start, ...] = ()
    mark: tuple[Mark, ...] = ()
    cancel: tuple[tuple[str, int | None], ...] = ()  # (step, item) runs to stop
    reason: str = ""


def _met(need: Need, ended: RunStatus) -> bool:
    if need.on == "always":
        return True
    if need.on == "success":
        return ended is RunStatus.SUCCESS
    return ended in FAILURE


def _unmet(need: Need, ended: RunStatus) -> str:
    happened = {RunStatus.SUCCESS: "succeeded", RunStatus.SKIPPED: "was skipped"}.get(
        ended, f"failed ({ended.value})"
    )
    wanted = "succeed" if need.on == "success" else "fail"
    return f"needs {need.step!r} to {wanted}; it {happened}"


class _Round:
    """One call of ``decide``: the outcomes known so far, grown by the marks it makes."""

    def __init__(
        self, spec: WorkflowSpec, states: Mapping[str, StepState], params: Mapping[str, Any],
        run_id: int, paused: bool,
    ) -> None:
        self.spec, self.states, self.params, self.run_id = spec, states, params, run_id
        self.paused = paused
        self.ended: dict[str, RunStatus] = {}
        self.busy = 0
        self.waiting = 0  # approvals waiting for a person
        self.start: list[Start] = []
        self.mark: list[Mark] = []

    def count(self, state: StepState) -> None:
        runs = state.items.values() if state.items else (state,)
        for run in runs:
            status = run.status
            if status in BUSY:
                self.busy += 1
            elif status is RunStatus.ACTION_PENDING:
                self.waiting += 1

    def room(self) -> bool:
        if self.spec.parallelism is None:
            return True
        return self.busy + sum(not s.approval for s in self.start) < self.spec.parallelism

    def walk(self, steps: Iterable[Step]) -> bool:
        """Advance ``steps`` (in dependency order); True when every one has ended."""
        done = True
        for step in steps:
            state = self.states.get(step.name, NOT_STARTED)
            ended = self.advance(step, state)
            if ended is None:
                done = False
            else:
                self.ended[step.name] = ended
        return done

    def advance(self, step: Step, state: StepState) -> RunStatus | None:
        if step.foreach is not None and (state.items or state.status is not None):
            return self.foreach(step, state, None)
        ended = outcome(self.spec, step, state)
        if ended is not None or (state.status is not None and state.status.terminal is False):
            return ended
        if state.status is not None:  # failed, a retry is due
            self.launch(Start(step=step.name, attempt=state.attempt + 1,
                              delay=_delay(step, state, self.run_id, None)))
            return None
        for need in step.needs:  # not started: are its needs met?
            upstream = self.ended.get(need.step)
            if upstream is None:
                return None
        for need in step.needs:
            upstream = self.ended[need.step]
            if not _met(need, upstream):
                self.mark.append(Mark(step=step.name, status=RunStatus.SKIPPED,
                                      reason=_unmet(need, upstream)))
                return RunStatus.SKIPPED
        if step.foreach is not None:
            return self.foreach(step, state, self._items(step))
        self.launch(Start(step=step.name, attempt=state.attempt + 1,
                          approval=step.approval is not None))
        return None

    def _items(self, step: Step) -> list[Any] | RunStatus:
        try:
            items = items_of(step, context(self.spec, step, self.states, params=self.params,
                                           run_id=self.run_id))
        except InvalidSpec as exc:
            self.mark.append(Mark(step=step.name, status=RunStatus.PROC_ERROR,
                                  reason=exc.message))
            return RunStatus.PROC_ERROR
        if not items:
            self.mark.append(Mark(step=step.name, status=RunStatus.SKIPPED,
                                  reason="foreach: no items"))
            return RunStatus.SKIPPED
        return items

    def foreach(
        self, step: Step, state: StepState, items: list[Any] | RunStatus | None
    ) -> RunStatus | None:
        """Start items up to the limits; the step's outcome once every item has ended."""
        if state.status is not None and state.status.terminal and not state.items:
            return state.status  # marked: SKIPPED (no items) or PROC_ERROR (no list)
        if isinstance(items, RunStatus):
            return items
        if items is None:
            found = self._items(step)
            if isinstance(found, RunStatus):
                return found
            items = found
        # One pass over the items started so far (a fan-out of thousands is decided once per
        # item that ends, so this stays linear and cheap): which run, which wait to run again.
        running = 0
        again: list[int] = []  # set aside by a retry, or failed with a retry due
        unfinished = len(items) - len(state.items)
        for index, item in state.items.items():
            status = item.status
            if status is None:
                again.append(index)
            elif status not in TERMINAL:
                running += status in BUSY
            elif step.retries is None or not step.retries.wants(status, item.attempt):
                continue
            else:
                again.append(index)
            unfinished += 1
        if not unfinished:
            return foreach_status([state.items[i] for i in sorted(state.items)])
        limit = step.parallelism
        for index in self._to_start(again, state.items, len(items)):
            if limit is not None and running >= limit:
                break
            item = state.items.get(index, NOT_STARTED)
            start = Start(step=step.name, attempt=item.attempt + 1, item=index,
                          value=items[index],
                          delay=_delay(step, item, self.run_id, index) if item.status else 0.0)
            if not self.launch(start):
                break
            running += 1
        return None

    @staticmethod
    def _to_start(
        again: list[int], started: Mapping[int, StepState], count: int
    ) -> Iterator[int]:
        """Items to start, in index order: those to run again, then those never started."""
        yield from sorted(again)
        # Items start in index order, so those never started usually follow the last one.
        first = len(started) if not started or max(started) == len(started) - 1 else 0
        yield from (i for i in range(first, count) if i not in started)

    def launch(self, start: Start) -> bool:
        if self.paused:
            return False
        if not start.approval and not self.room():
            return False
        self.start.append(start)
        return True


def _delay(step: Step, state: StepState, run_id: int, item: int | None) -> float:
    if step.retries is None or state.status is None:
        return 0.0
    return step.retries.delay(state.attempt, f"{run_id}/{step.name}/{item}")


def _active(states: Mapping[str, StepState]) -> list[tuple[str, int | None]]:
    found: list[tuple[str, int | None]] = []
    for name, state in states.items():
        if state.status is not None and not state.status.terminal and not state.items:
            found.append((name, None))
        found.extend((name, i) for i, s in state.items.items()
                     if s.status is not None and not s.status.terminal)
    return found


def unhandled_failures(spec: WorkflowSpec, ended: Mapping[str, RunStatus]) -> list[str]:
    """Main steps that failed where no step needs them ``on: failure``."""
    handled = {n.step for s in spec.steps for n in s.needs if n.on == "failure"}
    return [s.name for s in spec.steps
            if ended.get(s.name) in FAILURE and s.name not in handled]


def decide(
    spec: WorkflowSpec,
    states: Mapping[str, StepState],
    *,
    params: Mapping[str, Any] | None = None,
    run_id: int = 0,
    paused: bool = False,
    cancelled: bool = False,
) -> Decision:
    """What to do next in a workflow run whose steps are in ``states`` (missing: not started).

    ``params``: the run's params (the workflow's defaults with the run's overrides), for
    rendering ``foreach`` lists. Paused, nothing starts; cancelled, every active step run is
    to be stopped and nothing starts.
    """
    if cancelled:
        active = _active(states)
        if active:
            return Decision(status=WorkflowStatus.CANCELLING, cancel=tuple(active),
                            reason="cancel requested")
        return Decision(status=WorkflowStatus.ABORTED, reason="cancelled")
    now = _Round(spec, states, params if params is not None else spec.params, run_id, paused)
    for state in states.values():
        now.count(state)
    main_done = now.walk(_ordered(spec, "steps"))
    if not main_done:
        return _going(now, WorkflowStatus.RUNNING)
    failed = unhandled_failures(spec, now.ended)
    if not failed:
        return Decision(status=WorkflowStatus.SUCCESS, mark=tuple(now.mark))
    reason = f"step {failed[0]!r} failed" + (f" (and {len(failed) - 1} more)" if failed[1:]
                                              else "")
    if not spec.on_failure or now.walk(_ordered(spec, "on_failure")):
        return Decision(status=WorkflowStatus.FAILED, mark=tuple(now.mark), reason=reason)
    return _going(now, WorkflowStatus.FAILING, reason)


def _ordered(spec: WorkflowSpec, section: str) -> list[Step]:
    key = f"order.{section}"
    found: list[Step] | None = spec.memo.get(key)
    if found is None:
        found = spec.memo[key] = order(spec, getattr(spec, section))
    return found


def _going(now: _Round, status: WorkflowStatus, reason: str = "") -> Decision:
    if now.paused:
        status = WorkflowStatus.PAUSED
    elif status is WorkflowStatus.RUNNING:
        asked = sum(1 for s in now.start if s.approval)
        if now.waiting + asked and not now.busy + len(now.start) - asked:
            status = WorkflowStatus.ACTION_PENDING
    return Decision(status=status, start=tuple(now.start), mark=tuple(now.mark), reason=reason)
