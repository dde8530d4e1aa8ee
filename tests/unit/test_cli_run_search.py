"""``herder runs`` passes every search filter the API has."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.unit import test_cli_http
from tests.unit.test_cli_http import FakeApi, Reply, cli

api = test_cli_http.api  # the canned HTTP endpoint, as a fixture of this module too


def test_runs_passes_labels_times_submitter_and_text(api: FakeApi) -> None:
    api.on("GET", "/api/v1/runs", Reply(200, {"items": [], "next_cursor": None}))
    before = datetime.now(UTC)
    result = cli(
        api, "runs", "-l", "team=ops", "-l", "env=prod", "--since", "1d",
        "--until", "2026-11-23T08:00:00+01:00", "--submitter", "alice", "-q", "backup",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    query = api.seen[0].query
    assert query["label"] == ["team=ops", "env=prod"]
    assert query["submitter"] == ["alice"] and query["q"] == ["backup"]
    assert query["until"] == ["2026-11-23T07:00:00+00:00"]
    since = datetime.fromisoformat(query["since"][0])
    assert before - timedelta(days=1, seconds=5) < since <= before - timedelta(days=1) + \
        timedelta(seconds=5)


def test_a_since_that_is_neither_duration_nor_time_is_a_usage_error(api: FakeApi) -> None:
    result = cli(api, "runs", "--since", "last tuesday")
    assert result.exit_code == 2
    assert "neither a duration" in result.output
    assert api.seen == []
