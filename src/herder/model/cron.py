"""Cron expressions evaluated in a time zone, by herder's one DST rule.

croniter parses an expression and finds the matching *wall-clock* times; it only ever sees naive
datetimes, so its own time-zone handling never runs. This module maps each matching wall time to
one UTC instant, by the rule below, and names time zones (``zone``).

DST rule (cron only: ``every`` and ``at`` count real time, which no clock change touches)
-----------------------------------------------------------------------------------------
A cron slot fires when the local wall clock first reaches a matching wall time:

* a wall time that exists once fires at that instant;
* a wall time that exists twice, because the clocks go back, fires once, at its first occurrence
  (the earlier UTC instant, ``fold=0``); nothing fires again while the clocks repeat;
* a wall time that does not exist, because the clocks go forward, fires once, at the first instant
  after the gap: the moment the clocks jump. Every missing wall time that matches, and the wall
  time at the end of the gap if it matches too, are that one slot and one run.

So each matching wall time runs exactly once, no two runs share a slot, and fire times strictly
increase. The rule is the same for every expression. Examples in Europe/Rome, 2026:

* 29 March, 02:00 CET becomes 03:00 CEST (01:00 UTC). ``30 2 * * *`` runs at 03:00 CEST.
  ``0 * * * *`` runs at 01:00 CET, then once at 03:00 CEST (for 02:00 and 03:00), then 04:00.
* 25 October, 03:00 CEST becomes 02:00 CET (01:00 UTC). ``30 2 * * *`` runs at 02:30 CEST
  (00:30 UTC) only. ``0 * * * *`` runs at 02:00 CEST (00:00 UTC), then at 03:00 CET (02:00 UTC),
  two real hours later. ``* * * * * *`` fires each second of the first 02:00-02:59 and is silent
  in the second.

For fixed times this is what Vixie cron does. Vixie cron treats expressions with a wildcard
minute or hour differently (it skips them in a gap and runs them twice in a repeated hour);
herder does not. A job that must run every N real seconds whatever the
clocks do should use ``every``. ``dst_note`` says, for a slot, how a DST change moved it.

Implementation: the wall-time-to-instant mapping never decreases as wall time increases, which is
what lets ``next_in_zone`` and ``prev_in_zone`` walk croniter's wall times and still return
strictly ordered instants. Time zone offsets change on whole seconds, so the instant a gap opens
is found by bisection over seconds, and only for wall times that fall in a gap.
"""

from __future__ import annotations

import copy
import itertools
import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from herder.model.errors import InvalidSpec

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS_5 = ("minute", "hour", "day-of-month", "month", "day-of-week")
FIELDS_6 = ("second", *FIELDS_5)
MAX_CRON_LENGTH = 200
_SECOND = timedelta(seconds=1)
_REFERENCE = datetime(2001, 1, 1)  # a fixed start for the "smallest gap" estimate: deterministic
_GAP_SAMPLES = 16
_ZONE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]{0,30}(?:/[A-Za-z0-9_+\-]{1,30}){0,2}")


def zone(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` for an IANA name; ``InvalidSpec`` for anything else."""
    if not isinstance(name, str):
        raise InvalidSpec("timezone: must be an IANA name such as 'Europe/Rome'")
    return _zone(name)


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    # The pattern keeps paths and odd files out of zoneinfo's reach; "localtime" would be the
    # server's own zone and posix/, right/ are copies (right/ counts leap seconds).
    if (
        not _ZONE_RE.fullmatch(name)
        or name in {"localtime", "posixrules"}
        or name.startswith(("posix/", "right/"))
    ):
        raise InvalidSpec(f"timezone: unknown time zone {name[:64]!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidSpec(f"timezone: unknown time zone {name!r}") from None


def expand_macro(expression: str) -> str:
    """The 5- or 6-field form of ``expression`` (macros such as ``@daily`` spelled out)."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        try:
            return MACROS[text.lower()]
        except KeyError:
            raise InvalidSpec(
                f"cron: unknown macro {text[:20]!r}; use one of {', '.join(sorted(MACROS))}"
            ) from None
    return text


def check_cron(expression: str) -> str:
    """``expression`` with single spaces, or ``InvalidSpec`` naming the field that is wrong."""
    if not isinstance(expression, str):
        raise InvalidSpec("cron: must be a string such as '*/5 * * * *' or '@daily'")
    return _checked(expression)


# Every stored job's expression is checked again when the job is read back (the scheduler reads
# due jobs all the time): remembered, a check costs a dict lookup instead of croniter's parsing.
@lru_cache(maxsize=4096)
def _checked(expression: str) -> str:
    if len(expression) > MAX_CRON_LENGTH:
        raise InvalidSpec(f"cron: at most {MAX_CRON_LENGTH} characters (got {len(expression)})")
    if not expression.isascii() or not expression.replace("\t", " ").isprintable():
        raise InvalidSpec("cron: only printable ASCII characters are allowed")
    normal = " ".join(expression.split())
    if normal.startswith("@"):
        normal = normal.lower()
    if not normal:
        raise InvalidSpec("cron: must not be empty")
    fields = expand_macro(normal).split(" ")
    if len(fields) not in (5, 6):
        raise InvalidSpec(
            f"cron: {normal[:40]!r} has {len(fields)} fields; write 5 (minute hour day-of-month "
            "month day-of-week) or 6 (second first)"
        )
    _check_fields(fields)
    _compiled(normal)  # parse once now, so evaluation never meets a bad expression
    if _next_wall(normal, _REFERENCE) is None:
        raise InvalidSpec(f"cron: {normal[:40]!r} never fires (no such date)")
    return normal


def _check_fields(fields: list[str]) -> None:
    # croniter's message names the whole expression; test each field alone to name the bad one.
    names = FIELDS_6 if len(fields) == 6 else FIELDS_5
    for index, (name, value) in enumerate(zip(names, fields, strict=True)):
        probe = ["*"] * len(fields)
        probe[index] = value
        try:
            croniter.expand(" ".join(probe), second_at_beginning=len(fields) == 6)
        except (ValueError, TypeError, KeyError, IndexError) as exc:  # croniter raises these
            why = "'H' is not supported, use 'jitter'" if "hash" in str(exc).lower() else exc
            raise InvalidSpec(f"cron: {name} field {value[:20]!r} is not valid ({why})") from None
    try:
        croniter.expand(" ".join(fields), second_at_beginning=len(fields) == 6)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InvalidSpec(f"cron: {' '.join(fields)[:40]!r} is not valid ({exc})") from None


@lru_cache(maxsize=8192)
def _compiled(expression: str) -> croniter:
    """A parsed croniter, copied before each use (croniter objects carry a cursor)."""
    fields = expand_macro(expression)
    return croniter(fields, _REFERENCE, second_at_beginning=fields.count(" ") == 5)


def _step_wall(expression: str, wall: datetime, *, forward: bool) -> datetime | None:
    """The matching wall time after (or before) ``wall``; ``None`` when there is none."""
    cursor = copy.copy(_compiled(expression))
    try:
        result: datetime = (cursor.get_next if forward else cursor.get_prev)(
            datetime, start_time=wall
        )
    except CroniterBadDateError:
        return None
    return result


def _next_wall(expression: str, wall: datetime) -> datetime | None:
    return _step_wall(expression, wall, forward=True)


def _prev_wall(expression: str, wall: datetime) -> datetime | None:
    return _step_wall(expression, wall, forward=False)


@lru_cache(maxsize=8192)
def smallest_gap(expression: str) -> float:
    """Seconds between the closest two of the first few slots: the bound ``jitter`` must stay under.

    An estimate (wall-clock, from a fixed date) so that it is cheap and the same on every server.
    """
    walls = [_REFERENCE]
    for _ in range(_GAP_SAMPLES):
        nxt = _next_wall(expression, walls[-1])
        if nxt is None:
            break
        walls.append(nxt)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(walls[1:])]
    return min(gaps, default=float("inf"))


def _floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _transition(lo: datetime, hi: datetime, zone: tzinfo) -> datetime:
    """The first instant in ``(lo, hi]`` with ``hi``'s UTC offset (changes are on whole seconds)."""
    target = hi.astimezone(zone).utcoffset()
    low, high = int(lo.timestamp()), int(hi.timestamp())
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == target:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, UTC)


def to_instant(wall: datetime, zone: tzinfo) -> datetime:
    """The UTC instant a matching wall time fires at, by the DST rule (see the module docstring)."""
    first = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first occurrence if repeated
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # The wall time is in a gap. fold=0 read it with the offset from before the jump, fold=1
    # reads it with the offset after: the two UTC readings straddle the moment of the jump.
    early = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _transition(early, first, zone)


def _overlap_end(local: datetime, zone: tzinfo) -> datetime:
    """For a second occurrence (fold=1), the wall time at which the repeated stretch ends."""
    first_offset = local.replace(fold=0).utcoffset()
    offset = local.utcoffset()
    assert first_offset is not None and offset is not None
    instant = local.astimezone(UTC)
    jump = _transition(instant - (first_offset - offset), instant, zone)
    return jump.replace(tzinfo=None) + first_offset


def next_in_zone(expression: str, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first fire instant strictly after ``after`` (aware), or None if the expression ends."""
    if zone.key == "UTC":
        wall = _next_wall(expression, _floor_second(after.astimezone(UTC).replace(tzinfo=None)))
        return None if wall is None else wall.replace(tzinfo=UTC)
    local = after.astimezone(zone)
    if local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset():
        # In the second pass of a repeated stretch every wall time up to its end already fired
        # (first occurrence); start the wall-clock search after it instead of skipping one by one.
        start = _overlap_end(local, zone) - _SECOND
    else:
        start = _floor_second(local.replace(tzinfo=None))
    for _ in range(4):
        wall = _next_wall(expression, start)
        if wall is None:
            return None
        instant = to_instant(wall, zone)
        if instant > after:
            return instant
        start = wall
    raise AssertionError(f"no fire time after {after} for {expression!r} in {zone.key}")


def prev_in_zone(expression: str, zone: ZoneInfo, before: datetime) -> datetime | None:
    """The last fire instant strictly before ``before`` (aware), or None if there is none."""
    ceil = before.astimezone(zone)
    if ceil.microsecond:
        ceil = ceil.replace(microsecond=0) + _SECOND
    if zone.key == "UTC":
        wall = _prev_wall(expression, ceil.replace(tzinfo=None))
        return None if wall is None else wall.replace(tzinfo=UTC)
    local = before.astimezone(zone)
    if local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset():
        # Every wall time of the repeated stretch fired in its first pass, before ``before``.
        start = _overlap_end(local, zone)
    else:
        start = ceil.replace(tzinfo=None)
    while True:
        wall = _prev_wall(expression, start)
        if wall is None:
            return None
        instant = to_instant(wall, zone)
        if instant < before:
            return instant
        # Only wall times of a gap can land at or after ``before``: they all fire at the jump,
        # so search on from the wall time where the gap starts.
        start = _gap_start(instant, zone)


def _gap_start(jump: datetime, zone: tzinfo) -> datetime:
    """The first missing wall time of the gap that opens at the instant ``jump``."""
    local = jump.astimezone(zone)
    offset = local.utcoffset()
    earlier = (jump - timedelta(microseconds=1)).astimezone(zone).utcoffset()
    assert offset is not None and earlier is not None
    return local.replace(tzinfo=None) - (offset - earlier)


def _clock(wall: datetime) -> str:
    return wall.strftime("%H:%M:%S" if wall.second else "%H:%M")


def dst_note(expression: str, zone: ZoneInfo, slot: datetime) -> str | None:
    """Why ``slot`` is not simply the expression's wall time, when a DST change is the reason."""
    local = slot.astimezone(zone)
    wall = local.replace(tzinfo=None)
    day = f"{local:%Y-%m-%d} in {zone.key}"
    gap_start = _gap_start(slot, zone)
    if gap_start < wall:  # slot is the very instant the clocks jumped forward
        first = _next_wall(expression, gap_start - _SECOND)
        if first is not None and first < wall:
            last = _prev_wall(expression, wall) or first
            what = f"{_clock(first)} did" if last == first else (
                f"the slots from {_clock(first)} to {_clock(last)} did"
            )
            return (
                f"DST gap: {what} not exist on {day}, as clocks jumped from {_clock(gap_start)} "
                f"to {_clock(wall)}; ran once, at {_clock(wall)}"
            )
    if local.fold == 0 and local.replace(fold=1).utcoffset() != local.utcoffset():
        return (
            f"DST overlap: {_clock(wall)} occurred twice on {day}; ran once, at the first "
            f"({local:%H:%M %Z}), not again at the second"
        )
    return None
