"""Workflow runs against a real server over HTTP: conditions, outputs, parallelism, nesting,
every run-time control, approvals, retries, permissions and bad input. Each step that matters
writes a side effect to a file of the test's own folder, and every wait is on a condition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import short_dir
from tests.acceptance.workflow_helpers import (
    detail,
    error_of,
    lines,
    make,
    most_at_once,
    name,
    nodes,
    start,
    step_runs,
    wait_run,
    wait_step,
)
from tests.servers import Server, wait_for

pytestmark = [pytest.mark.acceptance]


@pytest.fixture
def s(shared_server: Server) -> Server:
    return shared_server


@pytest.fixture
def out() -> Path:
    """A folder for the side effects of one test's steps."""
    return short_dir()


def gate(path: Path) -> str:
    """A shell line waiting until ``path`` exists."""
    return f"while [ ! -e {path} ]; do sleep 0.05; done"


def append(path: Path, text: str) -> str:
    return f"echo {text} >> {path}"


# Conditions -----------------------------------------------------------------------------------


def test_conditions_and_skips_flowing_down(s: Server, out: Path) -> None:
    log = out / "ran"
    steps = [
        {"name": "a", "command": f"{append(log, 'a')}; exit 3"},
        {"name": "b", "command": append(log, "b"), "needs": ["a"]},
        {"name": "c", "command": append(log, "c"), "needs": ["b"]},
        {"name": "d", "command": append(log, "d"), "needs": [{"step": "a", "on": "failure"}]},
        {"name": "e", "command": append(log, "e"), "needs": [{"step": "b", "on": "failure"}]},
        {"name": "f", "command": append(log, "f"), "needs": [{"step": "c", "on": "always"}]},
    ]
    ref = make(s, "cond", steps,
               on_failure=[{"name": "page", "command": append(log, "page")}])
    run = wait_run(s, start(s, ref))
    # a's failure is handled (d needs it on failure): the workflow succeeds.
    assert run["status"] == "SUCCESS", run
    assert run["reason"] == ""
    assert sorted(lines(log)) == ["a", "d", "f"]
    got = nodes(s, run["id"])
    assert {k: v["status"] for k, v in got.items()} == {
        "a": "APP_ERROR", "b": "SKIPPED", "c": "SKIPPED", "d": "SUCCESS", "e": "SKIPPED",
        "f": "SUCCESS", "page": None,
    }
    assert all(node["ended"] for k, node in got.items() if k != "page")
    errors = {r["step"]: r["error"] for r in step_runs(s, run["id"]) if r["status"] == "SKIPPED"}
    assert errors == {
        "b": "needs 'a' to succeed; it failed (APP_ERROR)",
        "c": "needs 'b' to succeed; it was skipped",
        "e": "needs 'b' to fail; it was skipped",
    }


def test_unhandled_failure_fails_after_other_branches_and_runs_on_failure(
    s: Server, out: Path
) -> None:
    log, seen = out / "ran", out / "seen"
    steps = [
        {"name": "a", "command": f"{append(log, 'a')}; exit 4"},
        {"name": "after-a", "command": append(log, "after-a"), "needs": ["a"]},
        {"name": "other", "command": f"sleep 0.3; {append(log, 'other')}"},
        {"name": "later", "command": append(log, "later"), "needs": ["other"]},
    ]
    on_failure = [
        {"name": "notify", "command": ["sh", "-c", f'echo "$1 $2" >> {seen}', "x",
                                       "{{ steps.a.status }}", "{{ steps.other.status }}"]},
        {"name": "then", "command": append(log, "then"), "needs": ["notify"]},
    ]
    ref = make(s, "unhandled", steps, on_failure=on_failure)
    run_id = start(s, ref)
    run = wait_run(s, run_id)
    assert run["status"] == "FAILED"
    assert run["reason"] == "step 'a' failed"
    ran = lines(log)
    # The other branch ran to its end before the on_failure steps.
    assert sorted(ran) == ["a", "later", "other", "then"]
    assert ran.index("later") < ran.index("then")
    assert lines(seen) == ["APP_ERROR SUCCESS"]
    assert {n["id"]: n["section"] for n in detail(s, run_id)["steps"]}["notify"] == "on_failure"


def test_two_unhandled_failures_say_so(s: Server) -> None:
    ref = make(s, "two", [{"name": "a", "command": "exit 1"}, {"name": "b", "command": "exit 2"}])
    run = wait_run(s, start(s, ref))
    assert (run["status"], run["reason"]) == ("FAILED", "step 'a' failed (and 1 more)")


# Outputs --------------------------------------------------------------------------------------


def test_outputs_reach_command_env_params_and_foreach(s: Server, out: Path) -> None:
    job = name("produce")
    s.create_job(name=job, command='echo rows=42 >> "$HERDER_OUTPUT"; '
                                    "printf 'files=[\"x\",\"y\",\"z\"]\\n' >> \"$HERDER_OUTPUT\"")
    consumer = name("consume")
    s.create_job(name=consumer, params={"count": "0"},
                 command=f'echo "$HERDER_PARAM_COUNT $EXTRA" >> {out / "job"}')
    steps = [
        {"name": "produce", "job": job},
        {"name": "cmd", "needs": ["produce"],
         "command": ["sh", "-c", f'echo "$1 $ROWS $HERDER_PARAM_LABEL" >> {out / "cmd"}; '
                                 'echo "seen=$1" >> "$HERDER_OUTPUT"',
                     "x", "{{ steps.produce.outputs.rows }}"],
         "env": {"ROWS": "rows={{ steps.produce.outputs.rows }}"},
         "params": {"label": "n{{ steps.produce.outputs.rows }}"}},
        {"name": "job", "needs": ["cmd"], "job": consumer,
         "params": {"count": "{{ steps.cmd.outputs.seen }}"},
         "env": {"EXTRA": "{{ steps.produce.outputs.rows }}"}},
        {"name": "each", "needs": ["produce"], "foreach": "{{ steps.produce.outputs.files }}",
         "command": ["sh", "-c", f'echo "$1" >> {out / "each"}; echo "up=$1$1" >> '
                                 '"$HERDER_OUTPUT"', "x", "{{ item }}"]},
        {"name": "gather", "needs": ["each"],
         "command": ["sh", "-c", f'echo "$@" > {out / "gather"}', "x",
                     "{{ steps.each.outputs | length }}", "{{ steps.each.outputs[0].up }}",
                     "{{ steps.each.outputs[1].up }}", "{{ steps.each.outputs[2].up }}"]},
    ]
    run = wait_run(s, start(s, make(s, "outputs", steps)))
    assert run["status"] == "SUCCESS", run
    assert lines(out / "cmd") == ["42 rows=42 n42"]
    assert lines(out / "job") == ["42 42"]
    assert sorted(lines(out / "each")) == ["x", "y", "z"]
    assert lines(out / "gather") == ["3 xx yy zz"]  # the items' outputs, in item order
    each = nodes(s, run["id"])["each"]
    assert each["items"] == {"SUCCESS": 3} and each["status"] == "SUCCESS"
    assert each["ended"]
    assert sorted(r["item"] for r in each["runs"]) == [0, 1, 2]


def test_an_output_holding_a_template_is_text_and_shell_quote_holds(s: Server, out: Path) -> None:
    hostile = "{{ 7 * 7 }} $(touch " + str(out / "pwned") + ") 'a\" ; b `id`"
    # Written without braces in the command itself (a command is a template).
    produce = (json.dumps({"text": hostile}).replace("'", "'\\''").replace("{", "\\173")
               .replace("}", "\\175"))
    steps = [
        {"name": "produce", "command": f"printf '{produce}' > \"$HERDER_OUTPUT\""},
        {"name": "argv", "needs": ["produce"],
         "command": ["sh", "-c", f'printf %s "$1" > {out / "argv"}', "x",
                     "{{ steps.produce.outputs.text }}"]},
        {"name": "shell", "needs": ["produce"],
         "command": "printf %s {{ steps.produce.outputs.text | shell_quote }} > "
                    f"{out / 'shell'}"},
        {"name": "env", "needs": ["produce"], "env": {"V": "{{ steps.produce.outputs.text }}"},
         "command": f'printf %s "$V" > {out / "env"}'},
    ]
    run = wait_run(s, start(s, make(s, "hostile", steps)))
    assert run["status"] == "SUCCESS", (run, step_runs(s, run["id"]))
    for where in ("argv", "shell", "env"):
        assert (out / where).read_text() == hostile, where
    assert not (out / "pwned").exists()


def test_a_template_that_cannot_be_rendered_makes_the_step_proc_error(s: Server) -> None:
    steps = [
        {"name": "a", "command": "true"},
        {"name": "b", "needs": ["a"], "command": ["echo", "{{ steps.a.outputs.nothing }}"]},
        {"name": "c", "needs": ["a"], "env": {"X": "{{ steps.a.outputs.nothing }}"},
         "command": "true"},
    ]
    run = wait_run(s, start(s, make(s, "render", steps)))
    assert run["status"] == "FAILED"
    for step in ("b", "c"):
        [ran] = step_runs(s, run["id"], step)
        assert ran["status"] == "PROC_ERROR"
        assert "nothing" in ran["error"], ran["error"]
    assert "env.X" in step_runs(s, run["id"], "c")[0]["error"]


def test_an_empty_foreach_from_an_output_is_skipped(s: Server) -> None:
    steps = [
        {"name": "a", "command": "echo 'l=[]' >> \"$HERDER_OUTPUT\""},
        {"name": "each", "needs": ["a"], "foreach": "{{ steps.a.outputs.l }}",
         "command": ["echo", "{{ item }}"]},
        {"name": "after", "needs": [{"step": "each", "on": "always"}], "command": "true"},
    ]
    run = wait_run(s, start(s, make(s, "empty", steps)))
    assert run["status"] == "SUCCESS"
    got = nodes(s, run["id"])
    assert (got["each"]["status"], got["after"]["status"]) == ("SKIPPED", "SUCCESS")
    assert step_runs(s, run["id"], "each")[0]["error"] == "foreach: no items"


# Parallelism ----------------------------------------------------------------------------------


def busy(path: Path, seconds: float = 0.3) -> str:
    return f"echo + >> {path}; sleep {seconds}; echo - >> {path}"


def test_workflow_parallelism_is_never_exceeded(s: Server, out: Path) -> None:
    log = out / "busy"
    steps = [{"name": f"s{i}", "command": busy(log)} for i in range(6)]
    run = wait_run(s, start(s, make(s, "par", steps, parallelism=2)))
    assert run["status"] == "SUCCESS"
    assert len(lines(log)) == 12
    assert most_at_once(log) == 2


def test_foreach_parallelism_is_never_exceeded(s: Server, out: Path) -> None:
    log, whole = out / "items", out / "whole"
    steps = [
        {"name": "each", "foreach": list(range(7)), "parallelism": 3,
         "command": f"echo + >> {whole}; {busy(log)}; echo - >> {whole}"},
        {"name": "beside", "command": f"echo + >> {whole}; sleep 0.5; echo - >> {whole}"},
    ]
    run = wait_run(s, start(s, make(s, "fpar", steps, parallelism=3)))
    assert run["status"] == "SUCCESS"
    assert len(lines(log)) == 14
    assert most_at_once(log) <= 3
    assert most_at_once(whole) <= 3  # the workflow's limit counts items too


def test_approvals_take_no_slot(s: Server, out: Path) -> None:
    steps = [
        {"name": "ask", "approval": {"message": "go?"}},
        {"name": "work", "command": append(out / "work", "done")},
    ]
    run_id = start(s, make(s, "slot", steps, parallelism=1))
    run = wait_run(s, run_id, "ACTION_PENDING")
    assert lines(out / "work") == ["done"]
    assert nodes(s, run_id)["ask"]["message"] == "go?"
    answer = s.client.post(f"/api/v1/workflow-runs/{run_id}/steps/ask/approve")
    assert answer.status_code == 200, answer.text
    run = wait_run(s, run_id)
    assert run["status"] == "SUCCESS"


# Nesting --------------------------------------------------------------------------------------


def test_a_nested_workflow_is_waited_for_and_its_steps_are_its_runs(
    s: Server, out: Path
) -> None:
    child = make(s, "child", [
        {"name": "inner", "command": f"sleep 0.3; {append(out / 'inner', 'x')}"},
    ])
    parent = make(s, "parent", [
        {"name": "sub", "workflow": child},
        {"name": "after", "needs": ["sub"], "command": append(out / "after", "x")},
    ])
    run_id = start(s, parent)
    run = wait_run(s, run_id)
    assert run["status"] == "SUCCESS"
    graph = s.client.get(f"/api/v1/workflow-runs/{run_id}/graph").json()
    sub = next(n for n in graph["nodes"] if n["id"] == "sub")
    assert sub["kind"] == "workflow" and sub["status"] == "SUCCESS"
    child_run = detail(s, sub["child"])
    assert child_run["parent_run_id"] == run_id and child_run["parent_step"] == "sub"
    assert child_run["workflow"] == child and child_run["status"] == "SUCCESS"
    assert [r["step"] for r in step_runs(s, sub["child"])] == ["inner"]
    assert [r["step"] for r in step_runs(s, run_id)] == ["after"]
    # The parent went on after the child ended, not before.
    assert lines(out / "inner") == ["x"] and lines(out / "after") == ["x"]
    assert graph["edges"] == [{"from": "sub", "to": "after", "on": "success"}]


def test_a_failing_child_fails_its_step(s: Server) -> None:
    child = make(s, "badchild", [{"name": "inner", "command": "exit 9"}])
    parent = make(s, "badparent", [
        {"name": "sub", "workflow": child},
        {"name": "rescue", "needs": [{"step": "sub", "on": "failure"}], "command": "true"},
    ])
    run = wait_run(s, start(s, parent))
    got = nodes(s, run["id"])
    assert got["sub"]["status"] == "APP_ERROR" and got["rescue"]["status"] == "SUCCESS"
    assert run["status"] == "SUCCESS"  # handled
    assert detail(s, got["sub"]["child"])["status"] == "FAILED"


def test_cancelling_the_parent_cancels_the_child(s: Server) -> None:
    child = make(s, "longchild", [{"name": "inner", "command": ["sleep", "300"]}])
    parent = make(s, "longparent", [{"name": "sub", "workflow": child}])
    run_id = start(s, parent)
    child_id = wait_for(lambda: nodes(s, run_id)["sub"]["child"], what="the child run")
    wait_step(s, child_id, "inner", "RUNNING")
    answer = s.client.post(f"/api/v1/workflow-runs/{run_id}/cancel")
    assert answer.status_code == 200, answer.text
    assert wait_run(s, run_id)["status"] == "ABORTED"
    assert wait_run(s, child_id)["status"] == "ABORTED"
    assert step_runs(s, child_id, "inner")[0]["status"] == "ABORTED"


# Controls -------------------------------------------------------------------------------------


def control(s: Server, run_id: int, action: str, step: str | None = None) -> Any:
    path = f"/api/v1/workflow-runs/{run_id}/" + (f"steps/{step}/{action}" if step else action)
    return s.client.post(path)


def test_pause_lets_running_steps_finish_and_starts_none(s: Server, out: Path) -> None:
    steps = [
        {"name": "a", "command": f"{gate(out / 'go')}; {append(out / 'ran', 'a')}"},
        {"name": "b", "needs": ["a"], "command": append(out / "ran", "b")},
    ]
    run_id = start(s, make(s, "pause", steps))
    wait_step(s, run_id, "a", "RUNNING")
    answer = control(s, run_id, "pause")
    assert answer.status_code == 200 and answer.json()["status"] == "PAUSED"
    assert answer.json()["paused_at"] is not None
    (out / "go").touch()
    wait_step(s, run_id, "a", "SUCCESS")
    # a's end was decided while paused: b was not started, and is not later either.
    assert detail(s, run_id)["status"] == "PAUSED"
    assert step_runs(s, run_id, "b") == []
    error = error_of(control(s, run_id, "rerun"), 409)
    assert "PAUSED" in error["message"]
    answer = control(s, run_id, "resume")
    assert answer.status_code == 200 and answer.json()["paused_at"] is None
    assert wait_run(s, run_id)["status"] == "SUCCESS"
    assert lines(out / "ran") == ["a", "b"]


def test_cancel_stops_running_steps_and_aborts_waiting_ones(s: Server, out: Path) -> None:
    queued = name("queued")
    s.create_job(name=queued, command=gate(out / "free"), concurrency="queue", max_active=1)
    blocker = s.run(queued)["id"]
    s.wait_status(blocker, "RUNNING")
    steps = [
        # Ignores SIGTERM a while, so that CANCELLING can be seen.
        {"name": "running", "command": f"trap 'echo term >> {out / 'term'}' TERM; "
                                       "for i in $(seq 100); do sleep 0.1; done"},
        {"name": "waiting", "job": queued},
        {"name": "never", "needs": ["running"], "command": append(out / "never", "x")},
    ]
    run_id = start(s, make(s, "cancel", steps))
    wait_step(s, run_id, "running", "RUNNING")
    wait_step(s, run_id, "waiting", "WAITING")
    answer = control(s, run_id, "cancel")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "CANCELLING"
    assert answer.json()["cancel_requested_at"] is not None
    run = wait_run(s, run_id)
    assert run["status"] == "ABORTED" and run["reason"] == "cancelled"
    got = {r["step"]: r for r in step_runs(s, run_id)}
    assert got["running"]["status"] == "ABORTED"
    assert got["waiting"]["status"] == "ABORTED"
    assert "never" not in got and lines(out / "never") == []
    assert lines(out / "term") == ["term"]
    (out / "free").touch()
    assert s.wait_end(blocker)["status"] == "SUCCESS"
    error = error_of(control(s, run_id, "pause"), 409)
    assert "ABORTED" in error["message"]


def test_skip_a_pending_step_and_not_a_running_one(s: Server, out: Path) -> None:
    steps = [
        {"name": "a", "command": gate(out / "go")},
        {"name": "b", "needs": ["a"], "command": append(out / "b", "x")},
        {"name": "c", "needs": ["b"], "command": append(out / "c", "x")},
        {"name": "d", "needs": [{"step": "b", "on": "always"}], "command": append(out / "d", "x")},
        {"name": "each", "foreach": [1, 2], "command": "true"},
    ]
    run_id = start(s, make(s, "skip", steps))
    wait_step(s, run_id, "a", "RUNNING")
    wait_for(lambda: nodes(s, run_id)["each"]["ended"], what="the foreach step to end")
    error = error_of(control(s, run_id, "skip", "each"), 409)
    assert error["message"].startswith("step 'each' is SUCCESS;"), error
    error = error_of(control(s, run_id, "skip", "a"), 409)
    assert error["message"] == ("step 'a' is RUNNING; only a step that has not started running "
                                "can be skipped")
    answer = control(s, run_id, "skip", "b")
    assert answer.status_code == 200, answer.text
    [b] = step_runs(s, run_id, "b")
    assert b["status"] == "SKIPPED" and b["error"] == "skipped by anonymous"
    (out / "go").touch()
    assert wait_run(s, run_id)["status"] == "SUCCESS"
    assert step_runs(s, run_id, "c")[0]["status"] == "SKIPPED"
    assert lines(out / "b") == [] and lines(out / "c") == [] and lines(out / "d") == ["x"]


def test_retry_a_failed_step_goes_on_also_from_failed(s: Server, out: Path) -> None:
    flag = out / "fixed"
    steps = [
        {"name": "a", "command": f"{append(out / 'a', 'x')}; test -e {flag}"},
        {"name": "b", "needs": ["a"], "command": append(out / "b", "x")},
        {"name": "c", "needs": ["b"], "command": append(out / "c", "x")},
        {"name": "side", "command": append(out / "side", "x")},
    ]
    run_id = start(s, make(s, "retry", steps))
    run = wait_run(s, run_id)
    assert run["status"] == "FAILED"
    assert nodes(s, run_id)["b"]["status"] == "SKIPPED"
    error = error_of(control(s, run_id, "retry", "side"), 409)
    assert "only a failed step can be retried" in error["message"]
    flag.touch()
    answer = control(s, run_id, "retry", "a")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "RUNNING"
    run = wait_run(s, run_id)
    assert run["status"] == "SUCCESS" and run["reason"] == ""
    assert [(r["attempt"], r["status"]) for r in step_runs(s, run_id, "a")] == [
        (1, "APP_ERROR"), (2, "SUCCESS")]
    assert [r["status"] for r in step_runs(s, run_id, "b")] == ["SKIPPED", "SUCCESS"]
    assert lines(out / "a") == ["x", "x"] and lines(out / "c") == ["x"]
    assert lines(out / "side") == ["x"]  # a step that had succeeded is not run again
    got = nodes(s, run_id)
    assert got["a"]["attempt"] == 2 and got["c"]["status"] == "SUCCESS"


def test_retry_is_refused_while_on_failure_steps_run(s: Server, out: Path) -> None:
    steps = [{"name": "a", "command": f"test -e {out / 'fixed'}"}]
    ref = make(s, "failing", steps, on_failure=[{"name": "page", "command": gate(out / "go")}])
    run_id = start(s, ref)
    wait_step(s, run_id, "page", "RUNNING")
    assert detail(s, run_id)["status"] == "FAILING"
    (out / "fixed").touch()
    error = error_of(control(s, run_id, "retry", "a"), 409)
    assert "on_failure steps are running" in error["message"]
    (out / "go").touch()
    assert wait_run(s, run_id)["status"] == "FAILED"
    assert control(s, run_id, "retry", "a").status_code == 200
    assert wait_run(s, run_id)["status"] == "SUCCESS"
    assert [r["status"] for r in step_runs(s, run_id, "page")] == ["SUCCESS"]


def test_rerun_from_failed_reuses_what_succeeded(s: Server, out: Path) -> None:
    flag = out / "fixed"
    steps = [
        {"name": "a", "command": f"{append(out / 'a', 'x')}; echo v=$$ >> \"$HERDER_OUTPUT\""},
        {"name": "b", "needs": ["a"],
         "command": ["sh", "-c", f'echo "$1" >> {out / "b"}; test -e {flag}', "x",
                     "{{ steps.a.outputs.v }}"]},
        {"name": "c", "needs": ["b"], "command": append(out / "c", "x")},
    ]
    first = start(s, make(s, "rerun", steps))
    assert wait_run(s, first)["status"] == "FAILED"
    value = step_runs(s, first, "a")[0]["outputs"]["v"]
    flag.touch()
    answer = control(s, first, "rerun")
    assert answer.status_code == 200, answer.text
    again = answer.json()
    assert again["id"] != first and again["rerun_of"] == first
    run = wait_run(s, again["id"])
    assert run["status"] == "SUCCESS"
    assert lines(out / "a") == ["x"]  # not run again
    assert lines(out / "b") == [value, value]  # the kept output was used
    assert lines(out / "c") == ["x"]
    assert detail(s, first)["status"] == "FAILED"  # the first run stays as it was
    got = nodes(s, again["id"])
    assert got["a"]["status"] == "SUCCESS" and got["b"]["attempt"] == 2
    error = error_of(control(s, again["id"], "rerun"), 409)
    assert "no failed step" in error["message"]


def test_approve_and_reject_record_who_and_when(s: Server, out: Path) -> None:
    steps = [
        {"name": "ask", "approval": {"message": "ship?"}},
        {"name": "ship", "needs": ["ask"], "command": append(out / "ship", "x")},
    ]
    ref = make(s, "approve", steps)
    ok = start(s, ref)
    assert wait_run(s, ok, "ACTION_PENDING")["status"] == "ACTION_PENDING"
    assert control(s, ok, "approve", "ask").status_code == 200
    assert wait_run(s, ok)["status"] == "SUCCESS"
    [ask] = step_runs(s, ok, "ask")
    assert ask["status"] == "SUCCESS" and ask["decided_by"] == "anonymous"
    assert ask["decided_at"] is not None
    error = error_of(control(s, ok, "approve", "ask"), 409)
    assert "ended" in error["message"]

    no = start(s, ref)
    wait_run(s, no, "ACTION_PENDING")
    error = error_of(control(s, no, "approve", "ship"), 409)
    assert "not an approval" in error["message"]
    assert control(s, no, "reject", "ask").status_code == 200
    run = wait_run(s, no)
    assert (run["status"], run["reason"]) == ("FAILED", "step 'ask' failed")
    [ask] = step_runs(s, no, "ask")
    assert ask["status"] == "ABORTED" and ask["error"] == "rejected by anonymous"
    assert ask["decided_by"] == "anonymous" and ask["decided_at"] is not None
    assert step_runs(s, no, "ship")[0]["status"] == "SKIPPED"
    assert lines(out / "ship") == ["x"]


def test_approve_through_the_runs_api_and_retry_refused_there(s: Server) -> None:
    run_id = start(s, make(s, "runsapi", [{"name": "ask", "approval": True},
                                          {"name": "fail", "command": "exit 1"}]))
    ask = wait_step(s, run_id, "ask", "ACTION_PENDING")
    answer = s.client.post(f"/api/v1/runs/{ask['id']}/approve")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "SUCCESS" and answer.json()["decided_by"] == "anonymous"
    assert wait_run(s, run_id)["status"] == "FAILED"
    failed = step_runs(s, run_id, "fail")[0]
    error = error_of(s.client.post(f"/api/v1/runs/{failed['id']}/retry"), 409)
    assert f"/api/v1/workflow-runs/{run_id}/steps/fail/retry" in error["message"]


def test_an_approval_nobody_answers_times_out(s: Server) -> None:
    steps = [{"name": "ask", "approval": True, "timeout": 1},
             {"name": "late", "needs": [{"step": "ask", "on": "failure"}], "command": "true"}]
    run = wait_run(s, start(s, make(s, "timeout", steps)))
    assert run["status"] == "SUCCESS"
    ask = step_runs(s, run["id"], "ask")[0]
    assert ask["status"] == "TIMEOUT" and ask["decided_by"] is None


# Retries --------------------------------------------------------------------------------------


def test_step_retries_happen_once_per_attempt(s: Server, out: Path) -> None:
    job = name("flaky")
    s.create_job(name=job, command=f"{append(out / 'job', 'x')}; exit 1",
                 retries={"limit": 1, "backoff": "0s"})
    steps = [
        {"name": "cmd", "command": f"{append(out / 'cmd', 'x')}; exit 1",
         "retries": {"limit": 2, "backoff": "0s"}},
        {"name": "job", "job": job},
    ]
    run = wait_run(s, start(s, make(s, "retries", steps)))
    assert run["status"] == "FAILED"
    assert lines(out / "cmd") == ["x"] * 3
    assert lines(out / "job") == ["x"] * 2
    assert [r["attempt"] for r in step_runs(s, run["id"], "cmd")] == [1, 2, 3]
    assert [r["attempt"] for r in step_runs(s, run["id"], "job")] == [1, 2]
    # No run of the job outside the workflow (admission did not retry it too).
    every = s.client.get("/api/v1/runs", params={"job": job}).json()["items"]
    assert len(every) == 2 and all(r["workflow_run"] == run["id"] for r in every)
    assert nodes(s, run["id"])["cmd"]["attempt"] == 3


# Bad input ------------------------------------------------------------------------------------


def test_bad_input_answers_with_the_error_body(s: Server) -> None:
    error = error_of(s.client.get("/api/v1/workflow-runs/999999"), 404)
    assert error["message"] == "no workflow run with id 999999"
    error_of(s.client.post("/api/v1/workflow-runs/999999/pause"), 404)
    ref = make(s, "bad", [{"name": "one", "command": "true"}, {"name": "two", "command": "true"}],
               params={"region": "eu"})
    error = error_of(s.client.post(f"/api/v1/workflows/{ref}/runs",
                                   json={"params": {"regoin": "x"}}), 422)
    assert "regoin" in error["message"]
    run_id = start(s, ref, region="us")
    assert detail(s, run_id)["params"] == {"region": "us"}
    error = error_of(control(s, run_id, "skip", "three"), 404)
    assert "'three'" in error["message"] and "one, two" in error["message"]
    wait_run(s, run_id)
    error = error_of(control(s, run_id, "pause"), 409)
    assert "has ended (SUCCESS)" in error["message"]
    assert error["details"] == {"status": "SUCCESS"}
    error_of(s.client.post(f"/api/v1/workflow-runs/{run_id}/frobnicate"), 422)
    error_of(s.client.get("/api/v1/workflow-runs", params={"status": "NOPE"}), 422)
    listed = s.client.get("/api/v1/workflow-runs", params={"workflow": ref}).json()
    assert [r["id"] for r in listed["items"]] == [run_id]
