"""Workflow specs: every field of the design's manifest parses, every bad case is refused with
the path of the problem."""

from __future__ import annotations

from typing import Any

import pytest

from herder.model.errors import InvalidSpec
from herder.model.workflows import Need, from_dict, parse_workflow

DESIGN = {
    "name": "nightly-etl",
    "namespace": "data",
    "schedule": {"cron": "0 2 * * *", "timezone": "UTC"},
    "parallelism": 4,
    "params": {"region": "eu"},
    "steps": [
        {"name": "extract", "job": "extract-sales", "params": {"region": "{{ params.region }}"}},
        {"name": "transform",
         "command": ["python", "transform.py", "--rows", "{{ steps.extract.outputs.rows }}"],
         "needs": ["extract"]},
        {"name": "cleanup", "command": "rm -rf /tmp/etl-{{ run.id }}",
         "needs": [{"step": "transform", "on": "always"}]},
        {"name": "ship", "approval": {"message": "Publish today's numbers?"},
         "needs": ["transform"]},
        {"name": "per-file", "foreach": "{{ steps.extract.outputs.files }}", "parallelism": 10,
         "command": ["process", "{{ item }}"], "needs": ["extract"]},
        {"name": "downstream", "workflow": "publish", "needs": ["ship"]},
    ],
    "on_failure": [{"name": "page-oncall", "command": ["notify", "etl failed"]}],
}


def workflow(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "w", "steps": list(steps), **fields}


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(InvalidSpec) as caught:
        parse_workflow(data)
    return caught.value.message


def test_the_design_example_parses_into_its_parts() -> None:
    spec = parse_workflow(DESIGN)

    assert [s.kind for s in spec.steps] == [
        "job", "command", "command", "approval", "command", "workflow"
    ]
    assert spec.steps[1].needs == (Need(step="extract", on="success"),)
    assert spec.steps[2].needs == (Need(step="transform", on="always"),)
    assert spec.steps[3].approval is not None
    assert spec.steps[3].approval.message == "Publish today's numbers?"
    assert spec.steps[4].foreach == "{{ steps.extract.outputs.files }}"
    assert spec.steps[4].parallelism == 10
    assert spec.parallelism == 4
    assert spec.schedule is not None and spec.schedule.cron == "0 2 * * *"
    assert [s.name for s in spec.on_failure] == ["page-oncall"]


def test_the_stored_form_reads_back_to_the_same_spec() -> None:
    spec = parse_workflow(DESIGN)
    assert from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["steps"][1]["needs"] == [{"step": "extract", "on": "success"}]


def test_the_policy_fields_are_a_jobs() -> None:
    spec = parse_workflow(workflow(
        {"name": "a", "command": "true", "timeout": "90s", "retries": 2},
        misfire={"policy": "skip", "grace": "5m"}, concurrency="forbid", max_active=2,
        timeout="1h", retention={"max_runs": 10}, enabled=False,
    ))
    assert spec.misfire.policy == "skip" and spec.misfire.grace == 300
    assert (spec.concurrency, spec.max_active, spec.timeout) == ("forbid", 2, 3600.0)
    assert spec.retention.max_runs == 10 and spec.enabled is False
    assert spec.steps[0].timeout == 90.0
    assert spec.steps[0].retries is not None and spec.steps[0].retries.limit == 2


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([{"name": "transform", "command": "true"},
          {"name": "load", "command": "true", "needs": ["transfrom"]}],
         "steps[1].needs[0]: unknown step 'transfrom' (did you mean 'transform'?)"),
        ([{"name": "a", "command": "true", "needs": ["c"]},
          {"name": "b", "command": "true", "needs": ["a"]},
          {"name": "c", "command": "true", "needs": ["b"]}],
         "steps: cycle: a -> c -> b -> a"),
        ([{"name": "a", "command": "true", "needs": ["a"]}], "steps: cycle: a -> a"),
        ([{"name": "a", "command": "true"}, {"name": "a", "command": "false"}],
         "steps[1].name: 'a' is already the name of steps[0]"),
        ([{"name": "a", "command": "true"},
          {"name": "b", "command": "true", "needs": ["a", {"step": "a", "on": "failure"}]}],
         "steps[1].needs[1]: 'a' is needed already (needs[0])"),
        ([{"name": "a", "command": "true"},
          {"name": "b", "command": "true", "needs": [{"step": "a", "on": "failure"}]},
          {"name": "c", "command": "true", "needs": ["a", "b"]}],
         "steps[2].needs: 'c' can never start: it needs 'a' to succeed (through 'a') and to "
         "fail (through 'b')"),
        ([{"name": "a", "command": "true", "needs": [{"step": "b", "on": "sometimes"}]}],
         "steps[0].needs[0].on: 'sometimes' is not one of success, failure, always"),
        ([{"name": "a"}],
         "steps[0]: a step has exactly one of job, command, workflow, approval (it has none)"),
        ([{"name": "a", "job": "x", "command": "true"}],
         "steps[0]: a step has exactly one of job, command, workflow, approval (it has job and "
         "command)"),
        ([{"command": "true"}], "steps[0].name: missing"),
        ([{"name": "A!", "command": "true"}], "steps[0].name: step name: 'A!' is not a valid"),
        ([{"name": "a", "command": "true", "colour": "red"}],
         "steps[0].colour: unknown field; a step has name"),
        ([{"name": "a", "command": ""}], "steps[0].command: must not be empty"),
        ([{"name": "a", "command": "true", "timeout": -1}],
         "steps[0].timeout: must be greater than zero"),
        ([{"name": "a", "command": "true", "retries": {"limit": -1}}],
         "steps[0].retries.limit: must be from 0 to 100"),
        ([{"name": "a", "command": "true", "parallelism": 2}],
         "steps[0].parallelism: limits foreach items; this step has no foreach"),
        ([{"name": "a", "command": "true", "foreach": [], "parallelism": 2}],
         "steps[0].foreach: an empty list"),
        ([{"name": "a", "command": "true", "foreach": "files"}],
         "steps[0].foreach: 'files' is not a template"),
        ([{"name": "a", "approval": {"message": "ok?"}, "env": {"A": "b"}}],
         "steps[0].env: an approval step has no env"),
        ([{"name": "a", "job": "x", "backend": "local"}], "steps[0].backend: a job step has no"),
        ([{"name": "a", "job": "Bad/x"}], "steps[0].job: namespace: 'Bad' is not a valid name"),
        ([{"name": "a", "job": "x", "env": {"PATH": "/tmp"}}],
         "steps[0].env: 'PATH' is reserved"),
        ([{"name": "a", "command": "true", "params": {"p-q": 1}}],
         "steps[0].params: 'p-q' is not a valid param name"),
        ([{"name": "a", "command": "{{ oops"}], "steps[0].command: template error"),
        ([{"name": "a", "command": ["x", "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"]}],
         "steps[0].command: template error: nested too deeply"),
        ([{"name": "a", "command": ["x", "{{ " + "a." * 500 + "b }}"]}],
         "steps[0].command: template error: nested too deeply"),
        ([{"name": "a", "command": ["x"], "foreach": "{{ " + "[" * 400 + "]" * 400 + " }}"}],
         "steps[0].foreach: template error: nested too deeply"),
    ],
)
def test_bad_steps_are_refused_with_their_path(steps: list[Any], expected: str) -> None:
    message = refused(workflow(*steps))
    assert message.startswith(expected), message


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([{"name": "a", "command": ["echo", "{{ steps.b.outputs.x }}"]},
          {"name": "b", "command": "true"}],
         "steps[0].command[1]: steps.b: 'b' is not among this step's needs"),
        ([{"name": "a", "command": "true"},
          {"name": "b", "command": ["echo", "{{ steps.a.output.x }}"], "needs": ["a"]}],
         "steps[1].command[1]: steps.a.output: a step has outputs and status (did you mean "
         "'outputs'?)"),
        ([{"name": "a", "command": ["echo", "{{ params.regoin }}"]}],
         "steps[0].command[1]: unknown param 'regoin' (did you mean 'region'?)"),
        ([{"name": "a", "command": ["echo", "{{ item }}"]}],
         "steps[0].command[1]: item: only a foreach step has an item"),
        ([{"name": "a", "command": ["echo", "{{ secrets.x }}"]}],
         "steps[0].command[1]: unknown name 'secrets'"),
        ([{"name": "a", "command": ["echo", "{{ run.owner }}"]}],
         "steps[0].command[1]: run.owner: unknown; run has id, attempt"),
        ([{"name": "a", "command": "true"},
          {"name": "b", "command": "echo {{ steps.a.outputs.x }}", "needs": ["a"]}],
         "steps[1].command: template error: a value is used unquoted in a shell command"),
        ([{"name": "a", "command": "echo {{ params.region }}"}],
         "steps[0].command: template error: a value is used unquoted"),
        ([{"name": "a", "command": "true", "foreach": "{{ steps.z.outputs.f }}"}],
         "steps[0].foreach: steps.z: 'z' is not among this step's needs"),
        ([{"name": "a", "job": "x", "params": {"r": "{{ steps.a.outputs.x }}"}}],
         "steps[0].params.r: steps.a: 'a' is not among this step's needs"),
    ],
)
def test_templates_read_only_what_will_exist(steps: list[Any], expected: str) -> None:
    message = refused(workflow(*steps, params={"region": "eu"}))
    assert message.startswith(expected), message


def test_outputs_of_transitive_needs_are_visible_and_quoted_shell_use_passes() -> None:
    spec = parse_workflow(workflow(
        {"name": "a", "command": "true"},
        {"name": "b", "command": "true", "needs": ["a"]},
        {"name": "c", "command": "echo {{ steps.a.outputs.x | shell_quote }}", "needs": ["b"]},
        {"name": "d", "command": ["echo", "{{ steps['a'].outputs['x'] }}", "{{ workflow.name }}"],
         "needs": ["c"]},
    ))
    assert len(spec.steps) == 4


def test_on_failure_steps_need_each_other_only_and_see_every_main_step() -> None:
    base = [{"name": "a", "command": "true"}]
    ok = parse_workflow(workflow(*base, on_failure=[
        {"name": "log", "command": ["echo", "{{ steps.a.status }}"]},
        {"name": "page", "command": "true", "needs": ["log"]},
    ]))
    assert [s.name for s in ok.on_failure] == ["log", "page"]
    message = refused(workflow(*base, on_failure=[
        {"name": "page", "command": "true", "needs": ["a"]}
    ]))
    assert message.startswith("on_failure[0].needs[0]: 'a' is a main step; on_failure steps")
    message = refused(workflow(
        {"name": "a", "command": "true", "needs": ["page"]},
        on_failure=[{"name": "page", "command": "true"}],
    ))
    assert message.startswith("steps[0].needs[0]: 'page' is an on_failure step")
    message = refused(workflow(*base, on_failure=[{"name": "a", "command": "true"}]))
    assert message.startswith("on_failure[0].name: 'a' is already the name of steps[0]")


def test_an_always_need_does_not_inherit_conditions() -> None:
    # c needs a to have succeeded and b to have ended whatever it did: reachable.
    spec = parse_workflow(workflow(
        {"name": "a", "command": "true"},
        {"name": "b", "command": "true", "needs": [{"step": "a", "on": "failure"}]},
        {"name": "c", "command": "true", "needs": ["a", {"step": "b", "on": "always"}]},
    ))
    assert spec.steps[2].needs[1].on == "always"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"steps": []}, "steps: must be a list of steps, at least one"),
        ({"steps": "a"}, "steps: must be a list of steps"),
        ({"parallelism": 0}, "parallelism: must be a whole number from 1 to 10000"),
        ({"schedule": {"cron": "nope"}}, "schedule: cron: 'nope'"),
        ({"concurrency": "sometimes"}, "concurrency: 'sometimes' is not one of"),
        ({"name": "Bad"}, "name: 'Bad' is not a valid name"),
        ({"colour": "red"}, "workflow.colour: unknown field; a workflow has name"),
        ({"params": {"x": [1]}}, "params.x: must be a string, a number or a boolean"),
        ({"enabled": "yes"}, "enabled: must be true or false"),
        ({"timeout": "soon"}, "timeout: 'soon' is not a duration"),
    ],
)
def test_bad_workflow_fields_are_refused(fields: dict[str, Any], expected: str) -> None:
    data = workflow({"name": "a", "command": "true"})
    data.update(fields)
    message = refused(data)
    assert message.startswith(expected), message


def test_needs_may_be_one_name() -> None:
    spec = parse_workflow(workflow(
        {"name": "a", "command": "true"}, {"name": "b", "command": "true", "needs": "a"}
    ))
    assert spec.steps[1].needs == (Need(step="a"),)


def test_too_many_steps_are_refused() -> None:
    steps = [{"name": f"s{i}", "command": "true"} for i in range(1001)]
    assert refused(workflow(*steps)) == "steps: at most 1000 steps"
