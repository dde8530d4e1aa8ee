"""The scheduler and its policies on a real store (SQLite and PostgreSQL), with the clock in the
test's hands: every ``tick`` is told what time it is."""

from __future__ import annotations

import concurrent.futures
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from herder.engine import admission, scheduler
from herder.engine.admission import Admitted
from herder.model.errors import Conflict, InvalidSpec
from herder.model.jobs import Job, JobSpec, next_run
from herder.model.policies import parse_retries
from herder.model.runs import Run, RunStatus, Trigger
from herder.model.schedules import parse_misfire, parse_schedule
from herder.store import jobs as job_store
from herder.store import runs as run_store
from herder.store import servers as server_store
from herder.store.database import Database

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)


def make_job(db: Database, now: datetime = NOW, name: str = "job", **fields: Any) -> Job:
    for key, parse in (("schedule", parse_schedule), ("misfire", parse_misfire),
                       ("retries", parse_retries)):
        if key in fields:
            fields[key] = parse(fields[key])
    return db.write_sync(job_store.create, JobSpec(name=name, command="true", **fields), now)


def tick(db: Database, now: datetime) -> Admitted:
    return db.write_sync(scheduler.tick, now).admitted


def runs_of(db: Database, job: Job) -> list[Run]:
    return list(reversed(db.read_sync(run_store.search, job_id=job.id, limit=10_000)))


def slots(runs: list[Run], status: RunStatus | None = None) -> list[datetime]:
    return [r.scheduled_for for r in runs if status is None or r.status is status
            if r.scheduled_for is not None]


def submit(db: Database, job: Job, now: datetime = NOW, **kw: Any) -> Admitted:
    def op(conn: Connection) -> Admitted:
        fresh = job_store.get(conn, str(job.id))
        return admission.admit(conn, fresh, trigger=Trigger.API, now=now, params={}, env={},
                               **kw)

    return db.write_sync(op)


def start(db: Database, run_id: int, owner: str = "server-a", epoch: int = 1) -> Run:
    """Claim the run as a dispatcher would and mark it RUNNING."""
    claimed = db.write_sync(run_store.claim_ready, owner, 1000, epoch=epoch)
    assert run_id in [r.id for r in claimed]
    return db.write_sync(run_store.set_status, run_id, RunStatus.RUNNING, owner=owner,
                         epoch=epoch, started_at=NOW)


def end(db: Database, run_id: int, exit_code: int, now: datetime = NOW) -> tuple[Run, Admitted]:
    def op(conn: Connection) -> tuple[Run, Admitted]:
        run = run_store.finish(conn, run_id, owner="server-a", exit_code=exit_code, signal=None,
                               now=now, epoch=1)
        return run, admission.after_end(conn, run, now)

    return db.write_sync(op)


# Slots ---------------------------------------------------------------------------------------


def test_each_slot_gets_exactly_one_run(db: Database) -> None:
    job = make_job(db, schedule={"cron": "*/10 * * * * *"})
    assert job.next_run_at == NOW + 10 * S
    assert tick(db, NOW + 5 * S).created == []  # nothing due yet
    created = tick(db, NOW + 35 * S).created
    assert [r.scheduled_for for r in created] == [NOW + 10 * S, NOW + 20 * S, NOW + 30 * S]
    assert all(r.trigger is Trigger.SCHEDULE and r.attempt == 1 for r in created)
    assert tick(db, NOW + 35 * S).created == []  # the same moment again: nothing new
    tick(db, NOW + 40 * S)
    assert slots(runs_of(db, job)) == [NOW + k * 10 * S for k in (1, 2, 3, 4)]
    assert db.read_sync(job_store.get, str(job.id)).next_run_at == NOW + 50 * S


def test_servers_ticking_at_once_never_double_a_slot(store_url: str) -> None:
    """Eight stores (as eight servers would have) tick the same due jobs at the same time."""
    first = Database(store_url)
    servers = [Database(store_url) for _ in range(8)]
    try:
        jobs = [make_job(first, name=f"job-{i}", schedule={"cron": "* * * * * *"})
                for i in range(20)]
        moment = NOW + 30 * S
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda d: d.write_sync(scheduler.tick, moment), servers))
        for job in jobs:  # planned two seconds ahead (concurrency allow)
            assert slots(runs_of(first, job)) == [NOW + k * S for k in range(1, 33)]
    finally:
        for database in (first, *servers):
            database.close()


def test_a_slot_lost_from_the_cursor_is_not_run_twice(db: Database) -> None:
    """Should the cursor ever lag behind the runs (a restored backup), the store's unique key
    still refuses a second run for a slot, and the tick goes on."""
    job = make_job(db, schedule={"every": "10s"})
    tick(db, NOW + 25 * S)
    db.write_sync(job_store.set_schedule, job, NOW + 10 * S, {"cursor": NOW.isoformat()})
    tick(db, NOW + 35 * S)
    assert Counter(slots(runs_of(db, job))) == {NOW + k * 10 * S: 1 for k in (1, 2, 3)}


# Misfires -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "ran"),
    [("skip", []), ("run_once", [10]), ("run_all", list(range(1, 11)))],
)
def test_misfire_policies_after_downtime(db: Database, policy: str, ran: list[int]) -> None:
    job = make_job(db, schedule={"every": "1m"}, misfire={"policy": policy, "grace": "30s"})
    tick(db, NOW + 10 * M + 40 * S)  # every slot is at least 40 s late
    runs = runs_of(db, job)
    assert slots(runs, RunStatus.READY) == [NOW + k * M for k in ran]
    skipped = [r for r in runs if r.status is RunStatus.SKIPPED]
    assert len(skipped) == 10 - len(ran)
    assert all(f"policy {policy}" in (r.error or "") for r in skipped)
    assert db.read_sync(job_store.get, str(job.id)).schedule_state["skipped"] == len(skipped)


def test_slots_within_the_grace_run_whatever_the_policy(db: Database) -> None:
    job = make_job(db, schedule={"every": "1m"}, misfire={"policy": "skip", "grace": "5m"})
    tick(db, NOW + 3 * M)
    assert slots(runs_of(db, job), RunStatus.READY) == [NOW + M, NOW + 2 * M, NOW + 3 * M]


def test_a_long_absence_is_summed_up_not_listed(db: Database) -> None:
    job = make_job(db, schedule={"cron": "* * * * * *"}, misfire={"policy": "skip"})
    tick(db, NOW + timedelta(days=30))  # 2.6 million slots missed
    runs = runs_of(db, job)
    # The last minute is within the grace, and the next two seconds are planned ahead.
    assert len(slots(runs, RunStatus.READY)) == 63
    assert len(slots(runs, RunStatus.SKIPPED)) == 10  # the newest skips listed, the rest summed
    report = db.read_sync(scheduler.report, str(job.id), NOW + timedelta(days=30))
    assert report["unlisted"]["reason"].startswith("misfired")


def test_pause_and_resume_follow_the_misfire_policy_and_say_so(db: Database) -> None:
    job = make_job(db, schedule={"every": "1m"}, misfire={"policy": "skip", "grace": "30s"})
    tick(db, NOW + M)
    db.write_sync(job_store.set_enabled, str(job.id), False, NOW + 90 * S)
    paused = db.read_sync(job_store.get, str(job.id))
    assert paused.next_run_at is None  # a paused job is not even looked at
    assert tick(db, NOW + 5 * M).created == []
    db.write_sync(job_store.set_enabled, str(job.id), True, NOW + 5 * M + 40 * S)
    tick(db, NOW + 5 * M + 40 * S)
    runs = runs_of(db, job)
    assert slots(runs, RunStatus.READY) == [NOW + M]
    skipped = [r for r in runs if r.status is RunStatus.SKIPPED]
    assert slots(skipped) == [NOW + k * M for k in (2, 3, 4, 5)]
    assert all("the job was disabled at this slot" in (r.error or "") for r in skipped)
    # Every run and the spec survived the pause.
    assert len(runs_of(db, job)) == 5 and paused.spec.command == "true"


# One-shots and DST ------------------------------------------------------------------------


def test_a_one_shot_runs_once_then_disables_itself(db: Database) -> None:
    job = make_job(db, schedule={"at": (NOW + timedelta(hours=1)).isoformat()})
    assert job.next_run_at == NOW + timedelta(hours=1)
    tick(db, NOW + timedelta(hours=1, seconds=1))
    tick(db, NOW + timedelta(hours=2))
    assert slots(runs_of(db, job)) == [NOW + timedelta(hours=1)]
    after = db.read_sync(job_store.get, str(job.id))
    assert not after.spec.enabled and after.next_run_at is None


def test_a_one_shot_in_the_past_is_refused(db: Database) -> None:
    with pytest.raises(InvalidSpec, match="in the past"):
        make_job(db, schedule={"at": (NOW - S).isoformat()})


DST_CASES = [
    # zone, cron, days ticked through (UTC), the slots expected (UTC)
    ("Europe/Rome", "30 2 * * *", datetime(2026, 3, 28, tzinfo=UTC),
     [datetime(2026, 3, 28, 1, 30), datetime(2026, 3, 29, 1, 0), datetime(2026, 3, 30, 0, 30)]),
    ("Europe/Rome", "30 2 * * *", datetime(2026, 10, 24, tzinfo=UTC),
     [datetime(2026, 10, 24, 0, 30), datetime(2026, 10, 25, 0, 30),
      datetime(2026, 10, 26, 1, 30)]),
    ("America/New_York", "30 2 * * *", datetime(2026, 3, 7, 12, tzinfo=UTC),
     [datetime(2026, 3, 8, 7, 0), datetime(2026, 3, 9, 6, 30), datetime(2026, 3, 10, 6, 30)]),
    ("America/New_York", "30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=UTC),
     [datetime(2026, 11, 1, 5, 30), datetime(2026, 11, 2, 6, 30), datetime(2026, 11, 3, 6, 30)]),
]


@pytest.mark.parametrize(("zone", "cron", "start", "expected"), DST_CASES)
def test_dst_gaps_and_repeats_run_exactly_once(
    db: Database, zone: str, cron: str, start: datetime, expected: list[datetime]
) -> None:
    job = make_job(db, now=start, schedule={"cron": cron, "timezone": zone})
    moment = start
    while moment < start + timedelta(days=3):
        moment += timedelta(minutes=20)
        tick(db, moment)
    assert slots(runs_of(db, job)) == [e.replace(tzinfo=UTC) for e in expected]
    report = db.read_sync(scheduler.report, str(job.id), moment)
    notes = [s["dst"] for s in report["recent"] if s["dst"]]
    assert len(notes) == 1  # the one slot a DST change moved or merged says so


# Concurrency ---------------------------------------------------------------------------------


def test_forbid_skips_a_slot_while_a_run_is_active_and_refuses_a_person(db: Database) -> None:
    job = make_job(db, schedule={"every": "1m"}, concurrency="forbid")
    first = tick(db, NOW + M).created[0]
    start(db, first.id)
    second = tick(db, NOW + 2 * M).created[0]
    assert second.status is RunStatus.SKIPPED
    assert f"run {first.id} (RUNNING)" in (second.error or "")
    with pytest.raises(Conflict, match="concurrency forbid"):
        submit(db, job, by_person=True)
    end(db, first.id, 0)
    assert tick(db, NOW + 3 * M).created[0].status is RunStatus.READY


def test_max_active_is_the_limit(db: Database) -> None:
    job = make_job(db, concurrency="forbid", max_active=2)
    submit(db, job, by_person=True)
    submit(db, job, by_person=True)
    with pytest.raises(Conflict):
        submit(db, job, by_person=True)


def test_queue_waits_and_runs_in_arrival_order(db: Database) -> None:
    job = make_job(db, concurrency="queue")
    ids = [submit(db, job).created[0].id for _ in range(3)]
    statuses = [db.read_sync(run_store.get, i).status for i in ids]
    assert statuses == [RunStatus.READY, RunStatus.WAITING, RunStatus.WAITING]
    start(db, ids[0])
    _, freed = end(db, ids[0], 0)
    assert [r.id for r in freed.created] == [ids[1]] and freed.ready
    assert db.read_sync(run_store.get, ids[2]).status is RunStatus.WAITING


def test_replace_stops_the_running_one_for_the_new_one(db: Database) -> None:
    job = make_job(db, concurrency="replace")
    old = submit(db, job).created[0]
    start(db, old.id)
    newer = submit(db, job)
    assert newer.created[0].status is RunStatus.READY
    assert [r.id for r in newer.stop] == [old.id]  # its backend is told after the commit
    assert db.read_sync(run_store.get, old.id).cancel_requested_at is not None
    # A run that was not launched yet is simply ended.
    waiting = newer.created[0]
    third = submit(db, job)
    replaced = db.read_sync(run_store.get, waiting.id)
    assert replaced.status is RunStatus.ABORTED and "replaced" in (replaced.error or "")
    assert third.stop == [] or [r.id for r in third.stop] == [old.id]


# Retries -------------------------------------------------------------------------------------


def test_failed_runs_are_retried_with_backoff_until_the_limit(db: Database) -> None:
    job = make_job(db, retries={"limit": 2, "backoff": "10s", "factor": 3, "jitter": 0.1})
    run = submit(db, job).created[0]
    waits = []
    for attempt in (1, 2, 3):
        start(db, run.id)
        failed, more = end(db, run.id, 1, now=NOW)
        assert failed.status is RunStatus.APP_ERROR and failed.attempt == attempt
        if attempt == 3:
            assert more.created == []  # the limit is 2 retries
            break
        retry = more.created[0]
        assert (retry.attempt, retry.parent_id, retry.trigger) == (
            attempt + 1, run.id, Trigger.RETRY)
        assert retry.not_before is not None
        waits.append((retry.not_before - NOW).total_seconds())
        # Not dispatched before its backoff is over.
        assert db.write_sync(run_store.claim_ready, "x", 10, now=NOW + S) == []
        run = retry
    assert 10 <= waits[0] <= 11 and 30 <= waits[1] <= 33


def test_aborted_and_successful_runs_are_not_retried(db: Database) -> None:
    job = make_job(db, retries=3)
    run = submit(db, job).created[0]
    cancelled = db.write_sync(run_store.request_cancel, run.id, force=False, now=NOW)
    assert db.write_sync(admission.after_end, cancelled, NOW).created == []
    run = submit(db, job).created[0]
    start(db, run.id)
    assert end(db, run.id, 0)[1].created == []


# Leases --------------------------------------------------------------------------------------


@pytest.fixture
def other_process() -> Iterator[int]:
    """A live process to stand for another server (its pid is checked on this host)."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc.pid
    proc.kill()
    proc.wait()


def register(db: Database, server_id: str, pid: int, now: datetime = NOW,
             only_one: bool = False) -> int:
    return db.write_sync(server_store.register, server_id=server_id, host="this-host", pid=pid,
                         data_dir=f"/data/{server_id}", now=now, ttl=10.0, only_one=only_one)


def test_one_data_folder_one_live_server(db: Database, other_process: int) -> None:
    assert register(db, "server-a", other_process) == 1
    with pytest.raises(Conflict, match="is running on the data folder"):
        register(db, "server-a", other_process)
    assert register(db, "server-a", other_process, now=NOW + 11 * S) == 2  # lease ran out


def test_sqlite_allows_one_active_scheduler(db: Database, other_process: int) -> None:
    register(db, "server-a", other_process, only_one=True)
    with pytest.raises(Conflict, match="SQLite allows one active scheduler"):
        register(db, "server-b", other_process, only_one=True)


def test_a_dead_servers_runs_are_taken_over_and_its_writes_fenced(
    db: Database, other_process: int
) -> None:
    job = make_job(db)
    run = submit(db, job).created[0]
    epoch_a = register(db, "server-a", other_process)
    start(db, run.id, owner="server-a", epoch=epoch_a)
    epoch_b = register(db, "server-b", other_process)
    later = NOW + 11 * S  # server-a has not renewed its lease
    assert db.write_sync(server_store.renew, "server-b", epoch_b, later, 10.0)
    (dead,) = db.read_sync(server_store.expired_with_runs, later)
    taken = db.write_sync(server_store.take_over, dead, server_id="server-b", epoch=epoch_b,
                          now=later)
    assert [(r.id, r.status, r.owner, r.owner_epoch) for r in taken] == [
        (run.id, RunStatus.IN_DOUBT, "server-b", epoch_b)]
    # A second taker finds nothing: the fence moved on.
    assert db.write_sync(server_store.take_over, dead, server_id="server-c", epoch=1,
                         now=later) == []
    # The old server, should it wake up, can neither renew nor write to the run.
    assert not db.write_sync(server_store.renew, "server-a", epoch_a, later, 10.0)
    with pytest.raises(Conflict, match="owned by another server"):
        db.write_sync(run_store.finish, run.id, owner="server-a", epoch=epoch_a, exit_code=0,
                      signal=None, now=later)
    done = db.write_sync(run_store.finish, run.id, owner="server-b", epoch=epoch_b,
                         exit_code=0, signal=None, now=later)
    assert done.status is RunStatus.SUCCESS


# "Why didn't it run?" ------------------------------------------------------------------------


def test_the_report_tells_what_became_of_each_slot(db: Database) -> None:
    job = make_job(db, schedule={"cron": "*/15 * * * *", "timezone": "Asia/Tokyo"},
                   concurrency="forbid", retries=1)
    first = tick(db, NOW + 15 * M).created[0]
    start(db, first.id)
    tick(db, NOW + 30 * M)  # skipped: the first still runs
    _, retried = end(db, first.id, 2)
    report = db.read_sync(scheduler.report, str(job.id), NOW + 31 * M, upcoming=3)
    fates = [(s["fate"], s["status"]) for s in report["recent"]]
    assert fates == [("skipped", "SKIPPED"), ("ran", "APP_ERROR")]
    assert "forbid" in report["recent"][0]["reason"]
    assert report["recent"][1]["reason"] == (
        f"retried as run {retried.created[0].id} (READY)")
    upcoming = [s["local"] for s in report["upcoming"]]
    assert [u.utcoffset() for u in upcoming] == [timedelta(hours=9)] * 3
    assert [s["slot"] for s in report["upcoming"]] == [NOW + k * 15 * M for k in (3, 4, 5)]


def test_allow_jobs_are_planned_ahead_and_others_at_their_slot(db: Database) -> None:
    free = make_job(db, name="free", schedule={"every": "10s"})
    solo = make_job(db, name="solo", schedule={"every": "10s"}, concurrency="forbid")
    early = tick(db, NOW + 8 * S).created
    assert [(r.job_id, r.scheduled_for, r.not_before) for r in early] == [
        (free.id, NOW + 10 * S, NOW + 10 * S)]  # created ahead, held until its slot
    assert db.write_sync(run_store.claim_ready, "x", 10, now=NOW + 9 * S) == []
    # forbid decides by the runs active at the slot itself, so it is planned then.
    assert tick(db, NOW + 9 * S).created == []
    assert [r.job_id for r in tick(db, NOW + 10 * S).created] == [solo.id]


def test_a_queue_moves_on_after_the_policy_changed_under_it(db: Database) -> None:
    job = make_job(db)  # allow
    first = submit(db, job).created[0]
    start(db, first.id)
    queued = JobSpec.from_dict(job.spec.to_dict() | {"concurrency": "queue"})
    db.write_sync(job_store.update, job.id, queued, NOW)
    waiting = submit(db, job).created[0]
    assert waiting.status is RunStatus.WAITING
    _, freed = end(db, first.id, 0)  # the run that ended was started under allow
    assert [r.id for r in freed.created] == [waiting.id]
    # Back to allow: every waiting run goes at once.
    more = [submit(db, job).created[0] for _ in range(2)]
    db.write_sync(job_store.update, job.id, JobSpec.from_dict(queued.to_dict() | {
        "concurrency": "allow"}), NOW)
    start(db, waiting.id)
    _, freed = end(db, waiting.id, 0)
    assert sorted(r.id for r in freed.created) == sorted(r.id for r in more)


def test_next_run_at_is_the_planned_slot_until_it_comes(db: Database) -> None:
    job = make_job(db, schedule={"every": "10s"})
    tick(db, NOW + 8 * S)  # slot 10 is planned ahead; the next to plan is slot 20
    planned = db.read_sync(job_store.get, str(job.id))
    assert next_run(planned, NOW + 8 * S) == NOW + 10 * S
    assert next_run(planned, NOW + 11 * S) == NOW + 20 * S  # before the next tick, too
