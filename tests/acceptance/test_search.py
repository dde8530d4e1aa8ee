"""Run search over the API: the filters as query parameters, and bad ones refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.servers import Server

pytestmark = pytest.mark.acceptance


def ids(server: Server, **params: object) -> list[int]:
    answer = server.client.get("/api/v1/runs", params=params)
    assert answer.status_code == 200, answer.text
    return [r["id"] for r in answer.json()["items"]]


def test_search_by_label_time_text_and_job(shared_server: Server) -> None:
    s = shared_server
    s.create_job(name="etl-eu", command="true", labels={"region": "eu"},
                 description="loads the EU warehouse")
    s.create_job(name="etl-us", command="true", labels={"region": "us"}, namespace="us")
    before = datetime.now(UTC) - timedelta(seconds=1)
    eu = [s.run("etl-eu")["id"] for _ in range(2)]
    us = s.run("us/etl-us")["id"]
    assert ids(s, label="region=eu") == eu[::-1]
    assert ids(s, q="warehouse") == eu[::-1]
    assert ids(s, job="etl-us", namespace="us") == [us]
    assert ids(s, job="us/etl-us", since=before.isoformat()) == [us]
    assert ids(s, job="etl-eu", until=before.isoformat()) == []
    assert ids(s, job="etl-eu", limit=1, cursor=str(eu[1])) == [eu[0]]


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"since": "2026-11-23T08:00:00"},  # no offset: which clock?
        {"label": "region"},
        {"label": "a b=c"},
        {"q": "x" * 201},
        {"status": "DONE"},
        {"cursor": "abc"},
    ],
)
def test_bad_search_parameters_are_refused(shared_server: Server, params: dict[str, str]) -> None:
    answer = shared_server.client.get("/api/v1/runs", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["message"]
