"""Runs publish outputs through ``$HERDER_OUTPUT``; the server keeps them with the run's end."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.servers import Server, wait_for

pytestmark = pytest.mark.acceptance


def _outputs(server: Server, run_id: int) -> dict[str, Any]:
    response = server.client.get(f"/api/v1/runs/{run_id}/outputs")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ended(server: Server, name: str, command: str) -> dict[str, Any]:
    server.create_job(name=name, command=command)
    return server.wait_end(server.run(name)["id"])


def test_key_value_lines(shared_server: Server) -> None:
    run = _ended(shared_server, "lines", 'echo "$HERDER_OUTPUT"; echo rows=42 >> "$HERDER_OUTPUT"; '
                 'echo path=/tmp/x >> "$HERDER_OUTPUT"')
    assert run["status"] == "SUCCESS"
    assert _outputs(shared_server, run["id"]) == {"rows": "42", "path": "/tmp/x"}
    assert run["outputs"] == {"rows": "42", "path": "/tmp/x"} and run["outputs_error"] is None
    work = shared_server.data_dir.resolve() / "work" / str(run["id"])
    assert shared_server.log(run["id"]) == f"{work}/.herder-outputs\n"


def test_json_object(shared_server: Server) -> None:
    run = _ended(shared_server, "json", """printf '%s' '{"rows": 42, "files": ["a.csv", "b.csv"],
                 "meta": {"ok": true}}' > "$HERDER_OUTPUT" """)
    assert _outputs(shared_server, run["id"]) == {
        "rows": 42, "files": ["a.csv", "b.csv"], "meta": {"ok": True}}


def test_no_file_means_no_outputs(shared_server: Server) -> None:
    run = _ended(shared_server, "silent", "true")
    assert _outputs(shared_server, run["id"]) == {} and run["outputs_error"] is None


def test_too_large_is_kept_empty_with_the_reason(shared_server: Server) -> None:
    run = _ended(shared_server, "large", 'yes k=vvvvvvvvv | head -c 70000 > "$HERDER_OUTPUT"')
    assert run["status"] == "SUCCESS"
    assert _outputs(shared_server, run["id"]) == {}
    assert "larger than 64 KiB" in run["outputs_error"]


def test_broken_content_is_kept_empty_with_the_reason(shared_server: Server) -> None:
    run = _ended(shared_server, "broken",
                 r"""printf 'ok=1\nbad\000line\n' > "$HERDER_OUTPUT" """)
    assert run["status"] == "SUCCESS" and _outputs(shared_server, run["id"]) == {}
    assert "NUL byte" in run["outputs_error"]
    deep = "[" * 10 + "1" + "]" * 10
    run = _ended(shared_server, "deep", f"""printf '{{"a": {deep}}}' > "$HERDER_OUTPUT" """)
    assert _outputs(shared_server, run["id"]) == {} and "nested deeper" in run["outputs_error"]


def test_a_symlink_to_another_file_is_not_read(shared_server: Server) -> None:
    run = _ended(shared_server, "symlink", 'ln -s /etc/passwd "$HERDER_OUTPUT"')
    assert run["status"] == "SUCCESS"
    assert _outputs(shared_server, run["id"]) == {}
    assert "symbolic link" in run["outputs_error"] and "root" not in run["outputs_error"]


def test_a_failed_run_keeps_its_outputs(shared_server: Server) -> None:
    run = _ended(shared_server, "fails", 'echo rows=3 >> "$HERDER_OUTPUT"; exit 3')
    assert (run["status"], run["exit_code"]) == ("APP_ERROR", 3)
    assert _outputs(shared_server, run["id"]) == {"rows": "3"}


def test_unknown_run(shared_server: Server) -> None:
    response = shared_server.client.get("/api/v1/runs/999999/outputs")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert shared_server.client.get("/api/v1/runs/0/outputs").status_code == 422


@pytest.mark.slow
def test_outputs_survive_a_server_kill_9(server: Server) -> None:
    go = server.data_dir.parent / "go"
    # The run publishes, then waits (30 s at most) for the test to let it end.
    server.create_job(name="survivor", command=(
        f'echo rows=42 >> "$HERDER_OUTPUT"; echo started; i=0; '
        f'while [ ! -e {go} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; '
        f'echo done=yes >> "$HERDER_OUTPUT"'
    ))
    run_id = server.run("survivor")["id"]
    wait_for(lambda: "started" in server.log(run_id), what="the run to start")
    assert _outputs(server, run_id) == {}  # kept when the run ends, not before
    server.kill(signal.SIGKILL)
    server.start()
    server.wait_status(run_id, "RUNNING", timeout=30)  # re-attached after the restart
    go.touch()
    run = server.wait_end(run_id, timeout=30)
    assert run["status"] == "SUCCESS"
    assert _outputs(server, run_id) == {"rows": "42", "done": "yes"}
