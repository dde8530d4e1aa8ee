"""The same server on PostgreSQL: runs end right, and a kill -9 restart loses nothing."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.acceptance.conftest import short_dir
from tests.servers import Server, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.postgres]


@pytest.fixture
def pg_server(postgres_url: str) -> Iterator[Server]:
    s = Server(short_dir() / "data", database_url=postgres_url).start()
    yield s
    s.close()


def test_runs_on_postgres(pg_server: Server) -> None:
    s = pg_server
    s.create_job(name="ok", command=["true"])
    s.create_job(name="fails", command="echo out; echo err >&2; exit 5")
    ok, fails = s.run("ok")["id"], s.run("fails")["id"]
    assert s.wait_end(ok)["status"] == "SUCCESS"
    end = s.wait_end(fails)
    assert (end["status"], end["exit_code"]) == ("APP_ERROR", 5)
    assert s.log(fails, "stderr") == "err\n" and s.log(fails) == "out\nerr\n"


def test_kill_9_restart_on_postgres(pg_server: Server) -> None:
    s = pg_server
    s.create_job(name="long", command="echo begin; sleep 2; echo end")
    run_id = s.run("long")["id"]
    wait_for(lambda: "begin" in s.log(run_id), what="the run to start")
    s.kill(signal.SIGKILL)
    s.start()
    end = s.wait_end(run_id, timeout=30)
    assert end["status"] == "SUCCESS" and s.log(run_id) == "begin\nend\n"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/api/v1/runs", {"params": {"q": "a\x00b"}}),
        ("GET", "/api/v1/runs", {"params": {"submitter": "\x00"}}),
        ("POST", "/api/v1/jobs", {"json": {"name": "nul", "command": "true",
                                           "description": "a\x00b"}}),
    ],
)
def test_nul_characters_are_refused_not_a_500(
    pg_server: Server, method: str, path: str, kwargs: dict[str, object]
) -> None:
    answer = pg_server.client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == 422, answer.text
    assert "NUL" in answer.json()["error"]["message"]
    assert pg_server.client.get("/api/v1/jobs/nul").status_code == 404
