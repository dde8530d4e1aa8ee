"""Schedules: when a job fires, and what to do with fire times missed while herder was away.

Pure: no I/O and no clock. Every function takes the moment it reasons about (``after``, ``now``)
as a timezone-aware datetime and returns timezone-aware UTC datetimes.

Kinds
-----
A schedule has exactly one of:

``cron``
    5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, or a macro:
    ``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``, ``@hourly``.
    Read in ``timezone`` (an IANA name such as ``Europe/Rome``; default ``UTC``). The grammar is
    croniter's: lists, ranges, steps, month and day names, ``L``, ``W`` and ``#``. When both
    day-of-month and day-of-week are restricted, a day matching either fires (as in cron).
``every``
    a fixed interval of real time, at least 1s. Its slots are ``anchor + k * every``, anchored on
    ``start`` when given and on the Unix epoch otherwise, so every server computes the same slots
    and a restart does not shift them. ``every: 1d`` is 86,400 real seconds, not "each midnight":
    across a DST change its local time moves by an hour; write a cron for a wall-clock time.
``at``
    one moment, ISO-8601 with an offset or ``Z``. After it there is no next slot and the job
    disables itself.

``start`` and ``end`` (optional, for ``cron`` and ``every``) bound the slots: none before
``start``, none after ``end``. ``jitter`` (default 0) delays each dispatch by a deterministic
amount in ``[0, jitter)``, see ``jittered``; it must be shorter than the interval.

A *slot* is the UTC instant a schedule fires at. It is the run's ``scheduled_for`` and its identity:
jitter moves the dispatch, never the slot.

DST: a cron slot fires when the local wall clock first reaches a matching wall time. A wall time
that exists twice fires once, at its first occurrence; one that does not exist fires once, at the
moment the clocks jump. ``herder.model.cron`` states the rule with examples; ``dst_note`` says,
for a slot, how a DST change moved it.

Misfires
--------
``plan_due(schedule, misfire, last_slot, now)`` decides about the slots in ``(last_slot, now]``:
those that came due since the newest slot the engine handled. A slot is *on time* when
``now - slot <= grace`` (default 60s) and *late* otherwise (herder was down, the job paused, the
engine overloaded). On-time slots always run. Late slots follow the policy:

* ``skip``: every late slot is skipped;
* ``run_once`` (default): if no slot is on time, the latest late slot runs; the others are skipped;
* ``run_all``: every late slot runs.

In every policy at most ``limit`` slots run per call (default 1000): the newest; older ones are
skipped as over the limit. Work is bounded too: the planner computes at most about
``limit + max_listed`` slots, however long herder was away. Each skipped slot has a reason; the
newest ``max_listed`` (default 10) are listed one by one, and any older ones are summed up as
"every slot after ``last_slot`` up to ``unlisted_through``". A new job (``last_slot`` None)
starts at ``now``: nothing is backfilled. Store ``Plan.cursor``; pass it as ``last_slot`` next time.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from herder.model import cron as _cron
from herder.model.cron import zone
from herder.model.durations import MAX_SECONDS, format_duration, parse_duration
from herder.model.errors import InvalidSpec
from herder.model.fields import mapping

Policy = Literal["skip", "run_once", "run_all"]
POLICIES: tuple[str, ...] = get_args(Policy)
SCHEDULE_KEYS = frozenset({"cron", "every", "at", "timezone", "jitter", "start", "end"})
MIN_EVERY = 1.0
MAX_PREVIEW = 1000
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_FORWARD = 4  # slots the planner walks forward before it walks back from now instead


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """When a job fires: exactly one of ``cron``, ``every`` (seconds) or ``at`` (aware UTC)."""

    cron: str | None = None
    every: float | None = None
    at: datetime | None = None
    timezone: str = "UTC"
    jitter: float = 0.0
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        _check(self)

    @property
    def kind(self) -> Literal["cron", "every", "at"]:
        """Which of the three kinds this schedule is."""
        return "cron" if self.cron is not None else "every" if self.every is not None else "at"

    @property
    def zone(self) -> ZoneInfo:
        """The time zone cron expressions are read in (and fire times shown in)."""
        return zone(self.timezone)

    def to_dict(self) -> dict[str, Any]:
        """The plain form that ``parse_schedule`` reads back to an equal ``Schedule``."""
        data = {
            "cron": self.cron,
            "every": None if self.every is None else _seconds_text(self.every),
            "at": None if self.at is None else _iso(self.at),
            "timezone": self.timezone,
            "jitter": _seconds_text(self.jitter) if self.jitter else None,
            "start": None if self.start is None else _iso(self.start),
            "end": None if self.end is None else _iso(self.end),
        }
        return {key: value for key, value in data.items() if value is not None}


def _check(schedule: Schedule) -> None:
    _one_kind([k for k in ("cron", "every", "at") if getattr(schedule, k) is not None])
    zone(schedule.timezone)
    for name in ("at", "start", "end"):
        moment = getattr(schedule, name)
        if moment is not None:
            _check_moment(moment, name)
            object.__setattr__(schedule, name, moment.astimezone(UTC))  # frozen: set once here
    if schedule.at is not None and (schedule.start or schedule.end):
        raise InvalidSpec("schedule: 'start' and 'end' apply to 'cron' and 'every', not to 'at'")
    if schedule.start and schedule.end and schedule.start >= schedule.end:
        raise InvalidSpec("schedule: 'start' must be before 'end'")
    interval = math.inf
    if schedule.cron is not None:
        expression = _cron.check_cron(schedule.cron)
    elif schedule.every is not None:
        interval = _check_seconds(schedule.every, "every", minimum=MIN_EVERY)
    jitter = _check_seconds(schedule.jitter, "jitter", minimum=0.0)
    if jitter and schedule.cron is not None:  # only then: it costs a few croniter steps
        interval = _cron.smallest_gap(expression)
    if jitter >= interval:
        raise InvalidSpec(
            f"jitter: {_seconds_text(jitter)} must be shorter than the interval between slots "
            f"({_seconds_text(interval)}), or runs would overtake each other"
        )


def _one_kind(given: list[str]) -> None:
    if len(given) != 1:
        which = " and ".join(repr(k) for k in given) if given else "none"
        raise InvalidSpec(f"schedule: give exactly one of 'cron', 'every' or 'at' (got {which})")


def _check_seconds(value: object, name: str, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidSpec(f"{name}: must be a number of seconds")
    if value < minimum:
        raise InvalidSpec(f"{name}: must be at least {_seconds_text(minimum)}")
    if value > MAX_SECONDS:
        raise InvalidSpec(f"{name}: must be at most 366 days")
    return float(value)


def _check_moment(moment: object, name: str) -> None:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise InvalidSpec(f"{name}: must be a timezone-aware datetime")
    if not EARLIEST <= moment < LATEST:
        raise InvalidSpec(f"{name}: must be between 1970 and 2999")


def parse_schedule(data: Mapping[str, Any]) -> Schedule:
    """Read a schedule as a job spec writes it; ``InvalidSpec`` says what is wrong and where."""
    data = mapping(data, "schedule", SCHEDULE_KEYS, "{cron: '0 3 * * *'}")
    _one_kind([k for k in ("cron", "every", "at") if data.get(k) is not None])
    every = None
    if data.get("every") is not None:
        every = round(parse_duration(data["every"], field="every"), 6)
        if every < MIN_EVERY:
            raise InvalidSpec(f"every: must be at least 1s (got {_seconds_text(every)})")
    jitter = data.get("jitter")
    if jitter is None or (not isinstance(jitter, bool) and jitter in (0, "0")):
        jitter = 0.0
    else:
        jitter = round(parse_duration(jitter, field="jitter"), 6)
    moments = {
        key: _parse_moment(data[key], key) for key in ("at", "start", "end") if key in data
    }
    return Schedule(
        cron=_cron.check_cron(data["cron"]) if data.get("cron") is not None else None,
        every=every,
        timezone=data.get("timezone", "UTC"),
        jitter=jitter,
        **moments,
    )


def _parse_moment(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) > 64:
            raise InvalidSpec(f"{name}: at most 64 characters")
        text = value
        try:
            value = datetime.fromisoformat(text.strip())
        except ValueError:
            raise InvalidSpec(
                f"{name}: {text[:40]!r} is not an ISO-8601 time such as '2026-05-01T09:00:00Z'"
            ) from None
    if not isinstance(value, datetime):
        raise InvalidSpec(f"{name}: must be an ISO-8601 time such as '2026-05-01T09:00:00Z'")
    if value.utcoffset() is None:
        raise InvalidSpec(
            f"{name}: {value.isoformat()!r} has no UTC offset; add 'Z' or one such as '+02:00'"
        )
    _check_moment(value, name)
    return value.astimezone(UTC)


def _seconds_text(seconds: float) -> str:
    if seconds == int(seconds):
        return format_duration(seconds) if seconds else "0"
    return f"{seconds:.6f}".rstrip("0") + "s"  # exact to the microsecond, unlike '%g'


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _aware(moment: datetime, name: str) -> None:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def _every_slot(schedule: Schedule, moment: datetime, direction: int) -> datetime:
    """The slot ``anchor + k * every`` just after (direction 1) or before (-1) ``moment``."""
    assert schedule.every is not None
    anchor = schedule.start or EARLIEST
    period = round(schedule.every * 1_000_000)  # whole microseconds: exact, unlike floats
    offset = (moment - anchor) // _US
    step = offset // period + 1 if direction > 0 else -(-offset // period) - 1
    return anchor + timedelta(microseconds=step * period)


def next_fire(schedule: Schedule, after: datetime) -> datetime | None:
    """The first slot strictly after ``after``; None when the schedule has no more."""
    _aware(after, "after")
    if schedule.start is not None and after < schedule.start:
        after = schedule.start - _US
    if schedule.at is not None:
        slot = schedule.at if schedule.at > after else None
    elif schedule.every is not None:
        slot = _every_slot(schedule, after, 1)
    else:
        assert schedule.cron is not None
        slot = _cron.next_in_zone(schedule.cron, schedule.zone, after)
    if slot is None or (schedule.end is not None and slot > schedule.end):
        return None
    return slot


def prev_fire(schedule: Schedule, before: datetime) -> datetime | None:
    """The last slot strictly before ``before``; None when there is none."""
    _aware(before, "before")
    if schedule.end is not None and before > schedule.end:
        before = schedule.end + _US
    if schedule.at is not None:
        slot = schedule.at if schedule.at < before else None
    elif schedule.every is not None:
        slot = _every_slot(schedule, before, -1)
    else:
        assert schedule.cron is not None
        slot = _cron.prev_in_zone(schedule.cron, schedule.zone, before)
    if slot is None or (schedule.start is not None and slot < schedule.start):
        return None
    return slot


def fire_times(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` slots after ``after`` (fewer if the schedule ends), for previews."""
    if not 0 <= count <= MAX_PREVIEW:
        raise ValueError(f"count must be between 0 and {MAX_PREVIEW}")
    slots: list[datetime] = []
    slot = next_fire(schedule, after)
    while slot is not None and len(slots) < count:
        slots.append(slot)
        slot = next_fire(schedule, slot) if len(slots) < count else None
    return slots


def in_zone(moment: datetime, tz: str) -> datetime:
    """``moment`` as a wall-clock time in the time zone named ``tz``, for display."""
    return moment.astimezone(zone(tz))


def dst_note(schedule: Schedule, slot: datetime) -> str | None:
    """A sentence for a slot a DST change moved or merged ("why did it run then?"), else None."""
    if schedule.cron is None:
        return None
    return _cron.dst_note(schedule.cron, schedule.zone, slot)


def jittered(schedule: Schedule, slot: datetime, key: str) -> datetime:
    """When to dispatch ``slot``: ``slot`` plus an offset in ``[0, jitter)`` fixed by key and slot.

    The offset comes from a hash, not a random generator, so every server computes the same
    dispatch time for a slot; ``key`` (the job's id) spreads jobs sharing a schedule.
    """
    if not schedule.jitter:
        return slot
    text = f"{key}\x00{_iso(slot)}".encode()
    draw = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")
    span = round(schedule.jitter * 1_000_000)
    return slot + timedelta(microseconds=(draw * span) >> 64)


@dataclass(frozen=True, slots=True, kw_only=True)
class Misfire:
    """What to do with slots found late (see the module docstring)."""

    policy: Policy = "run_once"
    grace: float = 60.0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise InvalidSpec(
                f"misfire.policy: {str(self.policy)[:20]!r} is not one of {', '.join(POLICIES)}"
            )
        _check_seconds(self.grace, "misfire.grace", minimum=0.001)

    def to_dict(self) -> dict[str, Any]:
        """The plain form that ``parse_misfire`` reads back."""
        return {"policy": self.policy, "grace": _seconds_text(self.grace)}


def parse_misfire(data: Mapping[str, Any] | None) -> Misfire:
    """Read ``{policy: skip|run_once|run_all, grace: 60s}``; both keys optional."""
    if data is None:
        return Misfire()
    data = mapping(data, "misfire", ("policy", "grace"), "{policy: skip, grace: 5m}")
    grace = data.get("grace")
    return Misfire(
        policy=data.get("policy", "run_once"),  # checked by Misfire itself
        grace=60.0 if grace is None else round(parse_duration(grace, field="misfire.grace"), 6),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Skip:
    """A slot that gets no run, and why."""

    slot: datetime
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What ``plan_due`` decided. Slots are oldest first."""

    run: tuple[datetime, ...] = ()
    skipped: tuple[Skip, ...] = ()
    unlisted_through: datetime | None = None  # every slot in (last_slot, this] skipped, unlisted
    unlisted_reason: str | None = None
    next_slot: datetime | None = None  # the first slot after now (and after the cursor)
    cursor: datetime | None = None  # pass back as last_slot next time


def plan_due(
    schedule: Schedule,
    misfire: Misfire,
    last_slot: datetime | None,
    now: datetime,
    *,
    horizon: datetime | None = None,
    limit: int = 1000,
    max_listed: int = 10,
) -> Plan:
    """Decide which slots in ``(last_slot, horizon]`` run and which are skipped (module
    docstring). ``horizon`` (default ``now``) may lie ahead, to plan slots before they come;
    how late a slot is is always measured from ``now``."""
    _aware(now, "now")
    if limit < 1 or max_listed < 0:
        raise ValueError("limit must be at least 1 and max_listed at least 0")
    until = now if horizon is None else max(now, horizon)
    if last_slot is None:
        return Plan(next_slot=next_fire(schedule, now), cursor=now)
    # Usually a slot or two are due: walk forward from last_slot, which also finds next_slot.
    # After a long absence walk back from now instead, so that the cost follows what the plan
    # uses, not how long herder was away.
    ahead: list[datetime] = []
    following = next_fire(schedule, last_slot)
    while following is not None and following <= until and len(ahead) < _FORWARD:
        ahead.append(following)
        following = next_fire(schedule, following)
    complete = following is None or following > until
    due = reversed(ahead) if complete else _walk_back(schedule, last_slot, until)
    grace = timedelta(seconds=misfire.grace)
    run: list[datetime] = []
    skipped: list[Skip] = []
    unlisted: Skip | None = None
    cursor = last_slot
    for slot in due:
        cursor = max(cursor, slot)
        wanted = now - slot <= grace or misfire.policy == "run_all" or (
            misfire.policy == "run_once" and not run
        )
        if wanted and len(run) < limit:
            run.append(slot)
            continue
        if wanted:
            reason = f"over the limit of {limit} runs per catch-up; newer slots ran"
        else:
            reason = _late_reason(now - slot, misfire, newer_ran=bool(run))
        if len(skipped) == max_listed:
            unlisted = Skip(slot=slot, reason=f"{reason} (and older slots too)")
            break
        skipped.append(Skip(slot=slot, reason=reason))
    return Plan(
        run=tuple(reversed(run)),
        skipped=tuple(reversed(skipped)),
        unlisted_through=None if unlisted is None else unlisted.slot,
        unlisted_reason=None if unlisted is None else unlisted.reason,
        next_slot=following if complete else next_fire(schedule, max(until, cursor)),
        cursor=cursor,
    )


def _walk_back(schedule: Schedule, last_slot: datetime, now: datetime) -> Iterator[datetime]:
    """The slots in ``(last_slot, now]``, newest first, computed as they are consumed."""
    slot = prev_fire(schedule, now + _US)
    while slot is not None and slot > last_slot:
        yield slot
        slot = prev_fire(schedule, slot)


def _late_reason(lateness: timedelta, misfire: Misfire, *, newer_ran: bool) -> str:
    late = lateness.total_seconds()
    text = format_duration(round(late)) if late >= 1 else f"{late:.3g}s"
    grace = _seconds_text(misfire.grace)
    reason = f"misfired: {text} late (grace {grace}), policy {misfire.policy}"
    if misfire.policy == "run_once" and newer_ran:
        reason += "; a newer slot ran instead"
    return reason
