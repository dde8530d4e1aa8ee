"""Output: Rich tables and panels for people, the API's own JSON (or YAML) for scripts.

Tables go to stdout and fit the terminal; hints, progress and errors go to stderr so that a pipe
only ever sees the data.
"""

from __future__ import annotations

import enum
import json
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.spinner import Spinner
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from herder.model.durations import format_duration


class Output(enum.StrEnum):
    """``--output``: a table for people, the raw API document for scripts."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


STATUS_STYLES = {
    "SUCCESS": "green",
    "APP_ERROR": "red",
    "PROC_ERROR": "red",
    "TIMEOUT": "red",
    "ABORTED": "yellow",
    "SKIPPED": "dim yellow",
    "RUNNING": "cyan",
    "IN_DOUBT": "magenta",
    "ACTION_PENDING": "bold magenta",
}
_WAITING_STYLE = "blue"  # READY, WAITING, JOB_DEPLOYED, PENDING and any status we do not know


def out() -> Console:
    """A console on the current ``sys.stdout`` (tests swap it)."""
    return Console(highlight=False)


def err() -> Console:
    return Console(stderr=True, highlight=False)


def error(message: str) -> None:
    err().print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)


def hint(message: str) -> None:
    err().print(Text(message, style="dim"), soft_wrap=True)


def dump(data: Any, fmt: Output) -> str:
    """The document as JSON or YAML text, ending with a newline."""
    if fmt is Output.YAML:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def page(data: dict[str, Any], fmt: Output, table: Callable[[list[Any]], Any], noun: str) -> None:
    """A page of a list: the API's document for scripts, a table (or a hint) for people."""
    if fmt is not Output.TABLE:
        emit(data, fmt)
        return
    if data["items"]:
        out().print(table(data["items"]))
    else:
        hint(f"no {noun} found")
    if data.get("next_cursor"):
        hint(f"more {noun} exist: add --all to see them all")


def emit(data: Any, fmt: Output) -> None:
    sys.stdout.write(dump(data, fmt))
    sys.stdout.flush()


# -- values ----------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 timestamp from the API (naive ones are UTC), or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def relative(value: Any, *, at: datetime | None = None) -> str:
    """``3s ago``, ``in 5m``; a local date past a month; ``-`` for nothing."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    delta = ((at or now()) - moment).total_seconds()
    seconds = abs(delta)
    if seconds > 30 * 86400:
        return moment.astimezone().strftime("%Y-%m-%d %H:%M")
    if seconds < 1:
        return "just now"
    text = _rough(seconds)
    return f"{text} ago" if delta > 0 else f"in {text}"


def _rough(seconds: float) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def elapsed(seconds: float) -> str:
    """``0.42s``, ``12.3s``, ``4m05s``, ``2h03m``."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def run_duration(run: Mapping[str, Any], *, at: datetime | None = None) -> str:
    started = parse_time(run.get("started_at"))
    if started is None:
        return "-"
    finished = parse_time(run.get("finished_at"))
    if finished is None:
        return elapsed(max(0.0, ((at or now()) - started).total_seconds())) + "…"
    return elapsed(max(0.0, (finished - started).total_seconds()))


def status_text(status: Any) -> Text:
    name = str(status or "?")
    return Text(name, style=STATUS_STYLES.get(name, _WAITING_STYLE))


def command_text(command: Any) -> str:
    if isinstance(command, list):
        return shlex.join(str(part) for part in command)
    if isinstance(command, dict):  # script: / image: forms
        return ", ".join(f"{k}: {v}" for k, v in command.items())
    return str(command) if command is not None else "-"


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _clip(value: str) -> Text:
    """A cell that gives way first when the terminal is narrow, cut with an ellipsis."""
    return Text(value, no_wrap=True, overflow="ellipsis")


# -- tables and panels -----------------------------------------------------------------------


def runs_table(runs: Iterable[Mapping[str, Any]], *, at: datetime | None = None) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", justify="right", no_wrap=True)
    table.add_column("JOB", overflow="ellipsis")
    table.add_column("STATUS", no_wrap=True)
    table.add_column("EXIT", justify="right", no_wrap=True)
    table.add_column("TRIGGER", no_wrap=True)
    table.add_column("CREATED", no_wrap=True)
    table.add_column("DURATION", justify="right", no_wrap=True)
    for run in runs:
        table.add_row(
            _cell(run.get("id")),
            _clip(_cell(run.get("job"))),
            status_text(run.get("status")),
            _cell(run.get("exit_code")),
            _cell(run.get("trigger")),
            relative(run.get("created_at"), at=at),
            run_duration(run, at=at),
        )
    return table


def jobs_table(jobs: Iterable[Mapping[str, Any]], *, at: datetime | None = None) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", justify="right", no_wrap=True)
    table.add_column("JOB", overflow="ellipsis")
    table.add_column("COMMAND", overflow="ellipsis")
    table.add_column("BACKEND", no_wrap=True)
    table.add_column("ENABLED", no_wrap=True)
    table.add_column("RUNS", justify="right", no_wrap=True)
    table.add_column("NEXT RUN", no_wrap=True)
    for job in jobs:
        enabled = job.get("enabled")
        table.add_row(
            _cell(job.get("id")),
            _clip(_cell(job.get("ref") or _ref(job))),
            _clip(command_text(job.get("command"))),
            _cell(job.get("backend")),
            Text("yes", style="green") if enabled else Text("no", style="yellow"),
            _cell(job.get("run_count")),
            relative(job.get("next_run_at"), at=at),
        )
    return table


def _ref(job: Mapping[str, Any]) -> str:
    return f"{job.get('namespace') or 'default'}/{job.get('name') or '?'}"


_SPEC_ORDER = (
    "name",
    "namespace",
    "description",
    "command",
    "params",
    "env",
    "backend",
    "target",
    "schedule",
    "enabled",
    "timeout",
    "retries",
    "concurrency",
    "max_active",
    "misfire",
    "locks",
    "after",
    "labels",
    "annotations",
    "metadata",
)
_INFO = ("id", "ref", "created_at", "updated_at", "run_count", "next_run_at")


def job_panel(
    job: Mapping[str, Any],
    runs: list[dict[str, Any]] | None = None,
    *,
    upcoming: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> RenderableType:
    """The spec as YAML in a panel, the bookkeeping beneath it, the last runs, then the next
    slots of its schedule when ``upcoming`` (a schedule report) is given."""
    spec = {k: job[k] for k in _SPEC_ORDER if job.get(k) not in (None, {}, [], "")}
    spec.update(
        (k, v) for k, v in job.items() if k not in spec and k not in _INFO and k not in _SPEC_ORDER
    )
    if isinstance(spec.get("timeout"), int | float) and spec["timeout"] > 0:
        spec["timeout"] = format_duration(float(spec["timeout"]))
    body = Syntax(
        dump(spec, Output.YAML).rstrip("\n"),
        "yaml",
        theme="ansi_dark",
        background_color="default",
        word_wrap=True,
    )
    info = Text.assemble(
        ("id ", "dim"),
        _cell(job.get("id")),
        ("  created ", "dim"),
        relative(job.get("created_at"), at=at),
        ("  updated ", "dim"),
        relative(job.get("updated_at"), at=at),
        ("  runs ", "dim"),
        _cell(job.get("run_count")),
        ("  next run ", "dim"),
        relative(job.get("next_run_at"), at=at),
    )
    title = Text(str(job.get("ref") or _ref(job)), style="bold")
    parts: list[RenderableType] = [Panel(body, title=title, title_align="left"), info]
    if runs is not None:
        parts.append(Text("\nlast runs", style="bold"))
        parts.append(runs_table(runs, at=at) if runs else Text("no runs yet", style="dim"))
    if upcoming is not None:
        name = _zone_name(upcoming)
        next_run = wall(job.get("next_run_at"), zone_of(name)) if job.get("next_run_at") else None
        parts.append(
            Text.assemble(
                (f"\nnext runs in {name}", "bold"),
                ("  next_run_at ", "dim"),
                next_run or "none due",
            )
        )
        parts.append(next_slots(upcoming, at=at))
    return Group(*parts)


def run_line(run: Mapping[str, Any], *, at: datetime | None = None) -> Text:
    """``run 42 ops/backup APP_ERROR exit 3 after 1.20s`` (plus the error, if any)."""
    text = Text.assemble(
        f"run {_cell(run.get('id'))} {_cell(run.get('job'))} ", status_text(run.get("status"))
    )
    if run.get("exit_code") is not None:
        text.append(f" exit {run['exit_code']}")
    duration = run_duration(run, at=at)
    if duration != "-":
        text.append(f" after {duration}")
    if run.get("error"):
        text.append(f": {run['error']}", style="red")
    return text


class WaitLine:
    """The live line while waiting: spinner, run, status, time spent waiting (a TTY only)."""

    def __init__(self, run: Mapping[str, Any], started: float) -> None:
        self.run = run
        self.started = started
        self._spinner = Spinner("dots", style="cyan")

    def __rich__(self) -> RenderableType:
        waited = elapsed(max(0.0, time.monotonic() - self.started))
        self._spinner.update(
            text=Text.assemble(
                f"run {_cell(self.run.get('id'))} {_cell(self.run.get('job'))} ",
                status_text(self.run.get("status")),
                (f"  {waited}", "dim"),
            )
        )
        return self._spinner


# -- schedules -------------------------------------------------------------------------------

FATE_STYLES = {"ran": "green", "skipped": "yellow", "pending": "cyan"}


def zone_of(name: Any) -> tzinfo:
    """The time zone named ``name``; UTC when this machine does not know it."""
    try:
        return ZoneInfo(str(name or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def wall(value: Any, zone: tzinfo | None = None) -> str:
    """``2026-03-09 09:00:00 -04:00``: an API time on a wall clock, in ``zone`` if given (else
    as sent), with its UTC offset so that the two 01:30s of a DST fall-back stay apart."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    if zone is not None:
        moment = moment.astimezone(zone)
    offset = moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}"


def schedule_words(schedule: Mapping[str, Any]) -> str:
    """``cron 0 3 * * * in Europe/Rome``, ``every 30s``, ``once at 2026-12-01 11:00:00 +01:00``."""
    name = str(schedule.get("timezone") or "UTC")
    zone = zone_of(name)
    if schedule.get("cron") is not None:
        words = f"cron {schedule['cron']} in {name}"
    elif schedule.get("every") is not None:
        words = f"every {schedule['every']}"
    else:
        words = f"once at {wall(schedule.get('at'), zone)}"
    if schedule.get("jitter"):
        words += f", up to {schedule['jitter']} late (jitter)"
    if schedule.get("start"):
        words += f", from {wall(schedule['start'], zone)}"
    if schedule.get("end"):
        words += f", until {wall(schedule['end'], zone)}"
    return words


def _zone_name(report: Mapping[str, Any]) -> str:
    return str((report.get("schedule") or {}).get("timezone") or "UTC")


def schedule_report(
    report: Mapping[str, Any],
    *,
    recent: bool = True,
    upcoming: bool = True,
    at: datetime | None = None,
) -> RenderableType:
    """``herder job schedule``: the policy, what became of the recent slots and why, the slots
    summed up after a long absence, the server's notes, then the next slots."""
    ref = _cell(report.get("job"))
    schedule = report.get("schedule")
    if not schedule:
        return Text(f"this job has no schedule; it runs only when asked (herder run {ref})")
    zone = zone_of(_zone_name(report))
    parts: list[RenderableType] = [_schedule_header(report, schedule, zone, at=at)]
    if recent:
        parts.append(Text("\nrecent slots, newest first", style="bold"))
        if report.get("recent"):
            parts.append(slots_table(report["recent"]))
        else:
            parts.append(Text("no slot has come due yet", style="dim"))
    unlisted = report.get("unlisted")
    if unlisted:
        after = unlisted.get("after")
        span = f"after {wall(after, zone)} " if after else ""
        parts.append(
            Text(
                f"older slots {span}up to {wall(unlisted.get('through'), zone)} were skipped "
                f"(not listed one by one): {unlisted.get('reason') or 'no reason recorded'}",
                style="yellow",
            )
        )
    parts.extend(Text(f"note: {note}", style="yellow") for note in report.get("notes") or ())
    if upcoming:
        parts.append(Text(f"\nnext slots ({_zone_name(report)})", style="bold"))
        parts.append(next_slots(report, at=at))
    return Group(*parts)


def _schedule_header(
    report: Mapping[str, Any], schedule: Mapping[str, Any], zone: tzinfo, *, at: datetime | None
) -> Text:
    text = Text.assemble((_cell(report.get("job")), "bold"), ": ", schedule_words(schedule))
    if not report.get("enabled", True):
        text.append("  disabled", style="bold yellow")
    misfire = report.get("misfire") or {}
    next_run = report.get("next_run_at")
    text.append_text(
        Text.assemble(
            ("\nmisfire ", "dim"),
            f"{_cell(misfire.get('policy'))}, grace {_cell(misfire.get('grace'))}",
            ("  concurrency ", "dim"),
            _cell(report.get("concurrency")),
        )
    )
    if report.get("skipped_total"):
        text.append_text(Text.assemble(("  skipped in all ", "dim"), str(report["skipped_total"])))
    text.append("\nnext run ", style="dim")
    text.append(f"{wall(next_run, zone)} ({relative(next_run, at=at)})" if next_run else "none due")
    return text


def slots_table(slots: Iterable[Mapping[str, Any]]) -> Table:
    """The recent slots: local time, fate, run, status; why, and how DST moved it, if any."""
    rows = list(slots)
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("SLOT", no_wrap=True)
    table.add_column("FATE", no_wrap=True)
    table.add_column("RUN", justify="right", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    notes = [key for key in ("reason", "dst") if any(slot.get(key) for slot in rows)]
    for key in notes:
        table.add_column(key.upper(), overflow="fold")
    for slot in rows:
        fate = str(slot.get("fate") or "?")
        table.add_row(
            wall(slot.get("local")),
            Text(fate, style=FATE_STYLES.get(fate, "")),
            _cell(slot.get("run_id")),
            status_text(slot.get("status")),
            *(Text(_cell(slot.get(key))) for key in notes),
        )
    return table


def next_slots(report: Mapping[str, Any], *, at: datetime | None = None) -> RenderableType:
    """The next slots on the schedule's wall clock, how soon, and any DST note."""
    slots = list(report.get("upcoming") or ())
    if not slots:
        return Text("none", style="dim")
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("SLOT", no_wrap=True)
    table.add_column("WHEN", no_wrap=True, style="dim")
    table.add_column("DST", overflow="fold")
    for slot in slots:
        table.add_row(
            wall(slot.get("local")), relative(slot.get("slot"), at=at), Text(slot.get("dst") or "")
        )
    if report.get("enabled", True):
        return table
    return Group(table, Text("the job is disabled: these run only once it is enabled", "dim"))
