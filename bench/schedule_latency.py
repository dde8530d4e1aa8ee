"""Schedule latency: how late after its slot a scheduled run's process starts.

    python bench/schedule_latency.py [--seconds 30] [--many 1000] [--lead 20] [--database-url URL]

Starts a real ``herder server`` (SQLite in a temporary folder unless ``--database-url``; with
one, a throwaway database is created beside it and dropped at the end) and measures two things:

a) one job with the cron ``* * * * * *`` for ``--seconds``: for every run, the delay from its
   slot (``scheduled_for``) to ``started_at`` (stamped by the server right after the backend
   confirmed the spawn), and to the moment the process itself reads the clock: the command is
   ``bash -c 'printf ... "$EPOCHREALTIME" >> file'`` (a bash builtin, no extra fork), so that
   figure includes bash's own exec and start-up, shown beside it as "bare bash start";
b) ``--many`` jobs, each ``{"at": S}`` for the same whole second S about ``--lead`` seconds
   ahead (created over HTTP first): the spread of their ``started_at - S`` and whether all of
   them started within 1 s of S. Their command is ``true`` (``--probe-many`` gives them the bash
   probe too; 1,000 bash start-ups cost CPU of their own on a small machine).

Before (a), one manual run starts the data folder's supervisor, so that its start-up (a Python
process) is not counted in the first slot; the supervisor is told to stay up between the phases.
The first slot after the job is created is left out: it may come less than the engine's lead
(0.5 s) after the create. Goals: single job p50 < 5 ms and p99 < 20 ms; all of (b) within 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from harness import start_server, stop_server, stop_supervisors, throwaway_database

BASH = shutil.which("bash")
ACTIVE = "READY,WAITING,JOB_DEPLOYED,PENDING,RUNNING,IN_DOUBT"
TERMINAL = {"SUCCESS", "APP_ERROR", "PROC_ERROR", "TIMEOUT", "ABORTED", "SKIPPED"}


# Figures -----------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (with few samples, p99 is the largest but one or the max)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:9.2f}"


def when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def probe_command(path: Path) -> list[str]:
    """argv that appends ``RUN_ID EPOCHREALTIME`` to ``path`` without forking anything."""
    assert BASH is not None
    script = f'printf "%s %s\\n" "$HERDER_RUN_ID" "$EPOCHREALTIME" >> {shlex.quote(str(path))}'
    return [BASH, "-c", script]


def read_probe(path: Path) -> dict[int, float]:
    starts: dict[int, float] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            run_id, _, moment = line.partition(" ")
            starts[int(run_id)] = float(moment.replace(",", "."))
    return starts


def bare_bash_start(count: int = 30) -> list[float]:
    """Seconds from just before ``Popen`` to bash reading ``$EPOCHREALTIME``: the floor the
    in-process figures include."""
    assert BASH is not None
    delays = []
    for _ in range(count):
        before = time.time()
        out = subprocess.run([BASH, "-c", 'printf "%s" "$EPOCHREALTIME"'], capture_output=True,
                             check=True, text=True).stdout
        delays.append(float(out.replace(",", ".")) - before)
    return delays


def runs_of(client: httpx.Client, **search: str) -> list[dict[str, Any]]:
    """Every run matching ``search`` (all pages)."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = dict(search, limit="1000") | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/runs", params=params)
        page.raise_for_status()
        body = page.json()
        found.extend(body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            return found


def delays(runs: list[dict[str, Any]], field: str) -> list[float]:
    out = []
    for run in runs:
        slot, moment = when(run["scheduled_for"]), when(run.get(field))
        if slot is not None and moment is not None:
            out.append((moment - slot).total_seconds())
    return out


def probe_delays(runs: list[dict[str, Any]], starts: dict[int, float]) -> list[float]:
    out = []
    for run in runs:
        slot = when(run["scheduled_for"])
        if slot is not None and run["id"] in starts:
            out.append(starts[run["id"]] - slot.timestamp())
    return out


def row(label: str, values: list[float], goal: str = "") -> str:
    if not values:
        return f"  {label:<28}{'(none)':>6}"
    return (f"  {label:<28}{len(values):>6}{ms(min(values))}{ms(pct(values, 50))}"
            f"{ms(pct(values, 90))}{ms(pct(values, 99))}{ms(max(values))}   {goal}")


HEADER = (f"  {'delay after the slot (ms)':<28}{'n':>6}{'min':>9}{'p50':>9}{'p90':>9}{'p99':>9}"
          f"{'max':>9}   goal")


# Phase a: one job every second ----------------------------------------------------------------


def wait_ended(client: httpx.Client, run_id: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] in TERMINAL or time.monotonic() > deadline:
            return run
        time.sleep(0.02)


def warm_up(client: httpx.Client) -> None:
    """One manual run, so the supervisor is up before the first slot is measured."""
    created = client.post("/api/v1/jobs", json={"name": "warm-up", "namespace": "bench-warm",
                                                 "command": ["true"]})
    created.raise_for_status()
    run = client.post("/api/v1/jobs/bench-warm/warm-up/runs")
    run.raise_for_status()
    wait_ended(client, run.json()["id"])


def single_job(client: httpx.Client, seconds: float, probe: Path | None) -> None:
    spec: dict[str, Any] = {
        "name": "every-second", "namespace": "bench-one",
        "command": probe_command(probe) if probe else ["true"],
        "schedule": {"cron": "* * * * * *"},
    }
    created_at = datetime.now(UTC)
    client.post("/api/v1/jobs", json=spec).raise_for_status()
    time.sleep(seconds + 1.0)
    client.post("/api/v1/jobs/bench-one/every-second/disable").raise_for_status()
    time.sleep(1.0)  # the last runs end
    first = created_at.replace(microsecond=0) + timedelta(seconds=2)  # dropped: the first slot
    runs = [r for r in runs_of(client, job="bench-one/every-second")
            if r["scheduled_for"] and datetime.fromisoformat(r["scheduled_for"]) >= first]
    slots = [datetime.fromisoformat(r["scheduled_for"]) for r in runs]
    expected = int((max(slots) - first).total_seconds()) + 1 if slots else 0  # no gaps: equal
    ok = sum(1 for r in runs if r["status"] == "SUCCESS")
    statuses = sorted({r["status"] for r in runs})
    print(f"\na) one job, cron '* * * * * *', {seconds:g} s: {len(runs)} slots measured "
          f"(of {expected} since the second slot), {ok} SUCCESS, statuses {statuses}")
    print(HEADER)
    started = delays(runs, "started_at")
    p50, p99 = (pct(started, 50), pct(started, 99)) if started else (math.inf, math.inf)
    verdict = "met" if p50 < 0.005 and p99 < 0.020 else "NOT met"
    print(row("created_at - slot", delays(runs, "created_at"), "(negative: ahead of the slot)"))
    print(row("started_at - slot", started, f"p50 < 5, p99 < 20: {verdict}"))
    if probe:
        print(row("process reads clock - slot", probe_delays(runs, read_probe(probe)),
                  "(includes bash exec + start-up)"))


# Phase b: many jobs in one second -------------------------------------------------------------


async def create_many(url: str, specs: list[dict[str, Any]], concurrency: int = 8) -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for spec in specs:
        queue.put_nowait(spec)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            spec = queue.get_nowait()
            response = await client.post("/api/v1/jobs", json=spec)
            if response.status_code != 201:
                raise RuntimeError(f"job create failed: {response.status_code} {response.text}")

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


def wait_all(client: httpx.Client, count: int, deadline: datetime,
             margin: float) -> list[dict[str, Any]]:
    """Every run of phase b once none is active. Until then only a one-item page of active runs
    is asked for (twice a second): listing 1,000 runs costs the server CPU it would take from
    starting them."""
    time.sleep(max(0.0, margin + 1.0))
    runs: list[dict[str, Any]] = []
    while datetime.now(UTC) < deadline:
        active = client.get("/api/v1/runs", params={"namespace": "bench-many",
                                                    "status": ACTIVE, "limit": "1"})
        active.raise_for_status()
        if not active.json()["items"]:
            runs = runs_of(client, namespace="bench-many")
            if len(runs) >= count:
                break
        time.sleep(0.5)
    return runs


def many_jobs(client: httpx.Client, url: str, count: int, lead: float,
              probe: Path | None, dump: Path | None) -> None:
    slot = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=math.ceil(lead))
    command = probe_command(probe) if probe else ["true"]
    specs = [{"name": f"at-{i:05d}", "namespace": "bench-many", "command": command,
              "schedule": {"at": slot.isoformat().replace("+00:00", "Z")}}
             for i in range(count)]
    began = time.monotonic()
    asyncio.run(create_many(url, specs))
    took = time.monotonic() - began
    margin = (slot - datetime.now(UTC)).total_seconds()
    print(f"\nb) {count} jobs with at={slot.isoformat()}: created over HTTP in {took:.1f} s "
          f"({count / took:.0f}/s), {margin:.1f} s before the slot")
    if margin < 1.0:
        print("   WARNING: created less than 1 s before the slot; raise --lead")
    runs = wait_all(client, count, slot + timedelta(seconds=60), margin)
    if dump:
        starts = read_probe(probe) if probe else {}
        dump.write_text(json.dumps([r | {"process_started": starts.get(r["id"])} for r in runs]))
    started = delays(runs, "started_at")
    within = sum(1 for d in started if d <= 1.0)
    ok = sum(1 for r in runs if r["status"] == "SUCCESS")
    print(f"   runs: {len(runs)} of {count}, {ok} SUCCESS, statuses "
          f"{sorted({r['status'] for r in runs})}")
    print(HEADER)
    print(row("created_at - slot", delays(runs, "created_at"), "(negative: ahead of the slot)"))
    verdict = "met" if within == count else "NOT met"
    print(row("started_at - slot", started, f"all within 1 s: {verdict}"))
    if probe:
        print(row("process reads clock - slot", probe_delays(runs, read_probe(probe)),
                  "(includes bash exec + start-up)"))
    if started:
        print(f"   spread of started_at (max - min): {(max(started) - min(started)) * 1000:.1f} ms"
              f"; started within 1 s of the slot: {within} of {count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30, help="length of phase a (0: skip)")
    parser.add_argument("--many", type=int, default=1000, help="jobs in phase b (0: skip)")
    parser.add_argument("--lead", type=float, default=20,
                        help="seconds from the start of phase b to its slot")
    parser.add_argument("--probe-many", action="store_true",
                        help="phase b runs the bash clock probe instead of true")
    parser.add_argument("--dump", type=Path, default=None,
                        help="write phase b's runs (with the probe's start) to this JSON file")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL to create a throwaway database beside")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="hb-sched-", dir="/tmp"))
    data_dir = folder / "data"
    with throwaway_database(args.database_url) as db_url:
        process, url = start_server(
            data_dir, db_url, folder / "server.log", make_data_dir=True,
            # stays warm between the phases; killed at the end
            extra_env={"HERDER_SUPERVISOR_IDLE": "600"},
        )
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                bare = bare_bash_start() if BASH else []
                print(f"store:   {'PostgreSQL (throwaway database)' if db_url else 'SQLite'}")
                print(f"cores:   {os.cpu_count()}")
                if bare:
                    print(f"bare bash start (Popen to $EPOCHREALTIME, in this process): "
                          f"p50 {pct(bare, 50) * 1000:.2f} ms, max {max(bare) * 1000:.2f} ms")
                else:
                    print("no bash: only started_at-based figures (stamped by the server)")
                warm_up(client)
                if args.seconds > 0:
                    single_job(client, args.seconds, folder / "one.txt" if BASH else None)
                if args.many > 0:
                    probe = folder / "many.txt" if BASH and args.probe_many else None
                    many_jobs(client, url, args.many, args.lead, probe, args.dump)
        finally:
            stop_server(process)
            stop_supervisors(data_dir)
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
