"""The read-only routes the dashboard needs: runs by status over a window, jobs due next; each
keeps to the namespaces the caller may read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.ui.conftest import Site, bearer

pytestmark = pytest.mark.acceptance


def test_runs_by_status_and_due_jobs_per_namespace(site: Site) -> None:
    for namespace in ("ov-a", "ov-b"):
        assert site.admin.post("/api/v1/namespaces", json={"name": namespace}).status_code == 201
    site.job(name="ok", namespace="ov-a", command="true",
             schedule={"cron": "0 3 * * *", "timezone": "Europe/Rome"})
    site.job(name="bad", namespace="ov-a", command="exit 2")
    site.job(name="other", namespace="ov-b", command="true", schedule={"every": "1h"})
    site.job(name="paused", namespace="ov-b", command="true", schedule={"every": "1m"},
             enabled=False)
    ids = [site.admin.post(f"/api/v1/jobs/ov-a/{name}/runs", json={}).json()["id"]
           for name in ("ok", "bad", "ok")]
    ids.append(site.admin.post("/api/v1/jobs/ov-b/other/runs", json={}).json()["id"])
    for run_id in ids:
        site.server.wait_end(run_id)

    everything = site.admin.get("/api/v1/overview/runs", params={"namespace": "ov-a"}).json()
    assert everything["counts"] == {"SUCCESS": 2, "APP_ERROR": 1} and everything["total"] == 3
    since = datetime.fromisoformat(everything["since"])
    until = datetime.fromisoformat(everything["until"])
    assert timedelta(hours=23, minutes=59) < until - since <= timedelta(days=1)
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    empty = site.admin.get("/api/v1/overview/runs", params={"since": later, "until": later})
    assert empty.json()["total"] == 0
    refused = site.admin.get("/api/v1/overview/runs", params={"since": "2026-01-01T00:00:00"})
    assert refused.status_code == 422

    _, viewer = site.token("ov-viewer", role="viewer", namespace="ov-b")
    with httpx.Client(base_url=site.url, headers=bearer(viewer)) as client:
        mine = client.get("/api/v1/overview/runs").json()
        assert mine["counts"] == {"SUCCESS": 1}
        due = client.get("/api/v1/overview/due").json()["items"]
        assert [job["ref"] for job in due] == ["ov-b/other"]  # not the disabled one, not ov-a
        assert client.get("/api/v1/overview/runs", params={"namespace": "ov-a"}).json()[
            "total"] == 0

    due = site.admin.get("/api/v1/overview/due", params={"limit": 100}).json()["items"]
    refs = [job["ref"] for job in due]
    assert {"ov-a/ok", "ov-b/other"} <= set(refs) and "ov-b/paused" not in refs
    moments = [job["next_run_at"] for job in due]
    assert moments == sorted(moments)


def test_the_overview_needs_a_token(site: Site) -> None:
    assert httpx.get(site.url + "/api/v1/overview/runs").status_code == 401
