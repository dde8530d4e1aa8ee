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
    # Only the two newest are sure to be kept long enough to be seen ending: the older ones
    # may be pruned the moment the newer ones end.
    for run_id in ids[2:]:
        s.wait_end(run_id)

    def kept() -> list[int] | None:
        found = [r["id"] for r in s.client.get("/api/v1/runs", params={"job": "chatty"})
                 .json()["items"]]
        return found if len(found) == 2 else None

    assert wait_for(kept, timeout=20, what="pruning to 2 runs") == ids[:1:-1]
    assert s.client.get(f"/api/v1/runs/{ids[0]}").status_code == 404
    # The rows go first, then their folders (a crash between leaves space, never a run
    # without its log): the folders follow within moments.
    folders = [s.data_dir / "runs" / str(ids[0]), s.data_dir / "work" / str(ids[0])]
    wait_for(lambda: not any(f.exists() for f in folders), timeout=20,
             what="the pruned run's folders to go")
    assert s.log(ids[-1]) == "hello\n"
    job = s.client.get("/api/v1/jobs/chatty").json()
    assert job["retention"] == {"max_runs": 2} and job["run_count"] == 4


def test_a_namespace_retention_is_set_over_the_api(pruning_server: Server) -> None:
    s = pruning_server
    bad = s.client.patch("/api/v1/namespaces/default", json={"retention": {"max_runs": 0}})
    assert bad.status_code == 422 and "max_runs" in bad.json()["error"]["message"]
    assert s.client.get("/api/v1/namespaces/default").json()["retention"] is None
    made = s.client.post("/api/v1/namespaces", json={"name": "ops", "retention": {
        "max_age": "30d"}})
    assert made.status_code == 201 and made.json()["retention"] == {"max_age": "30d"}
    answer = s.client.patch("/api/v1/namespaces/ops", json={"retention": {"max_runs": 1}})
    assert answer.status_code == 200 and answer.json()["retention"] == {"max_runs": 1}
    s.create_job(name="etl", namespace="ops", command="true")  # sets none: the namespace's
    ids = [s.run("ops/etl")["id"] for _ in range(3)]
    s.wait_end(ids[-1])  # the older ones may be pruned as soon as they end

    def kept() -> list[int] | None:
        found = [r["id"] for r in s.client.get("/api/v1/runs", params={"job": "ops/etl"})
                 .json()["items"]]
        return found if len(found) == 1 else None

    assert wait_for(kept, timeout=20, what="pruning to 1 run") == [ids[-1]]
    assert s.client.patch("/api/v1/namespaces/nope", json={"retention": None}).status_code == 404
