"""Scale: a server holding 10,000 and 100,000 scheduled jobs, idle.

    python bench/scale_jobs.py [--jobs 10000,100000] [--due 1000] [--idle 30] [--database-url URL]

For each size, on a fresh store (SQLite in a temporary folder, or a throwaway PostgreSQL database
created beside ``--database-url`` and dropped at the end):

1. inserts the jobs *directly through herder's own store code* (``store.migrate.upgrade``, then
   ``store.jobs.create`` with a ``JobSpec`` in batches of ``--batch``, one transaction each, on
   ``store.database.Database``'s writer): 100,000 creates over the HTTP API would take far
   longer and measure the API, not the scheduler at scale. ``--jobs`` jobs have the cron
   ``0 0 1 1 *`` (not due during the measurement); ``--due`` more have ``* * * * *`` with
   ``start`` an hour ahead, so they come due at one known minute no server here reaches;
2. starts ``herder server`` on it and, after ``--settle`` seconds, measures over ``--idle``
   seconds the server process's CPU (utime + stime from /proc/PID/stat, as % of one core) and
   its VmRSS (from /proc/PID/status; the largest sample and VmHWM are shown);
3. times, in this process against the same store while the server runs, what the scheduler
   does: (a) the idle check its loop makes every second (``engine._next_times``, through
   ``Database.read_sync`` as the server's reader threads do) and (b) ``scheduler.tick`` at the
   due minute, which plans ``TICK_BATCH`` (200) due jobs and creates their runs; each tick runs
   in its own write transaction that is rolled back, so nothing is left behind and the server
   never sees those runs. "all due" is the ticks that plan every ``--due`` job, in one
   rolled-back transaction. It also times ``GET /api/v1/jobs?limit=100``.

Goals at 100,000 jobs: under 300 MB RSS and under 2 % idle CPU.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import Connection

from harness import start_server, stop_server, stop_supervisors, supervisors_of, throwaway_database
from herder.engine import scheduler
from herder.engine.engine import _next_times
from herder.model.jobs import JobSpec
from herder.model.policies import PLAN_AHEAD
from herder.model.schedules import Schedule, parse_schedule
from herder.store import jobs as job_store
from herder.store.database import Database
from herder.store.migrate import upgrade

IDLE_CRON = "0 0 1 1 *"
TICKS = 5  # rolled-back ticks timed per size
CHECKS = 100  # idle checks timed per size


# /proc -------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def is_server(pid: int) -> bool:
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return b"herder" in args and b"server" in args


# Figures -----------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Result:
    jobs: int
    insert_rate: float = 0.0
    startup: float = 0.0
    rss_mb: float = 0.0
    hwm_mb: float = 0.0
    cpu_pct: float = 0.0
    checks: list[float] = field(default_factory=list)
    ticks: list[float] = field(default_factory=list)
    tick_jobs: int = 0
    all_due: float = 0.0
    all_due_ticks: int = 0
    listing: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def insert_jobs(db: Database, count: int, due: int, batch: int, now: datetime,
                due_slot: datetime) -> float:
    """Create the jobs through ``store.jobs.create``, ``batch`` per transaction; jobs/s."""
    idle = parse_schedule({"cron": IDLE_CRON})
    soon = parse_schedule({"cron": "* * * * *", "start": due_slot.isoformat()})
    plan: list[tuple[str, Schedule]] = [(f"idle-{i:06d}", idle) for i in range(count)]
    plan += [(f"due-{i:05d}", soon) for i in range(due)]

    def create(conn: Connection, part: list[tuple[str, Schedule]]) -> None:
        for name, schedule in part:
            spec = JobSpec(name=name, namespace="bench", command=["true"], schedule=schedule)
            job_store.create(conn, spec, now)

    began = time.perf_counter()
    for first in range(0, len(plan), batch):
        db.write_sync(create, plan[first:first + batch])
    return len(plan) / (time.perf_counter() - began)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    value = fn()
    return time.perf_counter() - began, value


def time_scheduler(store_url: str, result: Result, due: int, due_slot: datetime) -> None:
    """The idle check and rolled-back ticks, against the store the server is using."""
    db = Database(store_url)
    try:
        for _ in range(CHECKS):
            took, (plan, _held) = timed(lambda: db.read_sync(_next_times, datetime.now(UTC)))
            result.checks.append(took)
        # Jobs under concurrency allow are planned model.policies.PLAN_AHEAD before their slot.
        if due and plan != due_slot - PLAN_AHEAD:
            result.notes.append(f"the idle check found {plan}, not the due minute {due_slot} "
                                f"less {PLAN_AHEAD.total_seconds():g} s")
        moment = due_slot + timedelta(seconds=1)
        with db.engine.connect().execution_options(herder_writer=True) as conn:
            for _ in range(TICKS if due else 0):
                with conn.begin() as transaction:
                    took, done = timed(
                        lambda: scheduler.tick(conn, moment)
                    )
                    result.ticks.append(took)
                    result.tick_jobs = done.jobs
                    if len(done.admitted.created) != done.jobs:
                        result.notes.append(f"a tick planned {done.jobs} jobs but created "
                                            f"{len(done.admitted.created)} runs")
                    transaction.rollback()
            if due:
                with conn.begin() as transaction:
                    began = time.perf_counter()
                    while True:
                        done = scheduler.tick(conn, moment)
                        result.all_due_ticks += 1
                        if not done.full:
                            break
                    result.all_due = time.perf_counter() - began
                    transaction.rollback()
    finally:
        db.close()


def measure_idle(pid: int, seconds: float, result: Result) -> None:
    rss = [status_kb(pid, "VmRSS")]
    began, cpu = time.monotonic(), cpu_seconds(pid)
    while time.monotonic() - began < seconds:
        time.sleep(min(1.0, seconds - (time.monotonic() - began)))
        rss.append(status_kb(pid, "VmRSS"))
    result.cpu_pct = 100 * (cpu_seconds(pid) - cpu) / (time.monotonic() - began)
    result.rss_mb = max(rss) / 1024
    result.hwm_mb = status_kb(pid, "VmHWM") / 1024


def one_size(count: int, args: argparse.Namespace) -> Result:
    result = Result(jobs=count)
    folder = Path(tempfile.mkdtemp(prefix="hb-scale-", dir="/tmp"))
    data_dir = (folder / "data").resolve()
    data_dir.mkdir(mode=0o700)
    with throwaway_database(args.database_url) as db_url:
        store_url = db_url or f"sqlite:///{data_dir / 'herder.db'}"
        now = datetime.now(UTC)
        due_slot = (now + timedelta(hours=1)).replace(second=0, microsecond=0)
        db = Database(store_url)
        try:
            upgrade(db.engine)
            result.insert_rate = insert_jobs(db, count, args.due, args.batch, now, due_slot)
        finally:
            db.close()
        began = time.monotonic()
        process, url = start_server(data_dir, db_url, folder / "server.log", timeout=120)
        try:
            result.startup = time.monotonic() - began
            if not is_server(process.pid):
                raise RuntimeError(f"pid {process.pid} is not the herder server")
            time.sleep(args.settle)
            measure_idle(process.pid, args.idle, result)
            with httpx.Client(base_url=url, timeout=60) as client:
                for _ in range(5):
                    took, response = timed(lambda: client.get("/api/v1/jobs",
                                                              params={"limit": "100"}))
                    response.raise_for_status()
                    result.listing.append(took)
                runs = client.get("/api/v1/runs", params={"limit": "1"}).json()["items"]
            if runs:
                result.notes.append("runs were created during the measurement")
            time_scheduler(store_url, result, args.due, due_slot)
            if supervisors_of(data_dir):
                result.notes.append("a supervisor was started (no run should have been)")
        finally:
            stop_server(process)
            stop_supervisors(data_dir)
            if not db_url:
                size = sum(p.stat().st_size for p in data_dir.glob("herder.db*"))
                result.notes.append(f"SQLite file {size / 2**20:.0f} MB")
            shutil.rmtree(folder, ignore_errors=True)
    return result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def report(results: list[Result], args: argparse.Namespace) -> None:
    store = "PostgreSQL (throwaway database)" if args.database_url else "SQLite"
    print(f"\nstore: {store}; cores: {os.cpu_count()}; idle window {args.idle:g} s after "
          f"{args.settle:g} s; {args.due} due jobs beside the idle ones\n")
    head = ("jobs", "insert/s", "start s", "RSS MB", "HWM MB", "idle CPU %",
            "check p50 ms", "check p99 ms", "tick p50 ms", "tick max ms", "all due ms",
            "GET jobs p50 ms")
    rows = [
        (f"{r.jobs:,}", f"{r.insert_rate:.0f}", f"{r.startup:.1f}", f"{r.rss_mb:.0f}",
         f"{r.hwm_mb:.0f}", f"{r.cpu_pct:.2f}", ms(pct(r.checks, 50)), ms(pct(r.checks, 99)),
         ms(pct(r.ticks, 50)) if r.ticks else "-", ms(max(r.ticks)) if r.ticks else "-",
         f"{ms(r.all_due)} ({r.all_due_ticks} ticks)" if r.all_due_ticks else "-",
         ms(pct(r.listing, 50)))
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for row in rows:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    print(f"\ntick: one scheduler.tick planning {results[-1].tick_jobs} due jobs "
          f"(TICK_BATCH {scheduler.TICK_BATCH}), {TICKS} times, each rolled back; check: "
          f"engine._next_times, {CHECKS} times")
    for r in results:
        goals = ""
        if r.jobs >= 100_000:
            goals = (f"; goals: RSS < 300 MB {'met' if r.rss_mb < 300 else 'NOT met'}, "
                     f"idle CPU < 2 % {'met' if r.cpu_pct < 2 else 'NOT met'}")
        print(f"{r.jobs:,} jobs: {'; '.join(r.notes) or 'no notes'}{goals}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--jobs", default="10000,100000",
                        help="comma-separated sizes, each on a fresh store")
    parser.add_argument("--due", type=int, default=1000, help="jobs due at the timed tick")
    parser.add_argument("--idle", type=float, default=30, help="seconds of the CPU window")
    parser.add_argument("--settle", type=float, default=3, help="seconds before the window")
    parser.add_argument("--batch", type=int, default=5000, help="jobs per insert transaction")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL to create throwaway databases beside")
    args = parser.parse_args()
    results = []
    for count in (int(n) for n in args.jobs.split(",")):
        print(f"{count:,} jobs ...", flush=True)
        results.append(one_size(count, args))
    report(results, args)


if __name__ == "__main__":
    main()
