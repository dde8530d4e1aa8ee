"""What a started step becomes, and a workflow run's graph as data."""

from __future__ import annotations

import pytest

from herder.model import jobs, templates
from herder.model.errors import InvalidSpec
from herder.model.runs import RunStatus
from herder.model.workflow_state import StepState
from herder.model.workflow_steps import graph, plan_step
from herder.model.workflows import parse_workflow

SPEC = parse_workflow({
    "name": "etl", "namespace": "data", "params": {"region": "eu"},
    "steps": [
        {"name": "extract", "job": "ops/extract", "params": {"region": "{{ params.region }}"},
         "env": {"SINCE": "{{ workflow.name }}"}},
        {"name": "load", "needs": ["extract"], "params": {"mode": "fast"},
         "command": "load {{ steps.extract.outputs.rows | shell_quote }} "
                    "{{ params.mode | shell_quote }}"},
        {"name": "each", "needs": ["extract"], "foreach": "{{ steps.extract.outputs.files }}",
         "command": ["process", "{{ item }}"], "timeout": "1m", "backend": "local"},
        {"name": "ok", "approval": {"message": "ship?"}, "needs": ["load"]},
        {"name": "nested", "workflow": "publish", "needs": ["ok"],
         "params": {"day": "{{ run.id }}"}},
    ],
    "on_failure": [{"name": "page", "command": ["notify"]}],
})
DONE = {"extract": StepState(status=RunStatus.SUCCESS, attempt=1,
                             outputs={"rows": "1; rm -rf /", "files": ["a", "b"]})}


def test_a_job_step_renders_its_param_overrides_and_env_now() -> None:
    run = plan_step(SPEC, SPEC.steps[0], {}, params={"region": "us"}, run_id=9)
    assert (run.kind, run.job, run.params, run.env) == (
        "job", ("ops", "extract"), {"region": "us"}, {"SINCE": "etl"})


def test_a_command_step_is_rendered_at_launch_with_its_context_and_quoting() -> None:
    run = plan_step(SPEC, SPEC.steps[1], DONE, params={"region": "eu"}, run_id=9)
    assert run.kind == "command" and run.command == SPEC.steps[1].command
    assert run.context["steps"]["extract"]["outputs"]["rows"] == "1; rm -rf /"
    assert run.context["params"] == {"region": "eu", "mode": "fast"}
    # What the launcher will do: render once, in the sandbox, with the shell rule.
    spec = jobs.JobSpec(name="load", command=run.command or "", params=run.params)
    argv = jobs.render_command(spec, run.context)
    assert argv == ["/bin/sh", "-c", "load '1; rm -rf /' fast"]


def test_a_foreach_item_sees_its_item_and_keeps_the_step_settings() -> None:
    run = plan_step(SPEC, SPEC.steps[2], DONE, params={}, run_id=9, item="b")
    assert run.context["item"] == "b" and run.timeout == 60.0 and run.backend == "local"
    assert templates.render(run.command[1], run.context, shell=False) == "b"  # type: ignore[index]


def test_approval_and_nested_steps() -> None:
    approval = plan_step(SPEC, SPEC.steps[3], {}, params={}, run_id=9)
    assert (approval.kind, approval.message) == ("approval", "ship?")
    nested = plan_step(SPEC, SPEC.steps[4], {}, params={}, run_id=9)
    assert (nested.workflow, nested.params) == (("data", "publish"), {"day": "9"})


def test_a_template_that_cannot_render_names_its_field() -> None:
    spec = parse_workflow({"name": "w", "steps": [
        {"name": "a", "command": "true"},
        {"name": "b", "job": "x", "needs": ["a"], "params": {"n": "{{ steps.a.outputs.n }}"}},
    ]})
    with pytest.raises(InvalidSpec, match=r"^params.n: template error: .*'n'"):
        plan_step(spec, spec.steps[1], {"a": StepState(status=RunStatus.SUCCESS, attempt=1)},
                  params={}, run_id=1)


def test_the_graph_has_a_node_per_step_and_an_edge_per_need() -> None:
    states = {**DONE, "each": StepState(items={
        0: StepState(status=RunStatus.SUCCESS, attempt=1),
        1: StepState(status=RunStatus.RUNNING, attempt=1)})}
    drawn = graph(SPEC, states)
    nodes = {n["id"]: n for n in drawn["nodes"]}
    assert nodes["extract"] == {"id": "extract", "kind": "job", "section": "steps",
                                "status": "SUCCESS", "ended": True, "attempt": 1}
    assert nodes["each"]["items"] == {"SUCCESS": 1, "RUNNING": 1}
    assert nodes["each"]["status"] == "RUNNING" and not nodes["each"]["ended"]
    assert nodes["load"]["status"] is None and nodes["page"]["section"] == "on_failure"
    assert {"from": "extract", "to": "load", "on": "success"} in drawn["edges"]
    assert len(drawn["edges"]) == 4
