"""Variables and secrets on a real server: a secret used in a command's argv, an env value and a
param, echoed to stdout and stderr and written to ``$HERDER_OUTPUT``, never appears in anything
the server answers or keeps on disk; ``***`` does."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from herder.secret_keys import new_key
from tests.acceptance.conftest import short_dir
from tests.servers import Server

pytestmark = pytest.mark.acceptance

VALUE = "hunter2-Zq9-correct-horse"
ENCODED = base64.b64encode(VALUE.encode()).decode()
# The run prints the value in two writes a moment apart (two reads of the pipe, most likely):
# the supervisor must mask a value split across reads.
SCRIPT = (
    'echo "argv=$1"; echo "env=$DB_PASSWORD" >&2; echo "param=$HERDER_PARAM_PW"; '
    'printf "split=%s" "$(printf %s "$1" | cut -c1-9)"; sleep 0.2; '
    'printf "%s\\n" "$(printf %s "$1" | cut -c10-)"; '
    'echo "host=$HOST"; echo "pw=$1" >> "$HERDER_OUTPUT"; echo "host=$HOST" >> "$HERDER_OUTPUT"'
)


def _leaks(text: str) -> list[str]:
    return [form for form in (VALUE, ENCODED) if form in text]


def _stream(server: Server, path: str, **params: Any) -> str:
    headers = {"Accept": "text/event-stream"} if params.pop("sse", False) else {}
    with server.client.stream("GET", path, params=params, headers=headers) as response:
        assert response.status_code == 200
        return "".join(response.iter_text())


def _setup(server: Server) -> None:
    answer = server.client.post("/api/v1/secrets", json={"name": "db_password", "value": VALUE})
    assert answer.status_code == 201, answer.text
    assert not _leaks(answer.text) and "value" not in answer.json()
    answer = server.client.post("/api/v1/variables",
                                json={"name": "host", "namespace": "*", "value": "db.example"})
    assert answer.status_code == 201, answer.text
    server.create_job(
        name="uses-secret",
        command=["sh", "-c", SCRIPT, "sh", "{{ secrets.db_password }}"],
        env={"DB_PASSWORD": "{{ secrets.db_password }}", "HOST": "{{ vars.host }}"},
        params={"pw": "{{ secrets.db_password }}"},
    )


def test_a_secret_never_leaves_the_run(server: Server) -> None:
    _setup(server)
    run_id = server.run("uses-secret")["id"]
    followed: dict[str, str] = {}

    def follow(name: str, **params: Any) -> None:
        followed[name] = _stream(server, f"/api/v1/runs/{run_id}/logs", follow="true", **params)

    live = [threading.Thread(target=follow, args=("plain",)),
            threading.Thread(target=follow, args=("sse",), kwargs={"sse": True})]
    for thread in live:
        thread.start()
    run = server.wait_end(run_id)
    for thread in live:
        thread.join(timeout=30)
    assert run["status"] == "SUCCESS", run

    answers: dict[str, str] = {f"follow {k}": v for k, v in followed.items()}
    for stream in ("output", "stdout", "stderr"):
        answers[f"log {stream}"] = server.log(run_id, stream)
        for offset in (1, 5, 9, 12):
            answers[f"log {stream} @{offset}"] = _stream(
                server, f"/api/v1/runs/{run_id}/logs", stream=stream, offset=offset)
    for path in (f"/api/v1/runs/{run_id}", f"/api/v1/runs/{run_id}/outputs", "/api/v1/runs",
                 "/api/v1/jobs/uses-secret", "/api/v1/jobs", "/api/v1/jobs/uses-secret/schedule",
                 "/api/v1/secrets", "/api/v1/secrets/default/db_password",
                 "/api/v1/secrets/db_password", "/api/v1/variables", "/openapi.json"):
        answer = server.client.get(path)
        assert answer.status_code == 200, (path, answer.text)
        answers[path] = answer.text
    for args in (("export",), ("secret", "list", "-o", "json"), ("runs", "-o", "json"),
                 ("job", "show", "uses-secret", "-o", "json"), ("logs", str(run_id))):
        done = server.cli(*args)
        assert done.returncode == 0, (args, done.stderr)
        answers[f"cli {' '.join(args)}"] = done.stdout + done.stderr
    leaked = {name: found for name, text in answers.items() if (found := _leaks(text))}
    assert leaked == {}

    output = answers["log output"]
    for line in ("argv=***", "env=***", "param=***", "host=db.example"):
        assert line in output, output
    assert "split=" in output and "split=hunter2-Z" not in output
    assert answers["log stderr"] == "env=***\n"
    outputs = server.client.get(f"/api/v1/runs/{run_id}/outputs").json()
    assert outputs == {"pw": "***", "host": "db.example"}
    assert "***" in followed["plain"] and "***" in followed["sse"]
    # The run keeps its templates, not what they rendered.
    assert run["params"] == {"pw": "{{ secrets.db_password }}"}
    _nothing_on_disk(server)


def _nothing_on_disk(server: Server) -> None:
    """The log files, the database (ciphertext only), the supervisor's log and the server's
    own log never hold the value (only the outputs file the run wrote itself does)."""
    for path in [*server.data_dir.rglob("*"), server.log_path]:
        if path.is_file() and path.name != ".herder-outputs" and not path.name.endswith(".sock"):
            assert VALUE.encode() not in path.read_bytes(), path


def test_a_failed_start_quotes_no_secret(server: Server) -> None:
    _setup(server)
    server.create_job(name="bad-program", command=["{{ secrets.db_password }}", "x"])
    run = server.wait_end(server.run("bad-program")["id"])
    assert run["status"] == "PROC_ERROR"
    assert "'***'" in run["error"] and not _leaks(run["error"]), run["error"]


def test_values_given_for_one_run_are_not_rendered(server: Server) -> None:
    """A caller who may run a job cannot make it reveal a secret through an override."""
    _setup(server)
    assert server.client.post("/api/v1/secrets", json={"name": "other", "value": VALUE[::-1]}
                              ).status_code == 201
    run = server.wait_end(server.run("uses-secret", params={"pw": "{{ secrets.other }}"},
                                     env={"DB_PASSWORD": "{{ secrets.other }}"})["id"])
    log = server.log(run["id"])
    assert "param={{ secrets.other }}" in log and "env={{ secrets.other }}" in log, log
    assert VALUE[::-1] not in log


def test_undefined_names_are_refused_at_save_and_fail_the_run(server: Server) -> None:
    answer = server.client.post("/api/v1/jobs", json={"name": "x", "command": [
        "echo", "{{ vars.nope }}"]})
    assert answer.status_code == 422
    assert "variable 'nope'" in answer.json()["error"]["message"]
    assert server.client.post("/api/v1/variables", json={"name": "nope", "value": "1"}
                              ).status_code == 201
    server.create_job(name="x", command=["echo", "{{ vars.nope }}"])
    assert server.client.delete("/api/v1/variables/nope").status_code == 204
    run = server.wait_end(server.run("x")["id"])
    assert run["status"] == "PROC_ERROR" and "variable 'nope'" in run["error"], run


def test_template_attacks_are_refused_when_a_job_is_saved(server: Server) -> None:
    for template in ("{{ ''.__class__.__mro__ }}", "{{ 'a'.center(10**9) }}",
                     "{{ " + "(" * 500 + "1" + ")" * 500 + " }}", "{% include 'x' %}",
                     "{{ secrets.db_password | upper }}"):
        answer = server.client.post("/api/v1/jobs", json={"name": "evil",
                                                          "command": ["echo", template]})
        assert answer.status_code == 422, (template, answer.text)
        assert "template error" in answer.json()["error"]["message"]
    assert server.client.get("/api/v1/jobs").json()["items"] == []


def test_a_namespaced_value_overrides_the_global_one(server: Server) -> None:
    for namespace, value in (("*", "global"), ("ops", "ops-own")):
        assert server.client.post("/api/v1/variables", json={
            "name": "where", "namespace": namespace, "value": value}).status_code == 201
    for namespace in ("ops", "default"):
        server.create_job(name="where", namespace=namespace, command=["echo", "{{ vars.where }}"])
    ops = server.wait_end(server.run("ops/where")["id"])
    default = server.wait_end(server.run("default/where")["id"])
    assert server.log(ops["id"]) == "ops-own\n" and server.log(default["id"]) == "global\n"
    assert server.client.get("/api/v1/variables/*/where").json()["value"] == "global"
    listed = server.client.get("/api/v1/variables", params={"namespace": "*"}).json()
    assert [v["ref"] for v in listed["items"]] == ["*/where"]


def test_secret_api_rules(server: Server) -> None:
    client: httpx.Client = server.client
    short = client.post("/api/v1/secrets", json={"name": "pin", "value": "1234"})
    assert short.status_code == 422 and "1234" not in short.text
    assert client.post("/api/v1/secrets", json={"name": "a-b", "value": VALUE}).status_code == 422
    assert client.post("/api/v1/secrets", json={"name": "tok", "value": VALUE}).status_code == 201
    again = client.post("/api/v1/secrets", json={"name": "tok", "value": VALUE})
    assert again.status_code == 409 and not _leaks(again.text)
    replaced = client.put("/api/v1/secrets/default/tok",
                          json={"name": "tok", "value": VALUE + "-2"})
    assert replaced.status_code == 200 and not _leaks(replaced.text)
    assert client.delete("/api/v1/secrets/tok").status_code == 204
    assert client.get("/api/v1/secrets/tok").status_code == 404


def test_cli_reads_a_secret_from_stdin(server: Server) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "herder", "secret", "set", "from_stdin", "-g"],
        input=VALUE + "\n", env=server.env | {"HERDER_URL": server.url}, capture_output=True,
        text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "created secret */from_stdin" in done.stdout
    server.create_job(name="echo-it", command=["echo", "{{ secrets.from_stdin }}"])
    run = server.wait_end(server.run("echo-it")["id"])
    assert server.log(run["id"]) == "***\n"
    warned = server.cli("secret", "set", "on_the_line", "--value", VALUE)
    assert warned.returncode == 0 and "visible to other users" in warned.stderr
    assert VALUE not in warned.stdout + warned.stderr
    listed = server.cli("var", "set", "colour", "blue", "-n", "ops")
    assert listed.returncode == 0, listed.stderr
    shown = server.cli("var", "get", "colour", "-n", "ops")
    assert shown.stdout == "blue\n"
    variables = server.cli("var", "list").stdout
    assert "ops/colour" in variables and "blue" in variables
    secrets = server.cli("secret", "list")
    assert "*/from_stdin" in secrets.stdout and not _leaks(secrets.stdout + secrets.stderr)
    for args in (("var", "delete", "colour", "-n", "ops"),
                 ("secret", "delete", "from_stdin", "--global")):
        assert server.cli(*args).returncode == 0
    assert "no secrets found" in server.cli("secret", "list", "-n", "*").stderr
    missing = server.cli("var", "get", "colour", "-n", "ops")
    assert missing.returncode == 1 and "no variable named 'colour'" in missing.stderr


def test_a_run_found_again_after_a_restart_is_masked(server: Server) -> None:
    """The supervisor keeps masking the logs of a run whose server was killed; the restarted
    server masks its outputs with the secrets it looks up again."""
    _setup(server)
    server.create_job(name="waits", env={"PW": "{{ secrets.db_password }}"}, command=(
        'while [ ! -e go ]; do sleep 0.05; done; echo "late=$PW"; '
        'echo "pw=$PW" >> "$HERDER_OUTPUT"'))
    run_id = server.run("waits")["id"]
    server.wait_status(run_id, "RUNNING")
    server.kill(signal.SIGKILL)
    server.start()
    (server.data_dir.resolve() / "work" / str(run_id) / "go").touch()
    run = server.wait_end(run_id, timeout=30)
    assert run["status"] == "SUCCESS", run
    assert server.log(run_id) == "late=***\n"
    assert run["outputs"] == {"pw": "***"}


def test_rotating_the_key(server: Server) -> None:
    """New key in, old key kept for reading, re-encrypt, old key out: the secret still works."""
    old, new = new_key(), new_key()
    server.stop()
    server.env["HERDER_SECRET_KEY"] = old
    server.start()
    _setup(server)
    server.stop()
    server.env.update({"HERDER_SECRET_KEY": new, "HERDER_SECRET_OLD_KEYS": old})
    server.start()
    done = server.cli("secret", "reencrypt")
    assert done.returncode == 0 and "re-encrypted 1 secret(s)" in done.stdout, done.stderr
    again = server.client.post("/api/v1/secrets/reencrypt").json()
    assert again["reencrypted"] == 0 and again["unreadable"] == []
    server.stop()
    del server.env["HERDER_SECRET_OLD_KEYS"]
    server.start()
    listed = server.client.get("/api/v1/secrets").json()["items"]
    assert [s["key_id"] for s in listed] == [again["key_id"]]
    run = server.wait_end(server.run("uses-secret")["id"])
    assert run["status"] == "SUCCESS" and "argv=***" in server.log(run["id"])


@pytest.mark.postgres
def test_servers_need_the_same_key(postgres_url: str) -> None:
    """A server without the key a secret was stored with fails the run and says why; given
    that key as an old one, it runs it."""
    base = short_dir()
    key, other = new_key(), new_key()
    a = Server(base / "a", database_url=postgres_url, env={"HERDER_SECRET_KEY": key}).start()
    b = Server(base / "b", database_url=postgres_url, env={"HERDER_SECRET_KEY": other})
    try:
        _setup(a)
        a.stop()  # only b dispatches from here on
        b.start()
        failed = b.wait_end(b.run("uses-secret")["id"])
        assert failed["status"] == "PROC_ERROR"
        assert "every server must have the same HERDER_SECRET_KEY" in failed["error"]
        b.stop()
        b.env["HERDER_SECRET_OLD_KEYS"] = key
        b.start()
        ok = b.wait_end(b.run("uses-secret")["id"])
        assert ok["status"] == "SUCCESS" and "argv=***" in b.log(ok["id"])
        # The keys stay in the server: its supervisor (and so every run) never has them.
        supervisor = int((b.data_dir / "supervisor.pid").read_text())
        environ = Path(f"/proc/{supervisor}/environ").read_bytes()
        assert b"HERDER_SECRET" not in environ and other.encode() not in environ
    finally:
        a.close()
        b.close()
