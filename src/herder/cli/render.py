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
from datetime import UTC, datetime
from typing import Any

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
    # A workflow run's own statuses (SUCCESS, RUNNING, ACTION_PENDING, ABORTED are shared).
    "FAILED": "red",
    "FAILING": "red",
    "PAUSED": "yellow",
    "CANCELLING": "yellow",
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


def cell(value: Any) -> str:
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
            cell(run.get("id")),
            _clip(cell(run.get("job"))),
            status_text(run.get("status")),
            cell(run.get("exit_code")),
            cell(run.get("trigger")),
            relative(run.get("created_at"), at=at),
            run_duration(run, at=at),
        )
    return table


def next_run(job: Mapping[str, Any], *, at: datetime | None = None) -> str:
    """When the job runs next; a slot already passed is being started (or caught up) now."""
    moment = parse_time(job.get("next_run_at"))
    if moment is None:
        return "-"
    return "due now" if moment <= (at or now()) else relative(moment, at=at)


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
            cell(job.get("id")),
            _clip(cell(job.get("ref") or _ref(job))),
            _clip(command_text(job.get("command") or job.get("script"))),
            cell(job.get("backend")),
            Text("yes", style="green") if enabled else Text("no", style="yellow"),
            cell(job.get("run_count")),
            next_run(job, at=at),
        )
    return table


def _ref(job: Mapping[str, Any]) -> str:
    return f"{job.get('namespace') or 'default'}/{job.get('name') or '?'}"


_SPEC_ORDER = (
    "name",
    "namespace",
    "description",
    "command",
    "script",
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
    more: Iterable[RenderableType] = (),
    at: datetime | None = None,
) -> RenderableType:
    """The spec as YAML in a panel, the bookkeeping beneath it, the last runs, then ``more``
    (such as the next slots of its schedule)."""
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
        cell(job.get("id")),
        ("  created ", "dim"),
        relative(job.get("created_at"), at=at),
        ("  updated ", "dim"),
        relative(job.get("updated_at"), at=at),
        ("  runs ", "dim"),
        cell(job.get("run_count")),
        ("  next run ", "dim"),
        next_run(job, at=at),
    )
    title = Text(str(job.get("ref") or _ref(job)), style="bold")
    parts: list[RenderableType] = [Panel(body, title=title, title_align="left"), info]
    if runs is not None:
        parts.append(Text("\nlast runs", style="bold"))
        parts.append(runs_table(runs, at=at) if runs else Text("no runs yet", style="dim"))
    parts.extend(more)
    return Group(*parts)


def run_line(run: Mapping[str, Any], *, at: datetime | None = None) -> Text:
    """``run 42 ops/backup APP_ERROR exit 3 after 1.20s`` (plus the error, if any)."""
    text = Text.assemble(
        f"run {cell(run.get('id'))} {cell(run.get('job'))} ", status_text(run.get("status"))
    )
    if run.get("exit_code") is not None:
        text.append(f" exit {run['exit_code']}")
    duration = run_duration(run, at=at)
    if duration != "-":
        text.append(f" after {duration}")
    if run.get("workflow_run") is not None:
        text.append(f" (step {cell(run.get('step'))} of workflow run {run['workflow_run']})",
                    style="dim")
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
                f"run {cell(self.run.get('id'))} {cell(self.run.get('job'))} ",
                status_text(self.run.get("status")),
                (f"  {waited}", "dim"),
            )
        )
        return self._spinner
