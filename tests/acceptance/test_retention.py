"""A real server prunes ended runs and their logs by retention, in the background."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.acceptance.conftest import short_dir
from tests.servers import Server, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]


@pytest.fixture
def pruning_server() -> Iterator[Server]:
    s = Server(short_dir() / "data", env={"HERDER_PRUNE_EVERY": "0.3s",
                                          "HERDER_RETENTION_MAX_RUNS": "5"}).start()
    yield s
    s.close()


def test_runs_beyond_the_retention_go_with_their_logs(pruning_server: Server) -> None:
    s = pruning_server
    s.create_job(name="chatty", command="echo hello", retention={"max_runs": 2})
    s.create_job(name="quiet", command="true")  # the server's default: 5
    ids = [s.run("chatty")["id"] for _ in range(4)]
    for run_id in ids:
        s.wait_end(run_id)

    def kept() -> list[int] | None:
        found = [r["id"] for r in s.client.get("/api/v1/runs", params={"job": "chatty"})
                 .json()["items"]]
        return found if len(found) == 2 else None

    assert wait_for(kept, timeout=20, what="pruning to 2 runs") == ids[:1:-1]
    assert s.client.get(f"/api/v1/runs/{ids[0]}").status_code == 404
    assert not (s.data_dir / "runs" / str(ids[0])).exists()
    assert not (s.data_dir / "work" / str(ids[0])).exists()
    assert s.log(ids[-1]) == "hello\n"
    job = s.client.get("/api/v1/jobs/chatty").json()
    assert job["retention"] == {"max_runs": 2} and job["run_count"] == 4
