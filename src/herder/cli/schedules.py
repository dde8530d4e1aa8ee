"""How schedules look in a terminal: a schedule in words, the fate of recent slots, the next
ones, each on the wall clock of the job's time zone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from herder.cli.render import cell, parse_time, relative, status_text

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
    ref = cell(report.get("job"))
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
    text = Text.assemble((cell(report.get("job")), "bold"), ": ", schedule_words(schedule))
    if not report.get("enabled", True):
        text.append("  disabled", style="bold yellow")
    misfire = report.get("misfire") or {}
    next_run = report.get("next_run_at")
    text.append_text(
        Text.assemble(
            ("\nmisfire ", "dim"),
            f"{cell(misfire.get('policy'))}, grace {cell(misfire.get('grace'))}",
            ("  concurrency ", "dim"),
            cell(report.get("concurrency")),
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
            cell(slot.get("run_id")),
            status_text(slot.get("status")),
            *(Text(cell(slot.get(key))) for key in notes),
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


def upcoming_section(
    job: Mapping[str, Any], report: Mapping[str, Any], *, at: datetime | None = None
) -> list[RenderableType]:
    """For ``herder job show``: the next slots on the job's own wall clock."""
    name = _zone_name(report)
    next_run = wall(job.get("next_run_at"), zone_of(name)) if job.get("next_run_at") else None
    title = Text.assemble(
        (f"\nnext runs in {name}", "bold"), ("  next_run_at ", "dim"), next_run or "none due"
    )
    return [title, next_slots(report, at=at)]
