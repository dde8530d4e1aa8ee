"""``engine.workflows._states``: each step's current run from the rows the store has (floors
set aside older attempts, a foreach step's mark is item -1, a nested step is its child run);
and the save-time check of templates reading a foreach step's outputs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from herder.engine.workflows import StepIndex, _Loaded
from herder.engine.workflows import _states as _from_index
from herder.model.runs import RunStatus
from herder.model.workflows import parse_workflow

SPEC = parse_workflow({
    "name": "w", "namespace": "n",
    "steps": [
        {"name": "a", "command": "true"},
        {"name": "each", "foreach": [1, 2, 3], "command": ["echo", "{{ item }}"]},
        {"name": "sub", "workflow": "other"},
        {"name": "last", "needs": ["each"],
         "command": ["echo", "{{ steps.each.outputs[0].k }}", "{{ steps.each.outputs | length }}"]},
    ],
})
_ids = iter(range(1, 1000))


def row(step: str, item: int, attempt: int, status: str, **outputs: Any) -> Any:
    return SimpleNamespace(id=next(_ids), step=step, item=item, attempt=attempt, status=status,
                           outputs=outputs)


def kid(step: str, attempt: int, status: str) -> Any:
    return SimpleNamespace(id=next(_ids), parent_step=step, parent_item=0,
                           parent_attempt=attempt, status=status)


def test_a_template_may_read_a_foreach_steps_items_outputs() -> None:
    # SPEC was saved: ``last`` reads ``steps.each.outputs[0].k`` and its length.
    assert SPEC.step("last").needs[0].step == "each"


def _states(spec: Any, run: Any, rows: list[Any], kids: list[Any]) -> _Loaded:
    return _from_index(spec, run, StepIndex.of(0, rows, kids))


def run(**floors: int) -> Any:
    return SimpleNamespace(floors=floors)


def test_the_latest_attempt_is_the_current_run() -> None:
    loaded = _states(SPEC, run(), [row("a", 0, 1, "APP_ERROR"), row("a", 0, 2, "SUCCESS", v="x")],
                     [])
    state = loaded.states["a"]
    assert (state.status, state.attempt, dict(state.outputs)) == (RunStatus.SUCCESS, 2,
                                                                  {"v": "x"})
    assert loaded.attempt("a") == 2


def test_a_floor_sets_older_attempts_aside() -> None:
    loaded = _states(SPEC, run(a=1), [row("a", 0, 1, "APP_ERROR")], [])
    state = loaded.states["a"]
    assert (state.status, state.attempt) == (None, 1)
    assert loaded.where("a", 0) is None
    again = _states(SPEC, run(a=1), [row("a", 0, 1, "APP_ERROR"), row("a", 0, 2, "RUNNING")], [])
    assert (again.states["a"].status, again.states["a"].attempt) == (RunStatus.RUNNING, 2)


def test_foreach_items_by_index_and_its_mark() -> None:
    rows = [row("each", 1, 1, "SUCCESS", k="b"), row("each", 0, 1, "APP_ERROR"),
            row("each", 0, 2, "SUCCESS", k="a")]
    state = _states(SPEC, run(), rows, []).states["each"]
    assert state.status is None  # no mark
    assert sorted(state.items) == [0, 1]
    assert (state.items[0].attempt, state.items[0].outputs) == (2, {"k": "a"})
    marked = _states(SPEC, run(), [row("each", -1, 1, "SKIPPED")], []).states["each"]
    assert (marked.status, marked.attempt, dict(marked.items)) == (RunStatus.SKIPPED, 1, {})


def test_a_nested_step_is_its_newest_child_run() -> None:
    loaded = _states(SPEC, run(), [], [kid("sub", 1, "FAILED"), kid("sub", 2, "RUNNING")])
    state = loaded.states["sub"]
    assert (state.status, state.attempt) == (RunStatus.RUNNING, 2)
    assert loaded.where("sub", 0)[0] == "child"
    ended = _states(SPEC, run(), [], [kid("sub", 1, "FAILED")]).states["sub"]
    assert ended.status is RunStatus.APP_ERROR


def test_rows_of_steps_the_spec_does_not_have_are_ignored() -> None:
    plain: Any = SimpleNamespace(step=None)  # a run of a job, not of a step
    loaded = _states(SPEC, run(), [row("gone", 0, 1, "SUCCESS"), plain], [])
    assert loaded.states == {}
