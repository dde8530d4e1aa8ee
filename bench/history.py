"""History at scale: the common run searches over 1,000,000 stored runs, and a large log.

    python bench/history.py [--runs 1000000] [--requests 200] [--log-mb 200] [--database-url URL]

On a fresh store (SQLite in a temporary folder, or a throwaway PostgreSQL database created
beside ``--database-url`` and dropped at the end):

1. fills it *before* the server starts: ``store.migrate.upgrade``, ``--jobs`` jobs through
   ``store.jobs.create``, then ``--runs`` runs as bulk INSERTs with SQLAlchemy Core into
   ``runs`` (``--batch`` rows per executemany, one transaction each). The runs are spread over
   the last 90 days, ``created_at`` growing with the id; about 5 % APP_ERROR, 1 % PROC_ERROR,
   0.5 % TIMEOUT, the rest SUCCESS; triggered by the schedule (80 %) or the API. Jobs get runs
   by a Zipf law (the busiest about a fifth of them), except one daily job with 90 runs. Runs
   carry their job's labels ``{"team": one of 10, "env": prod|staging}``, except 100 runs,
   spread out, labelled ``team=audit`` (a rare value: the worst case of a label search).
   ``jobs.run_count`` is set to match. It prints the insert rate;
2. writes a ``--log-mb`` MB log (MB = 2**20 bytes) where the server reads it,
   ``<data>/runs/<id>/output.log``, for the newest SUCCESS run;
3. starts ``herder server`` and times, over one keep-alive HTTP connection, after
   ``--warmup`` requests, ``--requests`` requests of each search (p50/p95/max): the latest
   runs of a job (a busy one and the daily one, by name), the failed runs of the last day
   (and 5 pages of them with the cursor) and of the last hour (fewer than a page), by a
   common label and by the rare one, and free text (``q``) matching a busy job and the daily
   one. All with ``limit=50``. The same searches are timed in this process on
   ``store.runs.search`` through ``Database.read_sync`` (what the server's reader threads
   do), which separates the SQL from the HTTP and JSON work;
4. downloads the log (``GET /runs/{id}/logs``, and with ``follow=true``; the run has ended)
   streaming the body and counting bytes, and times the first byte of a read with ``offset``
   64 KiB before the end.

For every search whose p95 misses the goal it prints the SQL the store sent (captured from the
engine) and the database's plan for it on this data set (EXPLAIN QUERY PLAN on SQLite,
EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL); ``--explain`` prints them for every search.
``--try-indexes`` then creates candidate indexes by hand in the throwaway store (never in
src/'s schema), one after the other (they accumulate), and times the searches each is for
again (store side): the store's own query, or, where one is proposed, a rewritten one
(checked to find the same runs). With ``--explain``, that is every search, not only the slow
ones, so a regression of the fast ones shows too.

Goals: p95 of each search under 50 ms; log streaming above 100 MB/s.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from harness import start_server, stop_server, stop_supervisors, throwaway_database
from herder.model.jobs import JobSpec
from herder.model.runs import Run, RunStatus, Trigger
from herder.store import jobs as job_store
from herder.store import runs as run_store
from herder.store.database import Database, make_engine
from herder.store.migrate import upgrade
from herder.store.tables import jobs, runs

# The rows migration 0005 fills from the runs already kept: the same for the bulk-made runs.
LABEL_ROWS = importlib.import_module("herder.store.migrations.versions.0005_run_labels")._BACKFILL

GOAL_MS = 50.0
GOAL_MBS = 100.0
DAYS = 90
TEAMS = [f"team-{c}" for c in "abcdefghij"]
RARE_TEAM = "audit"
RARE_LABELLED = 100
FAILED = ("APP_ERROR", "PROC_ERROR", "TIMEOUT")
PAGES = 5
MIN_SAMPLES = 20
NOUNS = (
    "invoices thumbnails backups payroll sessions metrics sitemaps receipts ledgers emails "
    "reports caches indexes orders refunds coupons exports imports geodata forecasts "
    "shipments tickets surveys uploads vouchers accounts carts catalogs contracts dashboards "
    "feeds grades histories inventories leads manifests newsletters partners quotes ratings "
    "reviews schedules tariffs timesheets transcripts warranties webhooks licences audits "
    "snapshots"
).split()
VERBS = ["sync", "export", "build", "clean", "report"]
NAMESPACES = ["etl", "ops", "ml", "web", "billing"]


# The data set ------------------------------------------------------------------------------


@dataclass
class JobInfo:
    id: int
    namespace: str
    name: str
    noun: str
    spec: dict[str, Any]
    labels: dict[str, str]
    runs: int = 0

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Dataset:
    jobs: list[JobInfo]
    busy: JobInfo  # a typical busy job (Zipf rank 5)
    daily: JobInfo  # one run a day
    statuses: Counter[str]
    insert_seconds: float
    log_run: int = 0


def job_specs(count: int) -> list[JobSpec]:
    specs = []
    for i in range(count):
        noun = NOUNS[i % len(NOUNS)] + ("" if i < len(NOUNS) else f"{i}")
        team = TEAMS[i % len(TEAMS)]
        specs.append(JobSpec(
            name=f"{VERBS[i % len(VERBS)]}-{noun}", namespace=NAMESPACES[i % len(NAMESPACES)],
            description=f"{VERBS[i % len(VERBS)].capitalize()} the {noun} for {team}",
            labels={"team": team, "env": "staging" if i % 4 == 0 else "prod"},
            command=["/usr/local/bin/task", noun], timeout=3600,
        ))
    return specs


def fill(url: str, count: int, job_count: int, batch: int, now: datetime) -> Dataset:
    """Migrate, create the jobs, bulk-insert ``count`` runs; answers what was put in."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        infos = []
        with engine.begin() as conn:
            for spec in job_specs(job_count):
                job = job_store.create(conn, spec, now - timedelta(days=DAYS + 1))
                infos.append(JobInfo(job.id, spec.namespace, spec.name, spec.name.split("-")[1],
                                     spec.to_dict(), dict(spec.labels)))
        daily, others = infos[-1], infos[:-1]
        rng = random.Random(20261123)
        picks = rng.choices(others, cum_weights=list(_cumulative(len(others))), k=count)
        daily_every = max(1, count // DAYS)
        rare_every = max(1, count // RARE_LABELLED)
        step = DAYS * 86400 / count
        start = now - timedelta(days=DAYS)
        statuses: Counter[str] = Counter()
        began = time.perf_counter()
        for first in range(0, count, batch):
            rows = []
            for i in range(first, min(first + batch, count)):
                job = daily if i % daily_every == daily_every - 1 else picks[i]
                created = start + timedelta(seconds=(i + rng.random() * 0.5) * step)
                row = _run_row(rng, job, created)
                if i % rare_every == rare_every // 2:
                    row["labels"] = {"team": RARE_TEAM, "env": "prod"}
                job.runs += 1
                statuses[row["status"]] += 1
                rows.append(row)
            with engine.begin() as conn:
                conn.execute(runs.insert(), rows)
        with engine.begin() as conn:  # the label rows the store writes with each run
            conn.exec_driver_sql(LABEL_ROWS[engine.dialect.name])
            conn.execute(jobs.update().where(jobs.c.id == sa.bindparam("jid"))
                         .values(run_count=sa.bindparam("n")),
                         [{"jid": j.id, "n": j.runs} for j in infos])
        seconds = time.perf_counter() - began
        if engine.dialect.name == "postgresql":  # what autovacuum would do a minute later
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE runs")
                conn.exec_driver_sql("VACUUM ANALYZE jobs")
        busy = sorted(others, key=lambda j: -j.runs)[min(4, len(others) - 1)]
        return Dataset(infos, busy, daily, statuses, seconds)
    finally:
        engine.dispose()


def _cumulative(n: int) -> Iterator[float]:
    total = 0.0
    for rank in range(n):
        total += 1 / (rank + 1)
        yield total


def _run_row(rng: random.Random, job: JobInfo, created: datetime) -> dict[str, Any]:
    roll = rng.random()
    status, exit_code, error, reason = "SUCCESS", 0, None, None
    if roll < 0.05:
        status, exit_code, error = "APP_ERROR", rng.choice((1, 2, 3, 137)), None
    elif roll < 0.06:
        status, exit_code, error = "PROC_ERROR", None, "could not start: No such file or directory"
    elif roll < 0.065:
        status, exit_code, error, reason = "TIMEOUT", None, "stopped at its timeout", "timeout"
    scheduled = rng.random() < 0.8
    started = created + timedelta(milliseconds=rng.uniform(2, 40))
    return {
        "job_id": job.id, "namespace": job.namespace, "job_name": job.name, "status": status,
        "trigger": (Trigger.SCHEDULE if scheduled else Trigger.API).value, "attempt": 1,
        "parent_id": None, "submitter": None if scheduled else "ci-bot",
        "params": {}, "env": {}, "spec": job.spec, "backend": "local", "node": "bench-host",
        "labels": job.labels, "exit_code": exit_code, "error": error,
        "scheduled_for": created if scheduled else None, "created_at": created,
        "started_at": started, "finished_at": started + timedelta(seconds=rng.uniform(0.5, 900)),
        "deadline_at": None, "cancel_requested_at": None, "cancel_force": False,
        "stop_reason": reason, "handle": None, "owner": None, "owner_epoch": None,
        "not_before": None, "outputs": None, "outputs_error": None,
    }


def write_log(data_dir: Path, run_id: int, megabytes: int) -> int:
    """A ``megabytes`` MB log of plausible lines for ``run_id``; answers its size."""
    folder = data_dir / "runs" / str(run_id)
    folder.mkdir(parents=True)
    lines, size, n = [], 0, 0
    while size < 2**20:
        line = (f"2026-11-23T08:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1000:03d}Z INFO "
                f"worker-{n % 8} processed batch {n} (rows=5000, {n % 97 + 3}.{n % 10} ms)\n")
        lines.append(line)
        size += len(line)
        n += 1
    block = "".join(lines).encode()[: 2**20]
    with (folder / "output.log").open("wb") as out:
        for _ in range(megabytes):
            out.write(block)
    return megabytes * 2**20


# The searches ------------------------------------------------------------------------------


@dataclass
class Search:
    name: str
    http: dict[str, Any]  # query parameters (the API adds limit + 1 itself)
    store: dict[str, Any]  # store.runs.search arguments, as the API passes them
    pages: int = 1
    http_ms: list[float] = field(default_factory=list)
    store_ms: list[float] = field(default_factory=list)
    rows: int = 0
    tried: dict[str, list[float]] = field(default_factory=dict)  # --try-indexes figures


RunQuery = Callable[[Connection, Search], list[Run]]


def searches(data: Dataset, now: datetime) -> list[Search]:
    since = now - timedelta(days=1)
    hour = now - timedelta(hours=1)  # fewer failures than a page: no early stop by id
    failed = [RunStatus(s) for s in FAILED]
    by_job = {job.ref: job for job in data.jobs}

    def job(ref: str) -> dict[str, Any]:
        info = by_job[ref]
        return {"namespace": info.namespace, "job_name": info.name}

    busy, daily = data.busy, data.daily
    return [
        Search(f"latest of a job ({busy.runs:,} runs)", {"job": busy.ref}, job(busy.ref)),
        Search(f"latest of a job ({daily.runs:,} runs)", {"job": daily.ref}, job(daily.ref)),
        Search("failed, last day", {"status": list(FAILED), "since": since.isoformat()},
               {"statuses": failed, "since": since}),
        Search("failed, last hour", {"status": list(FAILED), "since": hour.isoformat()},
               {"statuses": failed, "since": hour}),
        Search(f"failed, last day, {PAGES} pages", {"status": list(FAILED),
                                                    "since": since.isoformat()},
               {"statuses": failed, "since": since}, pages=PAGES),
        Search(f"label team={TEAMS[1]}", {"label": f"team={TEAMS[1]}"},
               {"labels": {"team": TEAMS[1]}}),
        Search(f"label team={RARE_TEAM} ({RARE_LABELLED} runs)", {"label": f"team={RARE_TEAM}"},
               {"labels": {"team": RARE_TEAM}}),
        Search(f"q={busy.noun} ({busy.runs:,} runs)", {"q": busy.noun}, {"q": busy.noun}),
        Search(f"q={daily.noun} ({daily.runs:,} runs)", {"q": daily.noun}, {"q": daily.noun}),
    ]


def time_http(client: httpx.Client, search: Search, warmup: int, count: int, budget: float
              ) -> None:
    def walk(record: bool) -> None:
        params = dict(search.http, limit=50)
        for _ in range(search.pages):
            began = time.perf_counter()
            response = client.get("/api/v1/runs", params=params)
            took = (time.perf_counter() - began) * 1000
            response.raise_for_status()
            page = response.json()
            if record:
                search.http_ms.append(took)
                search.rows = max(search.rows, len(page["items"]))
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]

    repeat(walk, warmup, count, budget)


def repeat(walk: Callable[[bool], None], warmup: int, count: int, budget: float) -> None:
    """``walk(False)`` ``warmup`` times, then ``walk(True)`` ``count`` times; a slow search
    stops earlier, after ``budget`` seconds of timed walks but no fewer than MIN_SAMPLES."""
    began = time.monotonic()
    for i in range(warmup):
        if i >= 2 and time.monotonic() - began > budget / 4:
            break
        walk(False)
    began = time.monotonic()
    for i in range(count):
        if i >= MIN_SAMPLES and time.monotonic() - began > budget:
            break
        walk(True)


def time_store(db: Database, search: Search, warmup: int, count: int, budget: float,
               out: list[float] | None = None) -> None:
    samples = search.store_ms if out is None else out

    def walk(record: bool) -> None:
        before = None
        for _ in range(search.pages):
            began = time.perf_counter()
            found = db.read_sync(run_store.search, **search.store, before_id=before, limit=51)
            if record:
                samples.append((time.perf_counter() - began) * 1000)
            if len(found) < 51:
                break
            before = found[49].id

    repeat(walk, warmup, count, budget)


@contextlib.contextmanager
def captured(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """The statements sent to the database meanwhile, with their parameters."""
    sent: list[tuple[str, Any]] = []

    def listener(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", listener)
    try:
        yield sent
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", listener)


def explain(db: Database, search: Search, query: RunQuery | None = None) -> str:
    """The SQL of the search's first page (``query``'s, else the store's) and the plan the
    database makes for it; each distinct statement once."""
    with captured(db) as sent:
        if query is None:
            db.read_sync(run_store.search, **search.store, before_id=None, limit=51)
        else:
            db.read_sync(query, search)
    lines: list[str] = []
    seen = set()
    for statement, params in sent:
        if "FROM runs" not in statement or statement in seen:
            continue
        seen.add(statement)
        lines.extend("    " + line for line in statement.strip().splitlines())
        lines.append(f"    -- parameters: {params!r}")
        with db.engine.connect() as conn:
            if db.dialect == "sqlite":
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
                depth = {0: 0}
                for node, parent, _, detail in plan:
                    depth[node] = depth.get(parent, 0) + 1
                    lines.append("    plan: " + "  " * (depth[node] - 1) + detail)
            else:
                plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement,
                                            params).all()
                lines.extend("    plan: " + row[0] for row in plan)
            conn.rollback()
    return "\n".join(lines)


# Index experiments (--try-indexes) -----------------------------------------------------------

@dataclass
class Trial:
    """DDL run by hand in the throwaway store, the searches it is for, and the query to time:
    None for the store's own ``store.runs.search`` (unchanged), else a rewritten one."""

    name: str
    ddl: list[str]
    applies: Callable[[Search], bool]
    query: RunQuery | None = None
    columns: tuple[str, ...] = ()  # a plain index on these: skipped if the schema has one


def _first_page(statement: sa.Select[Any], conn: Connection) -> list[Run]:
    return [run_store.row_to_run(row) for row in conn.execute(statement)]


def labels_contain(conn: Connection, search: Search) -> list[Run]:
    """PostgreSQL: ``labels @> '{"k": "v"}'``, which a GIN index on labels serves."""
    wanted = sa.type_coerce(runs.c.labels, postgresql.JSONB).contains(search.store["labels"])
    return _first_page(sa.select(runs).where(wanted).order_by(runs.c.id.desc()).limit(51), conn)


def labels_literal_path(conn: Connection, search: Search) -> list[Run]:
    """SQLite: the JSON path as a literal (the store binds it as a parameter, so no expression
    index can match), without the CAST, as the expression index is written."""
    query = sa.select(runs).order_by(runs.c.id.desc()).limit(51)
    for key, value in search.store["labels"].items():  # keys are [A-Za-z0-9._/-]: no quoting
        path = sa.literal_column(f"'$.\"{key}\"'")
        query = query.where(sa.func.json_extract(runs.c.labels, path) == value)
    return _first_page(query, conn)


def trials(dialect: str) -> list[Trial]:
    def labels(s: Search) -> bool:
        return "labels" in s.store

    def by_name(s: Search) -> bool:
        return "job_name" in s.store

    def failed(s: Search) -> bool:
        return "statuses" in s.store

    def text(s: Search) -> bool:
        return "q" in s.store

    common = [
        Trial("index (namespace, job_name, id)",
              ["CREATE INDEX ix_try_runs_namespace_job_name_id ON runs (namespace, job_name, id)"],
              by_name, columns=("namespace", "job_name", "id")),
        Trial("index (status, created_at)",
              ["CREATE INDEX ix_try_runs_status_created_at ON runs (status, created_at)"], failed,
              columns=("status", "created_at")),
        Trial("+ index (created_at)",
              ["CREATE INDEX ix_try_runs_created_at ON runs (created_at)"], failed,
              columns=("created_at",)),
    ]
    if dialect == "postgresql":
        return [
            *common,
            Trial("index ((labels ->> 'team'), id)",
                  ["CREATE INDEX ix_try_runs_labels_team ON runs ((labels ->> 'team'), id)"],
                  labels),
            Trial("GIN (labels jsonb_path_ops), query labels @> :labels",
                  ["CREATE INDEX ix_try_runs_labels_gin ON runs USING gin (labels jsonb_path_ops)"],
                  labels, labels_contain),
            Trial("pg_trgm GIN on job_name and spec ->> 'description'",
                  ["CREATE EXTENSION IF NOT EXISTS pg_trgm",
                   "CREATE INDEX ix_try_runs_job_name_trgm ON runs USING gin "
                   "(job_name gin_trgm_ops)",
                   "CREATE INDEX ix_try_runs_description_trgm ON runs USING gin "
                   "((spec ->> 'description') gin_trgm_ops)"],
                  text),
        ]
    return [
        *common,
        Trial("index (JSON_EXTRACT(labels, '$.\"team\"'), id), literal path",
              ["CREATE INDEX ix_try_runs_labels_team ON runs "
               "(json_extract(labels, '$.\"team\"'), id)"],
              labels, labels_literal_path),
        Trial("ANALYZE (statistics; herder never runs it), all of the above in place", ["ANALYZE"],
              lambda s: True),
    ]


def try_indexes(db: Database, found: list[Search], args: argparse.Namespace) -> list[str]:
    """Apply each trial in turn (they accumulate), re-time the searches it is for; answers
    notes: how long each DDL took, whether a rewritten query found the same runs, plans."""
    notes = []
    with db.engine.connect() as conn:
        existing = {tuple(ix["column_names"]): ix["name"]
                    for ix in sa.inspect(conn).get_indexes("runs")}
    for trial in trials(db.dialect):
        targets = [s for s in found if trial.applies(s)]
        if not targets:
            continue
        if trial.columns in existing:
            notes.append(f"{trial.name}: skipped, the schema has it ({existing[trial.columns]})")
            continue
        began = time.perf_counter()
        with db.engine.begin() as conn:  # DDL is transactional on both stores
            for statement in trial.ddl:
                conn.exec_driver_sql(statement)
            if db.dialect == "postgresql" and trial.ddl:
                conn.exec_driver_sql("ANALYZE runs")  # expression indexes get statistics
        notes.append(f"{trial.name}: DDL took {time.perf_counter() - began:.1f} s")
        for search in targets:
            samples: list[float] = []
            if trial.query is None:
                time_store(db, search, args.warmup, args.requests, args.budget, samples)
                if args.explain_tried:
                    notes.append(f"  {search.name}, plan with it:\n{explain(db, search)}")
            else:
                query = trial.query
                expected = [r.id for r in db.read_sync(run_store.search, **search.store,
                                                       limit=51)]
                got = [r.id for r in db.read_sync(query, search)]
                if args.explain_tried:
                    notes.append(f"  {search.name}, rewritten, plan:\n"
                                 f"{explain(db, search, query)}")
                if got != expected:
                    notes.append(f"  {search.name}: the rewritten query found other runs "
                                 f"({len(got)} vs {len(expected)}; first {got[:3]} vs "
                                 f"{expected[:3]})")
                def walk(record: bool, query: RunQuery = query, search: Search = search,
                         samples: list[float] = samples) -> None:
                    began = time.perf_counter()
                    db.read_sync(query, search)
                    if record:
                        samples.append((time.perf_counter() - began) * 1000)

                repeat(walk, args.warmup, args.requests, args.budget)
            search.tried[trial.name] = samples
    return notes


# Logs --------------------------------------------------------------------------------------


@dataclass
class LogFigures:
    size: int = 0
    download: list[float] = field(default_factory=list)  # MB/s
    follow: list[float] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)
    tail_ms: list[float] = field(default_factory=list)
    disk: float = 0.0


def stream_rate(client: httpx.Client, run_id: int, params: dict[str, Any], size: int) -> float:
    began = time.perf_counter()
    got = 0
    with client.stream("GET", f"/api/v1/runs/{run_id}/logs", params=params) as response:
        response.raise_for_status()
        for chunk in response.iter_raw(2**20):
            got += len(chunk)
    took = time.perf_counter() - began
    if got != size:
        raise RuntimeError(f"log download gave {got} bytes, not {size}")
    return got / 2**20 / took


def time_logs(client: httpx.Client, data_dir: Path, run_id: int, size: int, repeat: int
              ) -> LogFigures:
    figures = LogFigures(size=size)
    path = data_dir / "runs" / str(run_id) / "output.log"
    began = time.perf_counter()
    with path.open("rb", buffering=0) as f:
        while f.read(2**20):
            pass
    figures.disk = size / 2**20 / (time.perf_counter() - began)
    stream_rate(client, run_id, {}, size)  # warm-up (and the page cache)
    for _ in range(repeat):
        figures.download.append(stream_rate(client, run_id, {}, size))
        figures.follow.append(stream_rate(client, run_id, {"follow": "true"}, size))
    offset = size - 64 * 2**10
    for _ in range(20):
        began = time.perf_counter()
        got = 0
        with client.stream("GET", f"/api/v1/runs/{run_id}/logs",
                           params={"offset": offset}) as response:
            response.raise_for_status()
            for chunk in response.iter_raw():
                if not got:
                    figures.ttfb_ms.append((time.perf_counter() - began) * 1000)
                got += len(chunk)
        figures.tail_ms.append((time.perf_counter() - began) * 1000)
        if got != size - offset:
            raise RuntimeError(f"range read gave {got} bytes, not {size - offset}")
    return figures


# Running it --------------------------------------------------------------------------------


def others_running() -> list[str]:
    """Command lines of benchmarks (``bench/`` in their arguments) not of this process tree."""
    mine = {os.getpid()}
    pid = os.getpid()
    while pid > 1:  # this process's ancestors (a shell whose command line names this script)
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        mine.add(pid)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            text = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "bench/" in text:
            found.append(f"{entry.name}: {text[:120]}")
    return found


def wait_for_quiet(limit: float) -> None:
    deadline = time.monotonic() + limit
    while (busy := others_running()) and time.monotonic() < deadline:
        print(f"waiting: another benchmark is running ({busy[0]})", flush=True)
        time.sleep(30)
    if busy:
        print(f"going ahead after {limit:g} s although {busy[0]} still runs", flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def print_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                    for i, (h, w) in enumerate(zip(head, widths, strict=True))))
    for row in rows:
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                        for i, (v, w) in enumerate(zip(row, widths, strict=True))))


def report(data: Dataset, found: list[Search], logs: LogFigures, args: argparse.Namespace,
           db_size: str) -> None:
    store = "PostgreSQL (throwaway database)" if args.database_url else "SQLite"
    total = sum(data.statuses.values())
    mix = ", ".join(f"{k} {v / total:.1%}" for k, v in data.statuses.most_common())
    print(f"\nstore: {store}; cores: {os.cpu_count()}; {total:,} runs of {len(data.jobs)} jobs "
          f"over {DAYS} days ({mix}); {db_size}")
    print(f"insert: {total / data.insert_seconds:,.0f} runs/s ({data.insert_seconds:.1f} s, "
          f"batches of {args.batch:,})\n")
    print(f"searches, limit=50: HTTP = GET /api/v1/runs over keep-alive; store = "
          f"store.runs.search through Database.read_sync; n = samples HTTP/store, up to "
          f"{args.requests} (times {PAGES} pages for the paged one) after {args.warmup}, fewer "
          f"when they took over {args.budget:g} s; ms\n")
    head = ("search", "rows", "n", "HTTP p50", "HTTP p95", "HTTP max", "store p50", "store p95",
            f"goal p95 < {GOAL_MS:g}")
    rows = []
    for s in found:
        worst = max(pct(s.http_ms, 95), pct(s.store_ms, 95))
        n = f"{len(s.http_ms)}/{len(s.store_ms)}"
        rows.append((s.name, str(s.rows), n, f"{pct(s.http_ms, 50):.1f}",
                     f"{pct(s.http_ms, 95):.1f}", f"{max(s.http_ms):.1f}",
                     f"{pct(s.store_ms, 50):.1f}", f"{pct(s.store_ms, 95):.1f}",
                     "met" if worst < GOAL_MS else "NOT met"))
    print_table(head, rows)
    mb = logs.size / 2**20
    print(f"\nlog: {mb:.0f} MB (2**20 bytes) output.log of run {data.log_run}; MB/s median "
          f"(min-max) of {len(logs.download)} downloads; reading the file alone: "
          f"{logs.disk:,.0f} MB/s\n")
    head = ("log read", "MB/s or ms", "goal")
    rows = [
        ("GET /logs (download)", _spread(logs.download) + " MB/s",
         _verdict(median(logs.download) > GOAL_MBS, f"> {GOAL_MBS:g} MB/s")),
        ("GET /logs?follow=true (ended run)", _spread(logs.follow) + " MB/s",
         _verdict(median(logs.follow) > GOAL_MBS, f"> {GOAL_MBS:g} MB/s")),
        ("GET /logs?offset=size-64KiB first byte",
         f"p50 {pct(logs.ttfb_ms, 50):.1f} / p95 {pct(logs.ttfb_ms, 95):.1f} ms", "-"),
        ("GET /logs?offset=size-64KiB whole", f"p50 {pct(logs.tail_ms, 50):.1f} ms", "-"),
    ]
    print_table(head, rows)


def report_tries(found: list[Search]) -> None:
    rows = []
    for s in found:
        for name, samples in s.tried.items():
            rows.append((s.name, name, str(len(samples)), f"{pct(s.store_ms, 95):.1f}",
                         f"{pct(samples, 50):.1f}",
                         f"{pct(samples, 95):.1f}",
                         "met" if pct(samples, 95) < GOAL_MS else "NOT met"))
    if rows:
        print("\nwith indexes created by hand in the throwaway store (store-side ms):\n")
        print_table(("search", "trial (they accumulate)", "n", "p95 before", "p50 with", "p95 with",
                     f"goal p95 < {GOAL_MS:g}"), rows)


def median(values: list[float]) -> float:
    return pct(values, 50)


def _spread(values: list[float]) -> str:
    return f"{median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def _verdict(ok: bool, goal: str) -> str:
    return f"{goal} {'met' if ok else 'NOT met'}"


def store_size(db: Database, data_dir: Path) -> str:
    if db.dialect == "sqlite":
        size = sum(p.stat().st_size for p in data_dir.glob("herder.db*"))
        return f"SQLite file {size / 2**20:,.0f} MB"
    with db.engine.connect() as conn:
        size = conn.exec_driver_sql("SELECT pg_total_relation_size('runs')").scalar_one()
    return f"runs table with its indexes {size / 2**20:,.0f} MB"


def run(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hb-history-", dir="/tmp"))
    data_dir = (folder / "data").resolve()
    data_dir.mkdir(mode=0o700)
    try:
        with throwaway_database(args.database_url) as db_url:
            store_url = db_url or f"sqlite:///{data_dir / 'herder.db'}"
            now = datetime.now(UTC)
            print(f"filling the store with {args.runs:,} runs ...", flush=True)
            data = fill(store_url, args.runs, args.jobs, args.batch, now)
            print(f"  {args.runs / data.insert_seconds:,.0f} runs/s", flush=True)
            db = Database(store_url)
            try:
                newest = db.read_sync(run_store.search, statuses=[RunStatus.SUCCESS], limit=1)
                data.log_run = newest[0].id
                size = write_log(data_dir, data.log_run, args.log_mb)
                process, url = start_server(data_dir, db_url, folder / "server.log", timeout=120)
                try:
                    measure(db, data, size, url, data_dir, args)
                finally:
                    stop_server(process)
                    stop_supervisors(data_dir)
            finally:
                db.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(db: Database, data: Dataset, size: int, url: str, data_dir: Path,
            args: argparse.Namespace) -> None:
    found = searches(data, datetime.now(UTC))
    with httpx.Client(base_url=url, timeout=120) as client:
        for search in found:
            print(f"timing {search.name} ...", flush=True)
            time_http(client, search, args.warmup, args.requests, args.budget)
            time_store(db, search, args.warmup, args.requests, args.budget)
        print("streaming the log ...", flush=True)
        logs = time_logs(client, data_dir, data.log_run, size, args.log_repeat)
    report(data, found, logs, args, store_size(db, data_dir))
    missed = [s for s in found
              if args.explain or max(pct(s.http_ms, 95), pct(s.store_ms, 95)) >= GOAL_MS]
    for search in missed:
        print(f"\n{search.name}: the SQL the store sends and its plan on this data set\n")
        print(explain(db, search))
    if args.try_indexes and missed:
        print("\ntrying indexes by hand in the throwaway store ...", flush=True)
        for note in try_indexes(db, missed, args):
            print(note)
        report_tries(missed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs in the store")
    parser.add_argument("--jobs", type=int, default=50, help="jobs the runs belong to")
    parser.add_argument("--batch", type=int, default=10_000, help="runs per insert transaction")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per search")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests first")
    parser.add_argument("--budget", type=float, default=45,
                        help=f"seconds of timed requests per search and side, at least "
                             f"{MIN_SAMPLES} (a full scan of 1,000,000 runs takes seconds)")
    parser.add_argument("--log-mb", type=int, default=200, help="size of the log, MB")
    parser.add_argument("--log-repeat", type=int, default=3, help="timed downloads of the log")
    parser.add_argument("--explain", action="store_true",
                        help="print the SQL and plan of every search, not only the slow ones")
    parser.add_argument("--try-indexes", action="store_true",
                        help="then create candidate indexes in the throwaway store, re-time")
    parser.add_argument("--explain-tried", action="store_true",
                        help="with --try-indexes, print the plans with each index too")
    parser.add_argument("--wait", type=float, default=600,
                        help="seconds to wait for another benchmark (bench/ in its arguments)")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL to create a throwaway database beside")
    args = parser.parse_args()
    if args.runs < 100 * args.jobs:
        parser.error("--runs: give at least 100 runs per job")
    wait_for_quiet(args.wait)
    run(args)


if __name__ == "__main__":
    main()
