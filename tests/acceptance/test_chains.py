"""Job chains against a real server and real processes: ``after: [{job, on}]``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.acceptance.conftest import short_dir
from tests.servers import Server, wait_for

pytestmark = pytest.mark.acceptance


def chained(s: Server, job: str, count: int = 1, timeout: float = 20) -> list[dict[str, Any]]:
    """Wait for ``count`` chained runs of ``job`` to exist; answers them, oldest first."""

    def found() -> list[dict[str, Any]] | None:
        items = s.client.get("/api/v1/runs", params={"job": job, "trigger": "chain"}).json()
        runs: list[dict[str, Any]] = items["items"]
        return sorted(runs, key=lambda r: r["id"]) if len(runs) >= count else None

    result: list[dict[str, Any]] = wait_for(found, timeout=timeout,
                                            what=f"{count} chained run(s) of {job}")
    return result


def runs_of(s: Server, job: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = s.client.get("/api/v1/runs", params={"job": job}).json()["items"]
    return items


def test_outputs_reach_the_followers_params_templates_and_env(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="extract", command='echo "rows=42" >> "$HERDER_OUTPUT"; echo day=tue '
                 '>> "$HERDER_OUTPUT"')
    s.create_job(
        name="load", after=["extract"], params={"rows": "0", "day": "mon", "mode": "full"},
        command=["sh", "-c", 'echo "$HERDER_PARAM_ROWS $HERDER_PARAM_DAY $HERDER_PARAM_MODE '
                 '$HERDER_UPSTREAM_RUN $1 $2 $3"', "sh", "{{ upstream.outputs.rows }}",
                 "{{ upstream.status }}", "{{ upstream.job }}#{{ upstream.id }}"],
    )
    up = s.run("extract")
    assert s.wait_end(up["id"])["status"] == "SUCCESS"
    (load,) = chained(s, "default/load")
    assert load["upstream_run"] == up["id"] and load["params"]["rows"] == "42"
    assert s.wait_end(load["id"])["status"] == "SUCCESS"
    assert s.log(load["id"]) == (
        f"42 tue full {up['id']} 42 SUCCESS default/extract#{up['id']}\n"
    )
    # Run on its own, the follower sees an empty upstream: a default covers it.
    s.create_job(name="load-alone", after=["extract"],
                 command=["echo", "{{ upstream.outputs.rows | default('none') }}"])
    alone = s.run("load-alone")
    assert s.wait_end(alone["id"])["status"] == "SUCCESS"
    assert s.log(alone["id"]) == "none\n" and alone["upstream_run"] is None


def test_each_condition_with_real_processes(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="flaky", command='exit "$HERDER_PARAM_CODE"', params={"code": 0})
    for on in ("success", "failure", "always"):
        s.create_job(name=f"after-{on}", after=[{"job": "flaky", "on": on}], command=["true"])
    ok = s.run("flaky")
    s.wait_end(ok["id"])
    wait_for(lambda: len(runs_of(s, "default/after-always")) == 1, what="after-always")
    failed = s.run("flaky", params={"code": 3})
    assert s.wait_end(failed["id"])["status"] == "APP_ERROR"
    always = chained(s, "default/after-always", 2)
    assert [r["upstream_run"] for r in always] == [ok["id"], failed["id"]]
    assert [r["upstream_run"] for r in chained(s, "default/after-success")] == [ok["id"]]
    assert [r["upstream_run"] for r in chained(s, "default/after-failure")] == [failed["id"]]
    # A timeout is a failure too.
    s.create_job(name="slow", command=["sleep", "30"], timeout="1s")
    s.create_job(name="after-slow", after=[{"job": "slow", "on": "failure"}], command=["true"])
    slow = s.run("slow")
    assert s.wait_end(slow["id"])["status"] == "TIMEOUT"
    assert chained(s, "default/after-slow")[0]["upstream_run"] == slow["id"]
    for name in ("after-success", "after-failure", "after-always", "after-slow"):
        for run in runs_of(s, f"default/{name}"):
            s.wait_end(run["id"])
    assert len(runs_of(s, "default/after-success")) == 1  # nothing more came meanwhile


def test_a_retried_upstream_starts_the_follower_after_its_last_attempt(
    shared_server: Server,
) -> None:
    s = shared_server
    s.create_job(name="retried", command="exit 1", retries={"limit": 2, "backoff": "0.2s"})
    s.create_job(name="after-retried", after=[{"job": "retried", "on": "always"}],
                 command=["true"])
    first = s.run("retried")
    last = wait_for(
        lambda: next((r for r in runs_of(s, "default/retried")
                      if r["attempt"] == 3 and r["status"] == "APP_ERROR"), None),
        what="the third attempt to fail",
    )
    (follower,) = chained(s, "default/after-retried")
    assert follower["upstream_run"] == last["id"] != first["id"]
    s.wait_end(follower["id"])
    assert len(runs_of(s, "default/after-retried")) == 1


def test_forbid_on_the_follower(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="quick", command=["true"])
    s.create_job(name="busy", after=["quick"], command=["sleep", "30"], concurrency="forbid")
    blocking = s.run("busy")
    s.wait_status(blocking["id"], "RUNNING")
    up = s.run("quick")
    s.wait_end(up["id"])
    (skipped,) = chained(s, "default/busy")
    assert skipped["status"] == "SKIPPED" and f"run {blocking['id']}" in skipped["error"]
    assert s.client.post(f"/api/v1/runs/{blocking['id']}/cancel", json={"force": True}).is_success
    s.wait_end(blocking["id"])


def test_a_chain_of_three(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="one", command='echo "n=1" >> "$HERDER_OUTPUT"')
    s.create_job(name="two", after=["one"], params={"n": 0},
                 command='echo "n=$((HERDER_PARAM_N + 1))" >> "$HERDER_OUTPUT"')
    s.create_job(name="three", after=["two"], params={"n": 0}, command='echo "$HERDER_PARAM_N"')
    s.run("one")
    (three,) = chained(s, "default/three")
    assert s.wait_end(three["id"])["status"] == "SUCCESS"
    assert s.log(three["id"]) == "2\n"


def test_refusals_on_save_name_the_path(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="src-job", command=["true"])
    s.create_job(name="mid-job", after=["src-job"], command=["true"])
    cases = [
        ({"after": [{"job": "src-job", "on": "sometimes"}]},
         "after[0].on: 'sometimes' is not one of success, failure, always"),
        ({"after": ["src-job", {"job": "default/src-job"}]},
         "after[1].job: default/src-job is followed already (after[0])"),
        ({"after": ["new-job"]}, "after[0].job: a job cannot follow itself (default/new-job)"),
        ({"after": ["src-jbo"]}, "after[0].job: no job default/src-jbo (did you mean 'src-job'?)"),
        ({"command": ["echo", "{{ upstream.id }}"]}, "'upstream' is known only to a job that"),
    ]
    for body, message in cases:
        answer = s.client.post("/api/v1/jobs", json={"name": "new-job", "command": ["true"],
                                                     **body})
        assert answer.status_code == 422, answer.text
        assert message in answer.json()["error"]["message"], answer.text
    cycle = s.client.put("/api/v1/jobs/src-job", json={"name": "src-job", "command": ["true"],
                                                       "after": ["mid-job"]})
    assert cycle.status_code == 422
    assert cycle.json()["error"]["message"].startswith(
        "after: cycle: src-job -> mid-job -> src-job"
    )
    gone = s.client.delete("/api/v1/jobs/src-job")
    assert gone.status_code == 409
    assert "followed (after:) by job default/mid-job" in gone.json()["error"]["message"]
    assert s.client.get("/api/v1/jobs/src-job/followers").json() == [
        {"job": "default/mid-job", "on": "success"}
    ]


def test_cli_create_show_apply_and_export(shared_server: Server, tmp_path: Path) -> None:
    s = shared_server
    made = s.cli("job", "create", "cli-up", "-n", "chains-cli", "--", "true")
    assert made.returncode == 0, made.stderr
    made = s.cli("job", "create", "cli-down", "-n", "chains-cli", "--after", "cli-up:failure",
                 "--after", "default/src-job", "-o", "json", "--", "true")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["after"] == [
        {"job": "cli-up", "on": "failure"}, {"job": "default/src-job", "on": "success"}
    ]
    bad = s.cli("job", "create", "x", "--after", "cli-up:sometimes", "--", "true")
    assert bad.returncode == 2 and "success, failure, always" in bad.stderr
    shown = s.cli("job", "show", "chains-cli/cli-up")
    assert shown.returncode == 0, shown.stderr
    assert "followed by chains-cli/cli-down (on failure)" in shown.stdout
    shown = s.cli("job", "show", "chains-cli/cli-down")
    assert "runs after cli-up (on failure)" in shown.stdout

    # A manifest lists the follower first, with YAML's `on:` key: apply creates its upstream
    # first, and applying the export again changes nothing.
    manifest = tmp_path / "chain.yaml"
    manifest.write_text(
        "apiVersion: herder/v1\nkind: Job\nmetadata: {name: down, namespace: chains-mf}\n"
        "spec:\n  command: [\"true\"]\n  after:\n    - {job: up, on: always}\n---\n"
        "apiVersion: herder/v1\nkind: Job\nmetadata: {name: up, namespace: chains-mf}\n"
        "spec: {command: [\"true\"]}\n"
    )
    applied = s.cli("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout == "job chains-mf/up created\njob chains-mf/down created\n"
    exported = s.cli("export", "-n", "chains-mf")
    assert exported.returncode == 0, exported.stderr
    documents = list(yaml.safe_load_all(exported.stdout))
    down = next(d for d in documents if d["metadata"]["name"] == "down")
    assert down["spec"]["after"] == [{"job": "up", "on": "always"}]  # the key written quoted
    again = tmp_path / "export.yaml"
    again.write_text(exported.stdout)
    reapplied = s.cli("apply", "-f", str(again))
    assert reapplied.returncode == 0, reapplied.stderr
    assert reapplied.stdout == "job chains-mf/up unchanged\njob chains-mf/down unchanged\n"


@pytest.fixture
def pg_server(postgres_url: str) -> Iterator[Server]:
    s = Server(short_dir() / "data", database_url=postgres_url).start()
    yield s
    s.close()


@pytest.mark.postgres
def test_a_chain_on_postgres(pg_server: Server) -> None:
    s = pg_server
    s.create_job(name="one", command='echo "rows=7" >> "$HERDER_OUTPUT"; exit 2')
    s.create_job(name="two", after=[{"job": "one", "on": "failure"}], params={"rows": "0"},
                 command='echo "rows=$((HERDER_PARAM_ROWS * 2))" >> "$HERDER_OUTPUT"')
    s.create_job(name="three", after=["two"], command=["echo", "{{ upstream.outputs.rows }}"])
    up = s.run("one")
    assert s.wait_end(up["id"])["status"] == "APP_ERROR"
    (three,) = chained(s, "default/three")
    assert s.wait_end(three["id"])["status"] == "SUCCESS"
    assert s.log(three["id"]) == "14\n"
