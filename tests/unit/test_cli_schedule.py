"""The CLI's schedule options and ``herder job schedule``: what a job's schedule did and will do.

Request bodies and rendering are checked against the canned HTTP endpoint of
``test_cli_http``; what only the server knows (its validation, slots that really ran, fire times
in a time zone) against a real ``herder server`` (``tests.servers``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from herder.api.schemas import ScheduleReport
from tests.servers import Server, wait_for
from tests.unit import test_cli_http
from tests.unit.test_cli_http import FakeApi, Reply, a_job, cli

api = test_cli_http.api  # the canned HTTP endpoint, as a fixture of this module too

NEW_YORK = ZoneInfo("America/New_York")
WIDE = {"COLUMNS": "200"}  # rows on one line each, whatever the terminal running the tests


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """One real server for the module's tests; each uses jobs of its own."""
    # The supervisor's Unix socket lives in the data folder: keep its path short.
    root = Path(tempfile.mkdtemp(prefix="hd-", dir="/tmp"))
    s = Server(root / "data").start()
    yield s
    s.close()
    shutil.rmtree(root, ignore_errors=True)


def a_report(**extra: Any) -> dict[str, Any]:
    report = {
        "job": "default/hello", "enabled": True,
        "schedule": {"cron": "30 2 * * *", "timezone": "America/New_York"},
        "misfire": {"policy": "skip", "grace": "1m"}, "concurrency": "forbid",
        "next_run_at": "2027-03-15T06:30:00Z", "recent": [], "skipped_total": 0,
        "unlisted": None, "upcoming": [], "notes": [],
    }  # fmt: skip
    report.update(extra)
    return report


def report_of(server: Server, job: str, **params: Any) -> dict[str, Any]:
    response = server.client.get(f"/api/v1/jobs/{job}/schedule", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ran_twice(server: Server, job: str) -> dict[str, Any] | None:
    report = report_of(server, job, recent=50)
    return report if sum(s["fate"] == "ran" for s in report["recent"]) >= 2 else None


def wall(moment: datetime) -> str:
    """A time as the CLI prints it, the offset written out independently of the CLI's code."""
    offset = moment.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{moment:%Y-%m-%d %H:%M:%S} {sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# -- job create: the options become the body, the server judges it ------------------------------


def test_job_create_sends_the_schedule_and_policy_options_given(api: FakeApi) -> None:
    api.on("POST", "/api/v1/jobs", Reply(201, a_job()))

    result = cli(
        api, "job", "create", "hello", "--cron", "0 3 * * *", "--tz", "Europe/Rome",
        "--jitter", "1m", "--misfire", "skip", "--misfire-grace", "5m", "--concurrency", "forbid",
        "--max-active", "2", "--retries", "3", "--retry-backoff", "20s", "--", "echo", "hi",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert api.seen[0].body == {
        "name": "hello", "command": ["echo", "hi"],
        "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Rome", "jitter": "1m"},
        "misfire": {"policy": "skip", "grace": "5m"},
        "retries": {"limit": 3, "backoff": "20s"},
        "concurrency": "forbid", "max_active": 2,
    }  # fmt: skip


def test_job_create_sends_only_what_was_given(api: FakeApi) -> None:
    api.on("POST", "/api/v1/jobs", Reply(201, a_job()))

    result = cli(api, "job", "create", "hello", "--every", "30s", "--command", "true")

    assert result.exit_code == 0, result.output
    assert api.seen[0].body == {"name": "hello", "command": "true", "schedule": {"every": "30s"}}


def test_schedule_options_override_a_files_schedule(api: FakeApi, tmp_path: Path) -> None:
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        "name: backup\ncommand: [pg_dump, sales]\n"
        "schedule: {every: 1m, timezone: Europe/Rome}\nretries: 2\n"
    )
    api.on("POST", "/api/v1/jobs", Reply(201, a_job()))

    result = cli(
        api, "job", "create", "-f", str(job_file), "--cron", "0 3 * * *", "--retry-backoff", "30s"
    )

    assert result.exit_code == 0, result.output
    body = api.seen[0].body
    assert body["schedule"] == {"timezone": "Europe/Rome", "cron": "0 3 * * *"}
    assert body["retries"] == {"limit": 2, "backoff": "30s"}


@pytest.mark.acceptance
def test_job_create_with_cron_and_a_zone(server: Server) -> None:
    result = cli(
        server.url, "-o", "json", "job", "create", "rome-nightly", "--cron", "0 3 * * *",
        "--tz", "Europe/Rome", "--misfire", "skip", "--concurrency", "forbid", "--", "true",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["schedule"] == {"cron": "0 3 * * *", "timezone": "Europe/Rome"}
    assert job["misfire"]["policy"] == "skip"
    assert job["concurrency"] == "forbid"
    slot = datetime.fromisoformat(job["next_run_at"]).astimezone(ZoneInfo("Europe/Rome"))
    assert (slot.hour, slot.minute) == (3, 0)


@pytest.mark.acceptance
def test_job_create_with_every(server: Server) -> None:
    result = cli(
        server.url, "-o", "json", "job", "create", "half-minute", "--every", "30s",
        "--retries", "2", "--command", "true",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["schedule"] == {"every": "30s", "timezone": "UTC"}
    assert job["retries"]["limit"] == 2
    assert job["next_run_at"] is not None


@pytest.mark.acceptance
def test_two_kinds_of_schedule_are_refused_by_the_server(server: Server) -> None:
    result = cli(
        server.url, "job", "create", "two-kinds", "--cron", "0 3 * * *", "--every", "30s",
        "--", "true",
    )  # fmt: skip

    assert result.exit_code == 1, result.output
    assert "give exactly one of 'cron', 'every' or 'at'" in result.stderr
    assert "Traceback" not in result.output
    assert server.client.get("/api/v1/jobs/two-kinds").status_code == 404


# -- job schedule -------------------------------------------------------------------------------


@pytest.mark.acceptance
def test_job_schedule_shows_the_slots_that_ran(server: Server) -> None:
    created = cli(server.url, "job", "create", "each-second", "--cron", "* * * * * *", "--", "true")
    assert created.exit_code == 0, created.output
    try:
        report = wait_for(lambda: ran_twice(server, "each-second"), what="two slots to run")

        result = cli(server.url, "job", "schedule", "each-second", "--recent", "50", env=WIDE)
    finally:
        server.client.post("/api/v1/jobs/each-second/disable")

    assert result.exit_code == 0, result.output
    assert "default/each-second: cron * * * * * * in UTC" in result.stdout
    assert "misfire run_once, grace 1m  concurrency allow" in result.stdout
    lines = result.stdout.splitlines()
    for slot in (s for s in report["recent"] if s["fate"] == "ran"):
        local = wall(datetime.fromisoformat(slot["local"]))
        row = next((line for line in lines if line.startswith(local)), None)
        assert row is not None, f"no row for {local} in:\n{result.stdout}"
        assert row.split()[3:6] == ["ran", str(slot["run_id"]), "SUCCESS"]


@pytest.mark.acceptance
def test_job_schedule_json_is_the_report(server: Server) -> None:
    assert cli(server.url, "job", "create", "rome-json", "--cron", "0 3 * * *",
               "--tz", "Europe/Rome", "--", "true").exit_code == 0  # fmt: skip

    result = cli(server.url, "job", "schedule", "rome-json", "--upcoming", "3", "-o", "json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == set(ScheduleReport.model_fields)
    assert report["job"] == "default/rome-json"
    assert report["recent"] == []
    assert len(report["upcoming"]) == 3
    assert all(s["local"].endswith(("+01:00", "+02:00")) for s in report["upcoming"])


@pytest.mark.acceptance
def test_job_schedule_without_a_schedule_says_how_the_job_runs(server: Server) -> None:
    assert cli(server.url, "job", "create", "on-demand", "--", "true").exit_code == 0

    result = cli(server.url, "job", "schedule", "on-demand")

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "this job has no schedule; it runs only when asked (herder run default/on-demand)\n"
    )


def test_job_schedule_passes_its_counts_and_prints_the_report_as_sent(api: FakeApi) -> None:
    api.on("GET", "/api/v1/jobs/hello/schedule", Reply(200, a_report()))

    result = cli(api, "job", "schedule", "hello", "--recent", "3", "--upcoming", "2", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == a_report()
    assert api.seen[0].query == {"recent": ["3"], "upcoming": ["2"]}


def test_job_schedule_explains_skipped_slots_dst_and_pauses(api: FakeApi) -> None:
    recent = [
        {"slot": "2027-03-14T07:00:00Z", "local": "2027-03-14T03:00:00-04:00", "fate": "skipped",
         "run_id": 12, "status": "SKIPPED", "reason": "misfired: 2h late (grace 1m), policy skip",
         "dst": "DST gap: 02:30 did not exist; ran once, at 03:00"},
        {"slot": "2027-03-13T07:30:00Z", "local": "2027-03-13T02:30:00-05:00", "fate": "ran",
         "run_id": 11, "status": "APP_ERROR", "reason": "retried as run 13 (SUCCESS)",
         "dst": None},
    ]  # fmt: skip
    upcoming = [{"slot": "2027-03-15T06:30:00Z", "local": "2027-03-15T02:30:00-04:00", "dst": None}]
    unlisted = {"after": "2027-03-01T07:30:00Z", "through": "2027-03-12T07:30:00Z",
                "reason": "misfired: 2d late (grace 1m), policy skip"}  # fmt: skip
    report = a_report(
        enabled=False, recent=recent, upcoming=upcoming, unlisted=unlisted, skipped_total=13,
        notes=["the job is disabled since 2027-03-14: no slot runs until it is enabled"],
    )  # fmt: skip
    api.on("GET", "/api/v1/jobs/hello/schedule", Reply(200, report))

    result = cli(api, "job", "schedule", "hello", env=WIDE)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "default/hello: cron 30 2 * * * in America/New_York  disabled" in out
    assert "misfire skip, grace 1m  concurrency forbid  skipped in all 13" in out
    assert "next run 2027-03-15 02:30:00 -04:00" in out
    skipped_row = next(line for line in out.splitlines() if line.startswith("2027-03-14"))
    assert skipped_row.split()[:6] == [
        "2027-03-14", "03:00:00", "-04:00", "skipped", "12", "SKIPPED",
    ]  # fmt: skip
    assert "misfired: 2h late (grace 1m), policy skip" in skipped_row
    assert "DST gap: 02:30 did not exist" in skipped_row
    assert "retried as run 13 (SUCCESS)" in out
    assert (
        "older slots after 2027-03-01 02:30:00 -05:00 up to 2027-03-12 02:30:00 -05:00 were "
        "skipped (not listed one by one): misfired: 2d late (grace 1m), policy skip"
    ) in out
    assert "note: the job is disabled since 2027-03-14" in out
    assert "next slots (America/New_York)" in out
    assert "2027-03-15 02:30:00 -04:00" in out.split("next slots")[1]
    assert "these run only once it is enabled" in out


def test_job_schedule_with_nothing_due_yet(api: FakeApi) -> None:
    api.on("GET", "/api/v1/jobs/hello/schedule", Reply(200, a_report()))

    result = cli(api, "job", "schedule", "hello")

    assert result.exit_code == 0, result.output
    assert "no slot has come due yet" in result.stdout
    assert "next slots (America/New_York)\nnone" in result.stdout


# -- job show -----------------------------------------------------------------------------------


@pytest.mark.acceptance
def test_job_show_lists_the_next_five_runs_in_the_jobs_zone(server: Server) -> None:
    # An hour half a day away, so that the first slot cannot pass while the test runs.
    hour = (datetime.now(NEW_YORK).hour + 12) % 24
    created = cli(server.url, "job", "create", "ny-daily", "--cron", f"0 {hour} * * *",
                  "--tz", "America/New_York", "--", "true")  # fmt: skip
    assert created.exit_code == 0, created.output
    now = datetime.now(NEW_YORK)
    first = now.date() if now.time() < time(hour) else now.date() + timedelta(days=1)
    expected = [
        wall(datetime.combine(first + timedelta(days=n), time(hour), tzinfo=NEW_YORK))
        for n in range(5)
    ]
    assert all(text.endswith((" -05:00", " -04:00")) for text in expected)

    result = cli(server.url, "job", "show", "ny-daily")

    assert result.exit_code == 0, result.output
    _, _, tail = result.stdout.partition("next runs in America/New_York")
    assert tail, result.stdout
    assert f"next_run_at {expected[0]}" in tail
    listed = [line.split("  ")[0] for line in tail.splitlines()[1:] if line.strip()]
    assert listed == expected


def test_job_show_as_json_is_the_job_alone(api: FakeApi) -> None:
    job = a_job(schedule={"cron": "0 3 * * *", "timezone": "Europe/Rome"},
                next_run_at="2027-01-01T02:00:00Z")  # fmt: skip
    api.on("GET", "/api/v1/jobs/hello", Reply(200, job))

    result = cli(api, "job", "show", "hello", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == job
    assert [s.path for s in api.seen] == ["/api/v1/jobs/hello"]
