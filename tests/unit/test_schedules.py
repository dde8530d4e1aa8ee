"""Schedules: the three kinds, the DST rule, jitter, misfire planning and hostile input.

Nothing here reads a clock: each test passes the moment it reasons about, and ``FakeClock`` stands
in for the engine's tick loop. DST behaviour is checked against ``ticking_oracle``, an independent
model of the rule: a wall clock that ticks once per step and fires when local time first passes a
matching wall time.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from herder.model.errors import InvalidSpec
from herder.model.schedules import (
    Misfire,
    Plan,
    Schedule,
    dst_note,
    fire_times,
    in_zone,
    jittered,
    next_fire,
    parse_misfire,
    parse_schedule,
    plan_due,
    prev_fire,
)

Match = Callable[[datetime], bool]
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


def cron(expression: str, tz: str = "UTC", **extra: Any) -> Schedule:
    return parse_schedule({"cron": expression, "timezone": tz, **extra})


def walls(slots: Iterable[datetime], tz: str) -> list[str]:
    return [in_zone(s, tz).strftime("%m-%d %H:%M:%S %Z") for s in slots]


def ticking_oracle(
    match: Match, tz: str, start: datetime, end: datetime, step: timedelta
) -> list[datetime]:
    """Fire times in ``(start, end]`` of a clock ticking every ``step``: at each tick, fire once if
    local wall time has passed a matching wall time that it never passed before."""
    zone = ZoneInfo(tz)

    def wall(t: datetime) -> datetime:
        return t.astimezone(zone).replace(tzinfo=None)

    # The furthest wall time already passed: look back over any repeated stretch before start.
    seen = max(wall(start - k * step) for k in range(int(timedelta(hours=3) / step) + 1))
    fires, tick = [], start + step
    while tick <= end:
        now = wall(tick)
        if now > seen:
            candidate = seen + step
            while candidate <= now:
                if match(candidate):
                    fires.append(tick)
                    break
                candidate += step
            seen = now
        tick += step
    return fires


def slots_until(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    slots, slot = [], next_fire(schedule, start)
    while slot is not None and slot <= end:
        slots.append(slot)
        slot = next_fire(schedule, slot)
    return slots


# --- the three kinds -------------------------------------------------------------------------


def test_cron_five_fields_in_utc() -> None:
    s = cron("*/15 9-10 * * *")
    assert fire_times(s, utc(2026, 5, 1, 9, 20), 4) == [
        utc(2026, 5, 1, 9, 30), utc(2026, 5, 1, 9, 45), utc(2026, 5, 1, 10), utc(2026, 5, 1, 10, 15)
    ]
    assert next_fire(s, utc(2026, 5, 1, 10, 45)) == utc(2026, 5, 2, 9, 0)
    assert s.kind == "cron"


def test_cron_six_fields_have_seconds_first() -> None:
    s = cron("*/20 30 12 * * *")
    assert fire_times(s, utc(2026, 5, 1, 12, 30, 5), 3) == [
        utc(2026, 5, 1, 12, 30, 20), utc(2026, 5, 1, 12, 30, 40), utc(2026, 5, 2, 12, 30, 0)
    ]


def test_next_is_strictly_after_even_on_a_slot_and_with_microseconds() -> None:
    s = cron("0 * * * *")
    assert next_fire(s, utc(2026, 5, 1, 10)) == utc(2026, 5, 1, 11)
    just_before = utc(2026, 5, 1, 9, 59, 59) + timedelta(microseconds=999_999)
    assert next_fire(s, just_before) == utc(2026, 5, 1, 10)
    assert prev_fire(s, utc(2026, 5, 1, 10)) == utc(2026, 5, 1, 9)
    assert prev_fire(s, utc(2026, 5, 1, 10) + timedelta(microseconds=1)) == utc(2026, 5, 1, 10)


@pytest.mark.parametrize(
    ("macro", "expression"),
    [("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"),
     ("@weekly", "0 0 * * 0"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
     ("@hourly", "0 * * * *"), ("@DAILY", "0 0 * * *")],
)
def test_macros_mean_their_expressions(macro: str, expression: str) -> None:
    after = utc(2026, 2, 17, 13, 31)
    assert fire_times(cron(macro, "Europe/Rome"), after, 3) == fire_times(
        cron(expression, "Europe/Rome"), after, 3
    )


def test_weekly_is_sunday_midnight_in_the_zone() -> None:
    (slot,) = fire_times(cron("@weekly", "America/New_York"), utc(2026, 5, 1), 1)
    shown = in_zone(slot, "America/New_York")
    assert shown == datetime(2026, 5, 3, tzinfo=ZoneInfo("America/New_York"))
    assert slot == utc(2026, 5, 3, 4)


def test_cron_is_read_in_its_time_zone_and_shown_there() -> None:
    s = cron("0 9 * * 1-5", "Europe/Rome")
    slots = fire_times(s, utc(2026, 3, 26), 5)  # Thursday; DST starts on Sunday 29 March
    assert walls(slots, "Europe/Rome") == [
        "03-26 09:00:00 CET", "03-27 09:00:00 CET", "03-30 09:00:00 CEST",
        "03-31 09:00:00 CEST", "04-01 09:00:00 CEST",
    ]
    assert [s.hour for s in slots] == [8, 8, 7, 7, 7]
    assert all(s.tzinfo is UTC for s in slots)


def test_every_is_anchored_on_the_epoch_so_restarts_do_not_shift_it() -> None:
    s = parse_schedule({"every": "7m"})
    first = fire_times(s, utc(2026, 5, 1, 10, 0, 13), 50)
    later = fire_times(s, first[17] - timedelta(seconds=5), 10)  # "after a restart"
    assert later == first[17:27]
    assert all(int(t.timestamp()) % 420 == 0 for t in first)
    assert all(b - a == timedelta(minutes=7) for a, b in itertools.pairwise(first))


def test_every_is_anchored_on_start_and_bounded_by_end() -> None:
    s = parse_schedule(
        {"every": 1.5, "start": "2026-05-01T10:00:00.25Z", "end": "2026-05-01T10:00:04.75Z"}
    )
    assert fire_times(s, utc(2020, 1, 1), 10) == [
        utc(2026, 5, 1, 10) + timedelta(seconds=x) for x in (0.25, 1.75, 3.25, 4.75)
    ]
    assert prev_fire(s, utc(2030, 1, 1)) == utc(2026, 5, 1, 10) + timedelta(seconds=4.75)
    assert prev_fire(s, utc(2026, 5, 1, 10, 0, 0)) is None


def test_every_ignores_dst() -> None:
    s = parse_schedule({"every": "1h", "timezone": "Europe/Rome"})
    slots = fire_times(s, utc(2026, 10, 24, 23, 30), 4)
    assert slots == [utc(2026, 10, 25, h) for h in range(4)]
    assert walls(slots, "Europe/Rome") == [
        "10-25 02:00:00 CEST", "10-25 02:00:00 CET", "10-25 03:00:00 CET", "10-25 04:00:00 CET"
    ]
    assert dst_note(s, slots[0]) is None


def test_cron_start_and_end_bound_the_slots() -> None:
    s = cron("0 12 * * *", start="2026-05-03T00:00:00Z", end="2026-05-05T12:00:00Z")
    assert fire_times(s, utc(2026, 1, 1), 10) == [utc(2026, 5, d, 12) for d in (3, 4, 5)]
    assert next_fire(s, utc(2026, 5, 5, 12)) is None
    assert prev_fire(s, utc(2026, 5, 3, 12)) is None


def test_at_fires_once_then_never() -> None:
    s = parse_schedule({"at": "2026-05-01T12:00:00+02:00"})
    assert s.at == utc(2026, 5, 1, 10)
    assert next_fire(s, utc(2026, 5, 1, 9)) == utc(2026, 5, 1, 10)
    assert next_fire(s, utc(2026, 5, 1, 10)) is None
    assert fire_times(s, utc(2000, 1, 1), 5) == [utc(2026, 5, 1, 10)]
    assert prev_fire(s, utc(2026, 5, 1, 11)) == utc(2026, 5, 1, 10)
    assert plan_due(s, Misfire(), utc(2026, 5, 1, 9), utc(2026, 5, 1, 10, 0, 30)).run == (s.at,)
    assert plan_due(s, Misfire(), utc(2026, 5, 1, 10), utc(2026, 5, 1, 11)).next_slot is None


def test_in_zone_shows_the_wall_time() -> None:
    shown = in_zone(utc(2026, 7, 1, 12), "Asia/Kolkata")
    assert (shown.hour, shown.minute, shown.utcoffset()) == (17, 30, timedelta(hours=5, minutes=30))


# --- DST --------------------------------------------------------------------------------------

# (zone, the instant the clocks go forward, the instant they go back), 2026
DST_CHANGES = [
    ("Europe/Rome", utc(2026, 3, 29, 1), utc(2026, 10, 25, 1)),
    ("America/New_York", utc(2026, 3, 8, 7), utc(2026, 11, 1, 6)),
    ("Australia/Sydney", utc(2026, 10, 3, 16), utc(2026, 4, 4, 16)),
    ("Australia/Lord_Howe", utc(2026, 10, 3, 15, 30), utc(2026, 4, 4, 15)),  # a 30-minute shift
]
CHANGES = [
    pytest.param(tz, when, forward, id=f"{tz}-{'forward' if forward else 'back'}")
    for tz, ahead, back in DST_CHANGES for when, forward in ((ahead, True), (back, False))
]


def fields(second: int | None = 0, minute: int | None = None, hour: int | None = None) -> Match:
    """A matcher for an expression that fixes some of second, minute and hour (None: any)."""
    return lambda w: all(
        want is None or got == want
        for want, got in ((second, w.second), (minute, w.minute), (hour, w.hour))
    )


@pytest.mark.parametrize(("tz", "change", "forward"), CHANGES)
def test_dst_changes_table(tz: str, change: datetime, forward: bool) -> None:
    zone = ZoneInfo(tz)
    before = (change - SECOND).astimezone(zone).utcoffset()
    after = change.astimezone(zone).utcoffset()
    assert before is not None and after is not None
    assert (after > before) is forward


DAILY_AND_HOURLY = [
    ("30 2 * * *", fields(minute=30, hour=2)),
    ("30 1 * * *", fields(minute=30, hour=1)),
    ("0 2 * * *", fields(minute=0, hour=2)),
    ("0 3 * * *", fields(minute=0, hour=3)),
    ("0 * * * *", fields(minute=0)),
    ("45 * * * *", fields(minute=45)),
    ("*/20 * * * *", lambda w: w.second == 0 and w.minute % 20 == 0),
    ("* * * * *", fields()),
]


@pytest.mark.parametrize(("tz", "change", "forward"), CHANGES)
@pytest.mark.parametrize(
    ("expression", "match"), DAILY_AND_HOURLY, ids=[e for e, _ in DAILY_AND_HOURLY]
)
def test_dst_each_wall_time_fires_exactly_once(
    tz: str, change: datetime, forward: bool, expression: str, match: Match
) -> None:
    start, end = change - timedelta(hours=27), change + timedelta(hours=27)
    slots = slots_until(cron(expression, tz), start, end)
    assert slots == ticking_oracle(match, tz, start, end, MINUTE)
    assert len(set(slots)) == len(slots) and slots == sorted(slots)
    # every existing matching wall time of the window is covered by exactly one slot
    zone = ZoneInfo(tz)
    seen = [t.astimezone(zone).replace(tzinfo=None) for t in slots]
    assert len(set(seen)) == len(seen)


@pytest.mark.parametrize(("tz", "change", "forward"), CHANGES)
@pytest.mark.parametrize(
    ("expression", "match"),
    [("* * * * * *", lambda w: True), ("*/7 * * * * *", lambda w: w.second % 7 == 0),
     ("30 * * * * *", fields(second=30))],
    ids=["every-second", "every-7th-second", "second-30"],
)
def test_dst_every_second_expressions(
    tz: str, change: datetime, forward: bool, expression: str, match: Match
) -> None:
    start, end = change - timedelta(minutes=40), change + timedelta(minutes=40)
    slots = slots_until(cron(expression, tz), start, end)
    assert slots == ticking_oracle(match, tz, start, end, SECOND)
    assert all(b > a for a, b in itertools.pairwise(slots))


def test_rome_spring_forward_runs_the_missing_0230_at_0300_once() -> None:
    s = cron("30 2 * * *", "Europe/Rome")
    slots = fire_times(s, utc(2026, 3, 27), 4)
    assert walls(slots, "Europe/Rome") == [
        "03-27 02:30:00 CET", "03-28 02:30:00 CET", "03-29 03:00:00 CEST", "03-30 02:30:00 CEST"
    ]
    assert slots[2] == utc(2026, 3, 29, 1)
    assert dst_note(s, slots[2]) == (
        "DST gap: 02:30 did not exist on 2026-03-29 in Europe/Rome, as clocks jumped from 02:00 "
        "to 03:00; ran once, at 03:00"
    )
    assert dst_note(s, slots[1]) is None


def test_rome_fall_back_runs_the_repeated_0230_once_at_the_first() -> None:
    s = cron("30 2 * * *", "Europe/Rome")
    slots = fire_times(s, utc(2026, 10, 24), 3)
    assert walls(slots, "Europe/Rome") == [
        "10-24 02:30:00 CEST", "10-25 02:30:00 CEST", "10-26 02:30:00 CET"
    ]
    assert dst_note(s, slots[1]) == (
        "DST overlap: 02:30 occurred twice on 2026-10-25 in Europe/Rome; ran once, at the first "
        "(02:30 CEST), not again at the second"
    )
    # asked during the second 02:xx, the next slot is the next day's
    assert next_fire(s, utc(2026, 10, 25, 1, 15)) == utc(2026, 10, 26, 1, 30)
    assert prev_fire(s, utc(2026, 10, 25, 1, 45)) == utc(2026, 10, 25, 0, 30)


def test_hourly_across_both_changes_in_new_york() -> None:
    s = cron("0 * * * *", "America/New_York")
    spring = fire_times(s, utc(2026, 3, 8, 5, 30), 3)
    assert walls(spring, "America/New_York") == [
        "03-08 01:00:00 EST", "03-08 03:00:00 EDT", "03-08 04:00:00 EDT"
    ]
    note = dst_note(s, spring[1])
    assert note is not None and "02:00 did not exist" in note
    fall = fire_times(s, utc(2026, 11, 1, 3, 30), 4)
    assert walls(fall, "America/New_York") == [
        "11-01 00:00:00 EDT", "11-01 01:00:00 EDT", "11-01 02:00:00 EST", "11-01 03:00:00 EST"
    ]
    assert fall[2] - fall[1] == timedelta(hours=2)


def test_gap_note_names_all_the_missing_slots() -> None:
    s = cron("*/20 * * * *", "Europe/Rome")
    slot = utc(2026, 3, 29, 1)
    assert slot in fire_times(s, utc(2026, 3, 29, 0, 30), 3)
    assert dst_note(s, slot) == (
        "DST gap: the slots from 02:00 to 02:40 did not exist on 2026-03-29 in Europe/Rome, as "
        "clocks jumped from 02:00 to 03:00; ran once, at 03:00"
    )


def test_prev_fire_at_the_jump_skips_the_gap() -> None:
    s = cron("* * * * * *", "Europe/Rome")
    assert prev_fire(s, utc(2026, 3, 29, 1)) == utc(2026, 3, 29, 0, 59, 59)
    assert next_fire(s, utc(2026, 3, 29, 0, 59, 59)) == utc(2026, 3, 29, 1)
    assert next_fire(s, utc(2026, 10, 25, 1, 30)) == utc(2026, 10, 25, 2)  # silent second pass


# --- properties --------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Rome", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe",
         "Asia/Kolkata", "America/Sao_Paulo"]


@dataclass
class CronCase:
    seconds: frozenset[int] | None  # None for a 5-field expression
    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    days: frozenset[int] | None
    months: frozenset[int] | None
    weekdays: frozenset[int] | None  # 0 = Sunday
    text: str = field(default="")

    def __post_init__(self) -> None:
        def show(values: frozenset[int] | None) -> str:
            return "*" if values is None else ",".join(map(str, sorted(values)))

        parts = [self.minutes, self.hours, self.days, self.months, self.weekdays]
        if self.seconds is not None:
            parts.insert(0, self.seconds)
        self.text = " ".join(show(p) for p in parts)

    def match(self, w: datetime) -> bool:
        def ok(values: frozenset[int] | None, value: int) -> bool:
            return values is None or value in values

        if w.second not in (self.seconds or {0}) or w.microsecond:
            return False
        if not (ok(self.minutes, w.minute) and ok(self.hours, w.hour) and ok(self.months, w.month)):
            return False
        day, weekday = ok(self.days, w.day), ok(self.weekdays, w.isoweekday() % 7)
        if self.days is not None and self.weekdays is not None:
            return day or weekday  # cron: either restricted day field may match
        return day and weekday


def values(low: int, high: int, max_size: int) -> st.SearchStrategy[frozenset[int] | None]:
    return st.none() | st.frozensets(st.integers(low, high), min_size=1, max_size=max_size)


cron_cases = st.builds(
    CronCase,
    seconds=st.none() | st.frozensets(st.integers(0, 59), min_size=1, max_size=5),
    minutes=values(0, 59, 6), hours=values(0, 23, 6), days=values(1, 31, 5),
    months=values(1, 12, 6), weekdays=values(0, 6, 3),
)
moments = st.datetimes(min_value=datetime(2021, 1, 1), max_value=datetime(2034, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)


near_a_change = st.builds(
    lambda change, seconds: (change[0], change[1] + timedelta(seconds=seconds)),
    st.sampled_from([(tz, t) for tz, ahead, back in DST_CHANGES for t in (ahead, back)]),
    st.integers(-30 * 3600, 3 * 3600),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cron_cases, where=st.tuples(st.sampled_from(ZONES), moments) | near_a_change)
def test_random_cron_fires_increase_and_match_in_local_time(
    case: CronCase, where: tuple[str, datetime]
) -> None:
    tz, after = where
    try:
        s = cron(case.text, tz)
    except InvalidSpec:
        assume(False)  # e.g. the 31st of February: refused as "never fires"
        raise
    slots = fire_times(s, after, 6)
    assert len(slots) == 6 and slots[0] > after
    assert all(b > a for a, b in itertools.pairwise(slots))
    zone = ZoneInfo(tz)
    for slot in slots:
        local = slot.astimezone(zone)
        note = dst_note(s, slot)
        if case.match(local.replace(tzinfo=None)) and not (note or "").startswith("DST gap"):
            assert local.fold == 0  # a repeated wall time fires at its first occurrence
        else:
            assert note is not None and note.startswith("DST gap"), (case.text, tz, slot)
    # The ticking clock agrees when the span is small enough to walk.
    step = SECOND if case.seconds is not None else MINUTE
    start = after.replace(microsecond=0, second=0 if case.seconds is None else after.second)
    if (slots[-1] - start) / step <= 6000:
        expected = ticking_oracle(case.match, tz, start, slots[-1], step)
        assert slots_until(s, start, slots[-1]) == expected


schedules = st.one_of(
    st.builds(lambda c, tz: cron(c, tz), st.sampled_from(
        ["*/5 * * * *", "30 2 * * *", "0 * * * *", "*/10 * * * * *", "0 0 29 2 *", "15 10 L * *",
         "0 9 * * MON#2", "@daily"]), st.sampled_from(ZONES)),
    st.builds(
        lambda e, a: Schedule(every=e, start=a),
        st.floats(1, 90_000).map(lambda x: round(x, 6)),
        st.none() | moments,
    ),
    st.builds(lambda a: Schedule(at=a), moments),
)


@settings(max_examples=200, deadline=None)
@given(s=schedules, t=moments)
def test_next_and_prev_bracket_any_moment(s: Schedule, t: datetime) -> None:
    following, previous = next_fire(s, t), prev_fire(s, t)
    assert following is None or following > t
    assert previous is None or previous < t
    # Between previous and following there is no slot, or t itself.
    if following is not None:
        assert prev_fire(s, following) in (previous, t)
    if previous is not None:
        assert next_fire(s, previous) in (following, t)


@settings(max_examples=100, deadline=None)
@given(s=schedules, t=moments)
def test_fire_times_strictly_increase_for_every_kind(s: Schedule, t: datetime) -> None:
    slots = fire_times(s, t, 20)
    assert all(b > a for a, b in itertools.pairwise(slots))
    assert all(x > t and x.utcoffset() == timedelta(0) for x in slots)


@settings(max_examples=100, deadline=None)
@given(s=schedules)
def test_to_dict_round_trips(s: Schedule) -> None:
    assert parse_schedule(s.to_dict()) == s


# --- jitter ---------------------------------------------------------------------------------------


def test_jitter_is_deterministic_within_bounds_and_keeps_the_slot() -> None:
    s = parse_schedule({"every": "1m", "jitter": "30s"})
    slot = utc(2026, 5, 1, 10, 1)
    dispatch = [jittered(s, slot, f"job-{i}") for i in range(2000)]
    assert dispatch == [jittered(s, slot, f"job-{i}") for i in range(2000)]
    offsets = [(d - slot).total_seconds() for d in dispatch]
    assert all(0 <= x < 30 for x in offsets)
    assert min(offsets) < 1 and max(offsets) > 29  # spread over the whole window
    assert jittered(s, slot + timedelta(minutes=1), "job-1") - timedelta(minutes=1) != dispatch[1]
    assert next_fire(s, slot) == slot + timedelta(minutes=1)  # the slot itself never moves
    assert jittered(parse_schedule({"every": "1m"}), slot, "job-1") == slot


@settings(max_examples=200)
@given(
    jitter=st.floats(0.001, 3599).map(lambda x: round(x, 6)), key=st.text(max_size=20), t=moments
)
def test_jitter_stays_below_the_bound(jitter: float, key: str, t: datetime) -> None:
    s = Schedule(every=3600, jitter=jitter)
    assert timedelta(0) <= jittered(s, t, key) - t < timedelta(seconds=jitter)


def test_jitter_must_be_shorter_than_the_interval() -> None:
    with pytest.raises(InvalidSpec, match="jitter: 1m must be shorter than the interval"):
        parse_schedule({"every": "1m", "jitter": "1m"})
    with pytest.raises(InvalidSpec, match=r"shorter than the interval between slots \(10m\)"):
        parse_schedule({"cron": "0,10 3 * * *", "jitter": "15m"})
    assert parse_schedule({"cron": "0 3 * * *", "jitter": "2h"}).jitter == 7200
    assert parse_schedule({"at": "2026-05-01T00:00:00Z", "jitter": "5m"}).jitter == 300


# --- misfires -------------------------------------------------------------------------------------


@dataclass
class FakeClock:
    """The engine's tick loop in miniature: a clock the test moves, and the slots it ran."""

    schedule: Schedule
    misfire: Misfire
    now: datetime
    cursor: datetime | None = None
    ran: list[datetime] = field(default_factory=list)
    skipped: list[datetime] = field(default_factory=list)

    def tick(self) -> Plan:
        plan = plan_due(self.schedule, self.misfire, self.cursor, self.now)
        self.ran += plan.run
        self.skipped += [s.slot for s in plan.skipped]
        self.cursor = plan.cursor
        return plan

    def run_for(self, duration: timedelta, step: timedelta) -> None:
        end = self.now + duration
        while self.now < end:
            self.now += step
            self.tick()


@pytest.mark.parametrize(
    "kind", [{"cron": "*/5 * * * *", "timezone": "Europe/Rome"}, {"every": "5m"}]
)
def test_on_time_ticks_run_every_slot_once_across_dst(kind: dict[str, str]) -> None:
    s = parse_schedule(kind)
    clock = FakeClock(schedule=s, misfire=Misfire(), now=utc(2026, 10, 24, 22))
    clock.tick()  # a new job: nothing is backfilled
    assert clock.ran == []
    clock.run_for(timedelta(hours=6), timedelta(seconds=17))
    assert clock.ran == slots_until(s, utc(2026, 10, 24, 22), utc(2026, 10, 25, 4))
    assert clock.skipped == []


@pytest.mark.parametrize(
    ("policy", "ran", "skipped"),
    [("skip", [], 35), ("run_once", [utc(2026, 5, 1, 12, 55)], 34), ("run_all", "all", 0)],
)
def test_after_downtime_each_policy(policy: str, ran: Any, skipped: int) -> None:
    s = parse_schedule({"cron": "*/5 * * * *"})
    clock = FakeClock(schedule=s, misfire=parse_misfire({"policy": policy, "grace": "2m"}),
                      now=utc(2026, 5, 1, 10), cursor=utc(2026, 5, 1, 10))
    clock.now = utc(2026, 5, 1, 12, 59)  # down for three hours, less a minute
    plan = clock.tick()
    missed = slots_until(s, utc(2026, 5, 1, 10), utc(2026, 5, 1, 12, 59))
    assert clock.ran == (missed if ran == "all" else ran)
    assert len(plan.skipped) == min(skipped, 10)
    assert plan.cursor == utc(2026, 5, 1, 12, 55) and plan.next_slot == utc(2026, 5, 1, 13)
    if skipped > 10:
        assert plan.unlisted_through == missed[skipped - 11]
        assert plan.unlisted_reason is not None and "(and older slots too)" in plan.unlisted_reason
    if skipped:
        newest_late = "4m" if policy == "skip" else "9m"
        assert plan.skipped[-1].reason.startswith(f"misfired: {newest_late} late")
        assert f"policy {policy}" in plan.skipped[0].reason
    clock.now += timedelta(minutes=1)  # back on time: the next slot runs normally
    clock.tick()
    assert clock.ran[-1] == utc(2026, 5, 1, 13)


def test_on_time_slots_run_and_late_ones_follow_the_policy() -> None:
    s = parse_schedule({"every": "1m"})
    now = utc(2026, 5, 1, 10, 5) + timedelta(seconds=30)
    plan = plan_due(s, Misfire(policy="run_once", grace=120), utc(2026, 5, 1, 10), now)
    assert plan.run == (utc(2026, 5, 1, 10, 4), utc(2026, 5, 1, 10, 5))  # 1m30s and 30s late
    assert [k.slot for k in plan.skipped] == [utc(2026, 5, 1, 10, m) for m in (1, 2, 3)]
    assert plan.skipped[0].reason == (
        "misfired: 4m30s late (grace 2m), policy run_once; a newer slot ran instead"
    )
    assert plan_due(s, Misfire(policy="skip", grace=150), utc(2026, 5, 1, 10), now).run == (
        utc(2026, 5, 1, 10, 3), utc(2026, 5, 1, 10, 4), utc(2026, 5, 1, 10, 5)  # grace is inclusive
    )


def test_catch_up_is_bounded_however_long_the_absence() -> None:
    s = parse_schedule({"every": "1s"})
    last, now = utc(2026, 4, 1), utc(2026, 5, 1)  # 2.6 million missed slots
    plan = plan_due(s, Misfire(policy="run_all"), last, now, limit=1000, max_listed=5)
    assert len(plan.run) == 1000 and plan.run[-1] == now
    assert plan.run[0] == now - timedelta(seconds=999)
    assert len(plan.skipped) == 5
    assert plan.skipped[-1].reason == "over the limit of 1000 runs per catch-up; newer slots ran"
    assert plan.unlisted_through == now - timedelta(seconds=1005)
    assert plan.cursor == now and plan.next_slot == now + SECOND
    quiet = plan_due(s, Misfire(policy="skip"), last, now, max_listed=0)
    assert len(quiet.run) == 61 and quiet.run[0] == now - timedelta(seconds=60)  # on time
    assert quiet.skipped == () and quiet.unlisted_through == now - timedelta(seconds=61)


def test_a_new_job_starts_now_and_a_clock_going_back_runs_nothing_twice() -> None:
    s = parse_schedule({"cron": "0 * * * *"})
    plan = plan_due(s, Misfire(), None, utc(2026, 5, 1, 10, 30))
    assert plan == Plan(next_slot=utc(2026, 5, 1, 11), cursor=utc(2026, 5, 1, 10, 30))
    back = plan_due(s, Misfire(), utc(2026, 5, 1, 11), utc(2026, 5, 1, 10, 45))
    assert back.run == () and back.cursor == utc(2026, 5, 1, 11)
    assert back.next_slot == utc(2026, 5, 1, 12)


def test_misfire_parsing() -> None:
    assert parse_misfire(None) == Misfire(policy="run_once", grace=60)
    assert parse_misfire({"policy": "skip", "grace": "5m"}) == Misfire(policy="skip", grace=300)
    some = Misfire(policy="run_all", grace=1.5)
    assert parse_misfire(some.to_dict()) == some
    for bad, message in [
        ({"policy": "sometimes"}, "not one of skip, run_once, run_all"),
        ({"grace": "-1s"}, "misfire.grace"),
        ({"grace": 0}, "greater than zero"),
        ({"poilcy": "skip"}, "unknown key 'poilcy'"),
        ("skip", "must be a mapping"),
    ]:
        with pytest.raises(InvalidSpec, match=message):
            parse_misfire(bad)  # type: ignore[arg-type]


# --- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cron": "0 3 * * *", "every": "5m"}, r"exactly one of .* \(got 'cron' and 'every'\)"),
        ({}, r"exactly one of 'cron', 'every' or 'at' \(got none\)"),
        ({"cron": "0 3 * * *", "crom": "x"}, "unknown key 'crom'"),
        ({"cron": "61 * * * *"}, r"cron: minute field '61' is not valid"),
        ({"cron": "0 25 * * *"}, r"cron: hour field '25' is not valid"),
        ({"cron": "0 0 * 13 *"}, r"cron: month field '13' is not valid"),
        ({"cron": "0 0 * * FUNDAY"}, r"cron: day-of-week field 'FUNDAY' is not valid"),
        ({"cron": "99 0 0 * * *"}, r"cron: second field '99' is not valid"),
        ({"cron": "H * * * *"}, r"'H' is not supported, use 'jitter'"),
        ({"cron": "* * * *"}, "has 4 fields; write 5"),
        ({"cron": "0 0 1 1 * 2030"}, "day-of-week field '2030' is not valid"),
        ({"cron": "0 0 1 1 * * *"}, "has 7 fields"),
        ({"cron": "0 0 30 2 *"}, "never fires"),
        ({"cron": "@reboot"}, "unknown macro '@reboot'"),
        ({"cron": "* " * 200}, "at most 200 characters"),
        ({"cron": "*/5 * * * *\x00"}, "printable ASCII"),
        ({"cron": 5}, "must be a string"),
        ({"cron": "   "}, "must not be empty"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
        ({"cron": "0 3 * * *", "timezone": "../../etc/passwd"}, "unknown time zone"),
        ({"cron": "0 3 * * *", "timezone": "/etc/localtime"}, "unknown time zone"),
        ({"cron": "0 3 * * *", "timezone": "localtime"}, "unknown time zone"),
        ({"cron": "0 3 * * *", "timezone": "Europe"}, "unknown time zone"),
        ({"cron": "0 3 * * *", "timezone": "A" * 10_000}, "unknown time zone"),
        ({"cron": "0 3 * * *", "timezone": ["UTC"]}, "IANA name"),
        ({"every": "0.5s"}, "every: must be at least 1s"),
        ({"every": 0}, "greater than zero"),
        ({"every": "soon"}, "'soon' is not a duration"),
        ({"every": "400d"}, "at most 366 days"),
        ({"every": True}, "boolean"),
        ({"at": "2026-05-01T10:00:00"}, "has no UTC offset"),
        ({"at": "tomorrow"}, "not an ISO-8601 time"),
        ({"at": "2026-05-01T10:00:00Z" + " " * 100}, "at most 64 characters"),
        ({"at": "0001-01-01T00:00:00Z"}, "between 1970 and 2999"),
        ({"at": 1714557600}, "must be an ISO-8601 time"),
        ({"at": "2026-05-01T10:00:00Z", "start": "2026-05-01T00:00:00Z"}, "not to 'at'"),
        ({"every": "1h", "start": "2026-05-02T00:00Z", "end": "2026-05-01T00:00Z"}, "before 'end'"),
        ({"every": "1h", "jitter": "2h"}, "shorter than the interval"),
        ({"every": "1h", "jitter": "-5s"}, "jitter: '-5s' is not a duration"),
        (["cron", "* * * * *"], "must be a mapping"),
    ],
)
def test_hostile_input_is_refused_clearly(data: Any, message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        parse_schedule(data)


def test_schedule_values_are_checked_even_when_built_directly() -> None:
    with pytest.raises(InvalidSpec, match="exactly one"):
        Schedule(cron="* * * * *", every=60)
    with pytest.raises(InvalidSpec, match="timezone-aware"):
        Schedule(at=datetime(2026, 5, 1))
    with pytest.raises(InvalidSpec, match="minute field"):
        Schedule(cron="77 * * * *")


def test_accepted_forms() -> None:
    assert parse_schedule({"cron": "  0   3 * *   *  "}).cron == "0 3 * * *"
    assert parse_schedule({"every": 90}).every == 90.0
    plain = parse_schedule({"every": "1h30m", "jitter": 0})
    assert plain.to_dict() == {"every": "1h30m", "timezone": "UTC"}
    aware = datetime(2026, 5, 1, 12, tzinfo=ZoneInfo("Europe/Rome"))  # as YAML loaders give it
    assert parse_schedule({"at": aware}).at == utc(2026, 5, 1, 10)
    assert parse_schedule({"cron": "0 9 * * mon-fri", "timezone": "Europe/Rome"}).to_dict() == {
        "cron": "0 9 * * mon-fri", "timezone": "Europe/Rome"
    }
