"""``herder workflow run|runs|show --run|pause|resume|cancel|rerun|skip|retry|approve|reject``
against a real server: exit codes a script can trust, the tree's content, ``--watch`` ending
with the run, and every control changing what the API then reports."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Server, wait_for

pytestmark = pytest.mark.acceptance
API = "/api/v1/workflow-runs"
_names = count()


@pytest.fixture(autouse=True)
def wide(shared_server: Server) -> None:
    """Trees are checked line by line: draw them wide enough not to wrap."""
    shared_server.env["COLUMNS"] = "200"


def workflow(server: Server, *steps: dict[str, Any], **spec: Any) -> str:
    """Create a workflow in a namespace of its own; answer its ref."""
    ref = f"wfcli{next(_names)}/w"
    namespace, name = ref.split("/")
    response = server.client.post("/api/v1/workflows", json={
        "name": name, "namespace": namespace, "steps": list(steps), **spec})
    assert response.status_code == 201, response.text
    return ref


def start(server: Server, ref: str) -> int:
    response = server.client.post(f"/api/v1/workflows/{ref}/runs", json={})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def get(server: Server, run_id: int) -> dict[str, Any]:
    response = server.client.get(f"{API}/{run_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def step(server: Server, run_id: int, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in get(server, run_id)["steps"] if s["id"] == name)
    return found


def reaches(server: Server, run_id: int, *statuses: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: (run := get(server, run_id))["status"] in statuses and run,
        what=f"workflow run {run_id} to reach {statuses}")
    return found


def step_reaches(server: Server, run_id: int, name: str, *statuses: str) -> None:
    wait_for(lambda: step(server, run_id, name)["status"] in statuses,
             what=f"step {name} of {run_id} to reach {statuses}")


def test_run_prints_the_id_and_wait_exits_0_on_success_1_on_failure(
    shared_server: Server
) -> None:
    good = workflow(shared_server, {"name": "a", "command": "true"},
                    {"name": "b", "command": ["echo", "{{ params.word }}"], "needs": ["a"]},
                    params={"word": "x"})
    started = shared_server.cli("workflow", "run", good, "-p", "word=y")
    assert started.returncode == 0, started.stderr
    run_id = int(started.stdout)
    assert get(shared_server, run_id)["params"] == {"word": "y"}
    assert reaches(shared_server, run_id, "SUCCESS")

    waited = shared_server.cli("workflow", "run", good, "--wait")
    assert waited.returncode == 0, waited.stderr
    assert f"{good} SUCCESS after" in waited.stdout

    as_json = shared_server.cli("workflow", "run", good, "--wait", "-o", "json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["status"] == "SUCCESS"

    bad = workflow(shared_server, {"name": "a", "command": "true"},
                   {"name": "boom", "command": "exit 3", "needs": ["a"]})
    failed = shared_server.cli("workflow", "run", bad, "--wait")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"{bad} FAILED after" in failed.stdout

    refused = shared_server.cli("workflow", "run", good, "-p", "nope=1")
    assert refused.returncode == 1 and "nope" in refused.stderr
    missing = shared_server.cli("workflow", "run", "wfcli-none/w")
    assert missing.returncode == 1
    assert "no workflow with name wfcli-none/w" in missing.stderr


def test_runs_lists_newest_first_filters_and_pages(shared_server: Server) -> None:
    ref = workflow(shared_server, {"name": "a", "command": "true"})
    first, second = start(shared_server, ref), start(shared_server, ref)
    for run_id in (first, second):
        reaches(shared_server, run_id, "SUCCESS")
    listed = shared_server.cli("workflow", "runs", ref)
    assert listed.returncode == 0, listed.stderr
    lines = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [(int(line[0]), line[2]) for line in lines] == [(second, "SUCCESS"),
                                                           (first, "SUCCESS")]
    namespace = ref.split("/")[0]
    by_json = json.loads(shared_server.cli("workflow", "runs", "-n", namespace,
                                           "--status", "success", "-o", "json").stdout)
    assert [r["id"] for r in by_json["items"]] == [second, first]
    assert shared_server.cli("workflow", "runs", ref, "-s", "FAILED").stderr.strip() == (
        "no workflow runs found")
    paged = shared_server.cli("workflow", "runs", ref, "--limit", "1")
    assert len(paged.stdout.splitlines()) == 2
    assert "more workflow runs exist: add --all" in paged.stderr
    every = shared_server.cli("workflow", "runs", ref, "--limit", "1", "--all", "-o", "json")
    assert [r["id"] for r in json.loads(every.stdout)["items"]] == [second, first]

    unknown = shared_server.cli("workflow", "runs", "wfcli-none/w")
    assert unknown.returncode == 1 and "no workflow with name wfcli-none/w" in unknown.stderr
    bad_status = shared_server.cli("workflow", "runs", "-s", "SLEEPY")
    assert bad_status.returncode == 1
    assert "unknown workflow run status 'SLEEPY'" in bad_status.stderr


def test_show_run_draws_the_tree(shared_server: Server) -> None:
    inner = workflow(shared_server, {"name": "upload", "command": "true"})
    ref = workflow(
        shared_server,
        {"name": "extract", "command": "true"},
        {"name": "each", "foreach": ["x", "y", "z"], "command": "echo {{ item | shell_quote }}",
         "needs": ["extract"]},
        {"name": "boom", "command": "exit 3", "needs": ["extract"]},
        {"name": "mop", "command": "true", "needs": [{"step": "boom", "on": "failure"}]},
        {"name": "ship", "approval": {"message": "Publish today's numbers?"},
         "needs": ["each"]},
        {"name": "nested", "workflow": inner, "needs": ["ship"]},
    )
    run_id = start(shared_server, ref)
    step_reaches(shared_server, run_id, "ship", "ACTION_PENDING")
    step_reaches(shared_server, run_id, "mop", "SUCCESS")

    shown = shared_server.cli("workflow", "show", "--run", str(run_id))
    assert shown.returncode == 0, shown.stderr
    runs = {s["id"]: s["runs"] for s in get(shared_server, run_id)["steps"]}
    out = shown.stdout
    assert out.startswith(f"workflow run {run_id} {ref} ACTION_PENDING for ")
    assert f"└── extract  SUCCESS  run {runs['extract'][0]['id']}" in out
    assert "each  SUCCESS  items: 3 SUCCESS" in out
    assert f"item 2  SUCCESS  run {runs['each'][2]['id']}" in out
    assert f"boom  APP_ERROR  run {runs['boom'][0]['id']}" in out
    assert f"mop (on failure)  SUCCESS  run {runs['mop'][0]['id']}" in out
    assert (f"ship  ACTION_PENDING  run {runs['ship'][0]['id']}") in out
    assert "approval: Publish today's numbers?" in out
    assert f"(herder workflow approve {run_id} ship)" in out
    assert "nested  not started" in out

    graph = json.loads(shared_server.cli("workflow", "show", "--run", str(run_id),
                                         "-o", "json").stdout)
    assert graph["run"]["id"] == run_id and {"nodes", "edges"} <= set(graph)

    approved = shared_server.cli("workflow", "approve", str(run_id), "ship")
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith("step ship SUCCESS\n")
    done = reaches(shared_server, run_id, "SUCCESS", "FAILED")
    child = step(shared_server, run_id, "nested")["child"]
    nested = shared_server.cli("workflow", "show", "-r", str(run_id)).stdout
    assert f"workflow run {child} {inner} SUCCESS" in nested, nested
    assert "upload  SUCCESS  run " in nested
    assert done["status"] == "SUCCESS"  # the failure of boom is handled by mop


def watch(server: Server, run_id: int, out: Path) -> subprocess.Popen[bytes]:
    """``show --run ID --watch`` in the background, its stdout (no terminal) in ``out``."""
    with out.open("wb") as stdout:
        return subprocess.Popen(
            [sys.executable, "-m", "herder", "workflow", "show", "--run", str(run_id),
             "--watch"],
            env=server.env | {"HERDER_URL": server.url}, stdout=stdout,
            stderr=subprocess.DEVNULL,
        )


def test_watch_prints_a_tree_per_change_and_ends_with_the_run(
    shared_server: Server, tmp_path: Path
) -> None:
    ref = workflow(shared_server, {"name": "gate", "approval": True},
                   {"name": "after", "command": "true", "needs": ["gate"]})
    run_id = start(shared_server, ref)
    step_reaches(shared_server, run_id, "gate", "ACTION_PENDING")
    out = tmp_path / "watch.txt"
    watcher = watch(shared_server, run_id, out)
    try:
        wait_for(lambda: "ACTION_PENDING" in out.read_text(), what="the first tree")
        assert watcher.poll() is None  # still watching while the run waits
        assert shared_server.cli("workflow", "approve", str(run_id), "gate").returncode == 0
        assert watcher.wait(timeout=30) == 0
    finally:
        watcher.kill()
        watcher.wait()
    text = out.read_text()
    trees = text.split("\n\n")
    assert trees[0].startswith(f"workflow run {run_id} {ref} ACTION_PENDING"), text
    assert trees[-1].startswith(f"workflow run {run_id} {ref} SUCCESS"), text
    assert "after  SUCCESS  run " in trees[-1]
    assert len(trees) == len(set(trees)), "a tree is printed only when something changed"

    failing = workflow(shared_server, {"name": "boom", "command": "exit 4"})
    failed = start(shared_server, failing)
    ended = shared_server.cli("workflow", "show", "--run", str(failed), "--watch")
    assert ended.returncode == 1, ended.stdout + ended.stderr
    assert f"workflow run {failed} {failing} FAILED" in ended.stdout
    as_json = shared_server.cli("workflow", "show", "--run", str(failed), "--watch", "-o",
                                "json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["run"]["status"] == "FAILED"


def test_pause_resume_cancel(shared_server: Server, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    ref = workflow(shared_server,
                   {"name": "wait", "command": f"while [ ! -e {flag} ]; do sleep 0.05; done"},
                   {"name": "next", "command": "true", "needs": ["wait"]})
    run_id = start(shared_server, ref)
    paused = shared_server.cli("workflow", "pause", str(run_id))
    assert paused.returncode == 0, paused.stderr
    assert f"workflow run {run_id} {ref} PAUSED" in paused.stdout
    assert get(shared_server, run_id)["paused_at"] is not None
    flag.touch()
    step_reaches(shared_server, run_id, "wait", "SUCCESS")
    assert step(shared_server, run_id, "next")["status"] is None  # nothing starts while paused
    resumed = shared_server.cli("workflow", "resume", str(run_id))
    assert resumed.returncode == 0 and "PAUSED" not in resumed.stdout, resumed.stdout
    reaches(shared_server, run_id, "SUCCESS")

    long = workflow(shared_server, {"name": "sleep", "command": "sleep 60"})
    long_id = start(shared_server, long)
    step_reaches(shared_server, long_id, "sleep", "RUNNING")
    cancelled = shared_server.cli("workflow", "cancel", str(long_id))
    assert cancelled.returncode == 0, cancelled.stderr
    assert any(s in cancelled.stdout for s in ("CANCELLING", "ABORTED")), cancelled.stdout
    reaches(shared_server, long_id, "ABORTED")
    again = shared_server.cli("workflow", "pause", str(long_id))
    assert again.returncode == 1 and again.stderr.startswith("error: "), again.stderr


def test_retry_a_failed_step_then_rerun(shared_server: Server, tmp_path: Path) -> None:
    flag = tmp_path / "ok"
    ref = workflow(shared_server, {"name": "flaky", "command": f"test -e {flag}"})
    run_id = start(shared_server, ref)
    reaches(shared_server, run_id, "FAILED")
    flag.touch()
    retried = shared_server.cli("workflow", "retry", str(run_id), "flaky")
    assert retried.returncode == 0, retried.stderr
    reaches(shared_server, run_id, "SUCCESS")
    assert step(shared_server, run_id, "flaky")["attempt"] == 2
    shown = shared_server.cli("workflow", "show", "--run", str(run_id)).stdout
    assert "flaky  SUCCESS  attempt 2  run " in shown, shown

    flag.unlink()
    failed = start(shared_server, ref)
    reaches(shared_server, failed, "FAILED")
    flag.touch()
    rerun = shared_server.cli("workflow", "rerun", str(failed))
    assert rerun.returncode == 0, rerun.stderr
    assert f"(rerun of {failed})" in rerun.stdout
    new_id = int(rerun.stdout.split()[2])
    assert new_id != failed and get(shared_server, new_id)["rerun_of"] == failed
    reaches(shared_server, new_id, "SUCCESS")
    listed = shared_server.cli("workflow", "runs", ref).stdout
    assert f"rerun of {failed}" in listed


def test_skip_approve_reject_and_the_top_level_approve(shared_server: Server) -> None:
    ref = workflow(shared_server, {"name": "gate", "approval": {"message": "go?"}},
                   {"name": "later", "command": "true", "needs": ["gate"]},
                   {"name": "last", "command": "true", "needs": [{"step": "later",
                                                                  "on": "always"}]})
    run_id = start(shared_server, ref)
    step_reaches(shared_server, run_id, "gate", "ACTION_PENDING")
    skipped = shared_server.cli("workflow", "skip", str(run_id), "later")
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stdout.startswith("step later SKIPPED\n")
    assert step(shared_server, run_id, "later")["status"] == "SKIPPED"
    rejected = shared_server.cli("workflow", "reject", str(run_id), "gate")
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.startswith("step gate ABORTED\n")
    assert reaches(shared_server, run_id, "FAILED")

    other = start(shared_server, ref)
    step_reaches(shared_server, other, "gate", "ACTION_PENDING")
    gate_run = step(shared_server, other, "gate")["runs"][0]["id"]
    approved = shared_server.cli("approve", str(gate_run))
    assert approved.returncode == 0, approved.stderr
    assert f"(step gate of workflow run {other})" in approved.stdout
    reaches(shared_server, other, "SUCCESS")


def test_errors_say_what_is_wrong(shared_server: Server) -> None:
    ref = workflow(shared_server, {"name": "a", "command": "true"},
                   {"name": "gate", "approval": True, "needs": ["a"]})
    run_id = start(shared_server, ref)
    step_reaches(shared_server, run_id, "gate", "ACTION_PENDING")
    for args in (("show", "--run", "999999"), ("show", "--run", "999999", "--watch"),
                 ("pause", "999999"), ("approve", "999999", "a")):
        result = shared_server.cli("workflow", *args)
        assert result.returncode == 1, args
        assert "no workflow run with id 999999" in result.stderr, result.stderr
    nope = shared_server.cli("workflow", "skip", str(run_id), "nope")
    assert nope.returncode == 1
    assert f"workflow run {run_id} has no step 'nope'; its steps: a, gate" in nope.stderr
    wrong = shared_server.cli("workflow", "approve", str(run_id), "a")
    assert wrong.returncode == 1 and "step 'a' is a command step, not an approval" in wrong.stderr
    unended = shared_server.cli("workflow", "rerun", str(run_id))
    assert unended.returncode == 1
    assert f"workflow run {run_id} is still ACTION_PENDING" in unended.stderr

    missing = shared_server.cli("workflow", "show", str(run_id + 100000))
    assert missing.returncode == 1
    assert "to show a workflow run, give its id as --run ID" in missing.stderr
    both = shared_server.cli("workflow", "show", ref, "--run", str(run_id))
    assert both.returncode == 2
    assert shared_server.cli("workflow", "show", ref, "--watch").returncode == 2
    assert shared_server.cli("workflow", "cancel", str(run_id)).returncode == 0
    reaches(shared_server, run_id, "ABORTED")
    ended = shared_server.cli("workflow", "skip", str(run_id), "gate")
    assert ended.returncode == 1 and "has ended" in ended.stderr
