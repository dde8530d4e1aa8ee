"""The CLI against a tiny real HTTP server that answers canned API documents.

Each test scripts the answers per ``(method, path)`` and then checks what the CLI asked for
(method, path, query, body, headers), what it printed and how it exited.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from typer.testing import CliRunner, Result

from herder.cli.client import Client
from herder.cli.main import app
from herder.cli.runs import copy_log


@dataclass
class Reply:
    """One canned answer: a JSON body, or ``chunks`` sent one by one as chunked text/plain."""

    status: int = 200
    body: Any = None
    chunks: list[bytes] | None = None
    after_chunk: Callable[[int], None] | None = None


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeApi:
    """Routes ``(method, path)`` to replies, used in order; the last one repeats."""

    url: str = ""
    routes: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.routes[(method, path)] = list(replies)

    def next_reply(self, method: str, path: str) -> Reply:
        replies = self.routes.get((method, path))
        if not replies:
            body = {"error": {"code": "not_found", "message": f"no route {method} {path}"}}
            return Reply(404, body)
        return replies.pop(0) if len(replies) > 1 else replies[0]


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            api.seen.append(
                Seen(
                    self.command,
                    url.path,
                    parse_qs(url.query),
                    json.loads(raw) if raw else None,
                    {k.lower(): v for k, v in self.headers.items()},
                )
            )
            reply = api.next_reply(self.command, url.path)
            if reply.chunks is not None:
                self._stream(reply)
                return
            data = b"" if reply.body is None else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for index, chunk in enumerate(reply.chunks or ()):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                if reply.after_chunk is not None:
                    reply.after_chunk(index)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    return Handler


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def cli(api: FakeApi | str, *args: str, env: dict[str, str | None] | None = None) -> Result:
    url = api if isinstance(api, str) else api.url
    environment: dict[str, str | None] = {"HERDER_URL": None, "HERDER_TOKEN": None}
    environment.update(env or {})
    return CliRunner().invoke(app, ["--server", url, *args], env=environment)


def a_run(status: str = "READY", code: int = 100, **extra: Any) -> dict[str, Any]:
    run = {
        "id": 7, "job": "default/hello", "job_id": 1, "namespace": "default", "status": status,
        "status_code": code, "exit_code": None, "error": None, "trigger": "api",
        "scheduled_for": None, "created_at": "2026-01-01T10:00:00Z", "started_at": None,
        "finished_at": None, "attempt": 1, "parent_id": None, "submitter": None, "params": {},
        "outputs": {}, "backend": "local", "node": None, "labels": {},
    }  # fmt: skip
    run.update(extra)
    return run


def a_job(**extra: Any) -> dict[str, Any]:
    job = {
        "id": 1, "ref": "default/hello", "name": "hello", "namespace": "default",
        "description": "", "labels": {}, "annotations": {}, "command": ["echo", "hi"], "env": {},
        "params": {}, "backend": "local", "timeout": 90.0, "enabled": True, "metadata": {},
        "created_at": "2026-01-01T10:00:00Z", "updated_at": "2026-01-01T10:00:00Z",
        "run_count": 0, "next_run_at": None,
    }  # fmt: skip
    job.update(extra)
    return job


RUNNING = a_run("RUNNING", 300, started_at="2026-01-01T10:00:01Z")


def ended(status: str, code: int, exit_code: int | None = None) -> dict[str, Any]:
    times = {"started_at": "2026-01-01T10:00:01Z", "finished_at": "2026-01-01T10:00:03Z"}
    return a_run(status, code, exit_code=exit_code, **times)


# -- run --------------------------------------------------------------------------------------


def test_run_wait_exits_with_the_runs_own_exit_code(api: FakeApi) -> None:
    api.on("POST", "/api/v1/jobs/hello/runs", Reply(201, a_run()))
    api.on("GET", "/api/v1/runs/7", Reply(200, RUNNING), Reply(200, ended("APP_ERROR", 420, 3)))

    result = cli(api, "run", "hello", "--param", "who=world", "-e", "A=1=2", "--wait")

    assert result.exit_code == 3, result.output
    post = api.seen[0]
    assert (post.method, post.path) == ("POST", "/api/v1/jobs/hello/runs")
    assert post.body == {"params": {"who": "world"}, "env": {"A": "1=2"}}
    assert [(s.method, s.path) for s in api.seen[1:]] == [("GET", "/api/v1/runs/7")] * 2
    assert "APP_ERROR" in result.stdout
    assert "exit 3" in result.stdout


@pytest.mark.parametrize(
    ("status", "code", "exit_code", "expected"),
    [
        ("TIMEOUT", 400, None, 124),
        ("PROC_ERROR", 410, None, 125),
        ("ABORTED", 430, None, 130),
        ("SKIPPED", 450, None, 1),
        ("SUCCESS", 500, 0, 0),
    ],
)
def test_run_wait_maps_other_endings_to_documented_codes(
    api: FakeApi, status: str, code: int, exit_code: int | None, expected: int
) -> None:
    api.on("POST", "/api/v1/jobs/ops/backup/runs", Reply(201, a_run()))
    api.on("GET", "/api/v1/runs/7", Reply(200, ended(status, code, exit_code)))

    result = cli(api, "run", "ops/backup", "--wait")

    assert result.exit_code == expected, result.output
    assert api.seen[0].path == "/api/v1/jobs/ops/backup/runs"


def test_run_without_wait_prints_the_id_or_the_run_as_json(api: FakeApi) -> None:
    api.on("POST", "/api/v1/jobs/hello/runs", Reply(201, a_run()))

    plain = cli(api, "run", "hello")
    as_json = cli(api, "-o", "json", "run", "hello")

    assert (plain.exit_code, plain.stdout) == (0, "7\n")
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == a_run()
    assert api.seen[0].body == {"params": {}, "env": {}}


def test_run_follow_streams_the_log_then_exits_as_the_run(api: FakeApi) -> None:
    api.on("POST", "/api/v1/jobs/hello/runs", Reply(201, a_run()))
    api.on("GET", "/api/v1/runs/7/logs", Reply(chunks=[b"one\n", b"two\n"]))
    api.on("GET", "/api/v1/runs/7", Reply(200, ended("SUCCESS", 500, 0)))

    result = cli(api, "run", "hello", "--follow")

    assert result.exit_code == 0, result.output
    assert result.stdout == "one\ntwo\n"
    assert "SUCCESS" in result.stderr
    assert api.seen[1].query == {"follow": ["true"]}


def test_a_param_without_equals_is_a_usage_error(api: FakeApi) -> None:
    result = cli(api, "run", "hello", "--param", "oops")

    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output
    assert api.seen == []


def test_an_api_error_body_is_shown_as_its_message(api: FakeApi) -> None:
    error = {"code": "not_found", "message": "job 'default/nope' not found", "details": None}
    api.on("POST", "/api/v1/jobs/nope/runs", Reply(404, {"error": error}))

    result = cli(api, "run", "nope")

    assert result.exit_code == 1
    assert "error: job 'default/nope' not found" in result.stderr
    assert result.stdout == ""


def test_an_unreachable_server_gets_a_friendly_message() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    result = cli(url, "runs")

    assert result.exit_code == 1
    assert f"cannot reach the herder server at {url}" in result.stderr
    assert "herder server" in result.stderr
    assert "Traceback" not in result.output


def test_the_token_is_sent_as_a_bearer_and_the_url_comes_from_the_environment(
    api: FakeApi,
) -> None:
    api.on("GET", "/api/v1/runs", Reply(200, {"items": [], "next_cursor": None}))

    result = CliRunner().invoke(app, ["runs"], env={"HERDER_URL": api.url, "HERDER_TOKEN": "s3"})

    assert result.exit_code == 0, result.output
    assert api.seen[0].headers["authorization"] == "Bearer s3"


def test_a_401_says_how_to_authenticate(api: FakeApi) -> None:
    error = {"code": "unauthorized", "message": "a token is required"}
    api.on("GET", "/api/v1/runs", Reply(401, {"error": error}))

    result = cli(api, "runs")

    assert result.exit_code == 1
    assert "a token is required" in result.stderr
    assert "HERDER_TOKEN" in result.stderr


# -- runs, logs, cancel, retry ------------------------------------------------------------------


def test_runs_passes_filters_and_prints_a_table(api: FakeApi) -> None:
    page = {"items": [ended("APP_ERROR", 420, 3), RUNNING], "next_cursor": "c2"}
    api.on("GET", "/api/v1/runs", Reply(200, page))

    result = cli(
        api, "runs", "--job", "ops/backup", "-s", "running", "-s", "420", "--trigger", "schedule",
        "--limit", "2",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert api.seen[0].query == {
        "job": ["ops/backup"], "status": ["RUNNING", "APP_ERROR"], "trigger": ["schedule"],
        "limit": ["2"],
    }  # fmt: skip
    assert "APP_ERROR" in result.stdout
    assert "2.00s" in result.stdout
    assert "--all" in result.stderr


def test_runs_all_follows_the_cursor_and_json_is_valid(api: FakeApi) -> None:
    api.on(
        "GET", "/api/v1/runs",
        Reply(200, {"items": [RUNNING], "next_cursor": "c2"}),
        Reply(200, {"items": [a_run()], "next_cursor": None}),
    )  # fmt: skip

    result = cli(api, "runs", "--all", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"items": [RUNNING, a_run()], "next_cursor": None}
    assert [s.query.get("cursor") for s in api.seen] == [None, ["c2"]]


def test_an_unknown_status_is_a_usage_error(api: FakeApi) -> None:
    result = cli(api, "runs", "--status", "DONE")

    assert result.exit_code == 2
    assert api.seen == []


def test_logs_follow_prints_streamed_chunks_and_exits_as_the_run(api: FakeApi) -> None:
    api.on("GET", "/api/v1/runs/7/logs", Reply(chunks=[b"alpha\n", b"\xff\x00beta\n"]))
    api.on("GET", "/api/v1/runs/7", Reply(200, ended("APP_ERROR", 420, 4)))

    result = cli(api, "logs", "7", "-f", "--stream", "stderr")

    assert result.exit_code == 4, result.output
    assert result.stdout_bytes == b"alpha\n\xff\x00beta\n"
    assert api.seen[0].query == {"follow": ["true"], "stream": ["stderr"]}


def test_logs_without_follow_exits_zero(api: FakeApi) -> None:
    api.on("GET", "/api/v1/runs/7/logs", Reply(chunks=[b"done\n"]))

    result = cli(api, "logs", "7")

    assert (result.exit_code, result.stdout) == (0, "done\n")
    assert api.seen[0].query == {}


def test_the_log_is_copied_as_it_arrives(api: FakeApi) -> None:
    """The server holds the second chunk back until the client has written the first."""
    first_written = threading.Event()
    waited: list[bool] = []
    stream = Reply(chunks=[b"first\n", b"second\n"], after_chunk=lambda i: waited.append(
        i > 0 or first_written.wait(timeout=10)
    ))  # fmt: skip
    api.on("GET", "/api/v1/runs/7/logs", stream)

    class Sink(io.BytesIO):
        def write(self, data: Any) -> int:
            first_written.set()
            return super().write(data)

    sink = Sink()
    with Client(api.url) as client:
        copy_log(client, 7, to=sink, follow=True)

    assert sink.getvalue() == b"first\nsecond\n"
    assert waited[0] is True


def test_cancel_sends_force_and_prints_the_new_status(api: FakeApi) -> None:
    api.on("POST", "/api/v1/runs/7/cancel", Reply(200, RUNNING))

    result = cli(api, "cancel", "7", "--force")

    assert result.exit_code == 0, result.output
    assert api.seen[0].body == {"force": True}
    assert "RUNNING" in result.stdout
    assert "cancel requested" in result.stdout


def test_a_run_id_must_be_a_number(api: FakeApi) -> None:
    assert cli(api, "cancel", "seven").exit_code == 2


def test_retry_on_an_older_server_shows_the_api_error(api: FakeApi) -> None:
    api.on("POST", "/api/v1/runs/7/retry", Reply(405, {"detail": "Method Not Allowed"}))

    result = cli(api, "retry", "7")

    assert result.exit_code == 1
    assert "405" in result.stderr
    assert "Method Not Allowed" in result.stderr


def test_retry_prints_the_new_runs_id(api: FakeApi) -> None:
    api.on("POST", "/api/v1/runs/7/retry", Reply(201, a_run(id=8, parent_id=7, trigger="retry")))

    result = cli(api, "retry", "7")

    assert (result.exit_code, result.stdout) == (0, "8\n")


# -- jobs -------------------------------------------------------------------------------------


def test_job_create_with_an_argv_after_dashes(api: FakeApi) -> None:
    api.on("POST", "/api/v1/jobs", Reply(201, a_job(command=["prog", "arg"])))

    result = cli(
        api, "job", "create", "hello", "-n", "ops", "--timeout", "90s", "-p", "db=sales",
        "--label", "team=data", "--", "prog", "arg",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert api.seen[0].body == {
        "name": "hello", "command": ["prog", "arg"], "namespace": "ops", "timeout": 90.0,
        "params": {"db": "sales"}, "labels": {"team": "data"},
    }  # fmt: skip
    assert "default/hello" in result.stdout


def test_job_create_with_a_shell_string_and_json_output(api: FakeApi) -> None:
    api.on("POST", "/api/v1/jobs", Reply(201, a_job(command="echo hi | wc")))

    result = cli(api, "job", "create", "hello", "--command", "echo hi | wc", "-o", "yaml")

    assert result.exit_code == 0, result.output
    assert api.seen[0].body == {"name": "hello", "command": "echo hi | wc"}
    assert yaml.safe_load(result.stdout)["command"] == "echo hi | wc"


def test_job_create_from_a_manifest_file(api: FakeApi, tmp_path: Any) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(
        "apiVersion: herder/v1\nkind: Job\n"
        "metadata: {name: backup, namespace: ops, labels: {team: data}}\n"
        "spec: {command: [pg_dump, sales], timeout: 1h}\n"
    )
    api.on("POST", "/api/v1/jobs", Reply(201, a_job()))

    result = cli(api, "job", "create", "-f", str(manifest), "--env", "PGHOST=db1")

    assert result.exit_code == 0, result.output
    assert api.seen[0].body == {
        "command": ["pg_dump", "sales"], "timeout": "1h", "name": "backup", "namespace": "ops",
        "labels": {"team": "data"}, "env": {"PGHOST": "db1"},
    }  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ["hello"],  # no command
        ["hello", "--command", "x", "--", "y"],  # both forms
        ["hello", "--command", "x", "--timeout", "soon"],
        ["hello", "--command", "x", "--label", "team"],
    ],
)
def test_job_create_usage_errors(api: FakeApi, args: list[str]) -> None:
    result = cli(api, "job", "create", *args)

    assert result.exit_code == 2, result.output
    assert api.seen == []


def test_job_list_passes_filters_and_hints_at_more(api: FakeApi) -> None:
    api.on("GET", "/api/v1/jobs", Reply(200, {"items": [a_job()], "next_cursor": "n"}))

    result = cli(api, "job", "list", "-n", "ops", "-l", "team=data", "--disabled", "-q", "back")

    assert result.exit_code == 0, result.output
    assert api.seen[0].query == {
        "namespace": ["ops"], "label": ["team=data"], "enabled": ["false"], "q": ["back"],
    }  # fmt: skip
    assert "default/hello" in result.stdout
    assert "echo hi" in result.stdout
    assert "more jobs exist" in result.stderr


def test_job_show_fetches_the_job_and_its_last_runs(api: FakeApi) -> None:
    api.on("GET", "/api/v1/jobs/ops/backup", Reply(200, a_job(ref="ops/backup")))
    api.on("GET", "/api/v1/runs", Reply(200, {"items": [RUNNING], "next_cursor": None}))

    result = cli(api, "job", "show", "ops/backup")

    assert result.exit_code == 0, result.output
    assert api.seen[1].query == {"job": ["ops/backup"], "limit": ["5"]}
    assert "ops/backup" in result.stdout
    assert "timeout: 1m30s" in result.stdout
    assert "RUNNING" in result.stdout


def test_job_delete_asks_first(api: FakeApi) -> None:
    api.on("DELETE", "/api/v1/jobs/hello", Reply(204))

    refused = cli(api, "job", "delete", "hello")
    assert refused.exit_code == 1
    assert api.seen == []

    result = cli(api, "job", "delete", "hello", "--yes")
    assert result.exit_code == 0, result.output
    assert [(s.method, s.path) for s in api.seen] == [("DELETE", "/api/v1/jobs/hello")]


def test_job_enable_and_disable(api: FakeApi) -> None:
    api.on("POST", "/api/v1/jobs/7/enable", Reply(200, a_job(enabled=True)))
    api.on("POST", "/api/v1/jobs/7/disable", Reply(200, a_job(enabled=False)))

    assert "enabled" in cli(api, "job", "enable", "7").stdout
    assert "disabled" in cli(api, "job", "disable", "7").stdout
    assert [s.path for s in api.seen] == ["/api/v1/jobs/7/enable", "/api/v1/jobs/7/disable"]


def test_a_bad_job_reference_is_a_usage_error(api: FakeApi) -> None:
    result = cli(api, "job", "show", "../../healthz")

    assert result.exit_code == 2
    assert api.seen == []
