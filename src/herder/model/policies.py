"""How a job's runs get along: concurrency (what a new run does while others are active) and
retries (when a failed run is tried again). Pure: no I/O, no clock.

Concurrency
-----------
A job has at most ``max_active`` (default 1) *occupying* runs: READY or launched. When a new run
would exceed it, ``concurrency`` decides:

* ``allow`` (default): no limit; ``max_active`` is ignored;
* ``forbid``: the new run does not happen. A scheduled slot is recorded as a SKIPPED run that
  names the runs in the way; a run asked for over the API is refused with 409;
* ``replace``: the oldest occupying runs are cancelled (they end ABORTED) and the new one runs;
* ``queue``: the new run waits in WAITING and becomes READY, oldest first, when a run ends.

Retries
-------
``retries: {limit, backoff, factor, max_backoff, jitter}``: a run that ends TIMEOUT, APP_ERROR or
PROC_ERROR is tried again, as a new run linked by ``parent_id`` with ``attempt + 1``, until
``limit`` retries were made. ABORTED (a person or a policy said stop) is never retried. Retry
``n`` (1-based) waits ``min(backoff * factor ** (n - 1), max_backoff)``, plus up to ``jitter``
(a fraction of that delay, default 0.1) so that retries of many runs failing together spread out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from herder.model.durations import MAX_SECONDS, format_duration, parse_duration
from herder.model.errors import InvalidSpec
from herder.model.fields import mapping
from herder.model.runs import RunStatus

Concurrency = Literal["allow", "forbid", "replace", "queue"]
CONCURRENCY: tuple[str, ...] = get_args(Concurrency)
MAX_ACTIVE = 10_000
MAX_RETRIES = 100
DEFAULT_MAX_BACKOFF = 600.0
RETRIED = frozenset({RunStatus.TIMEOUT, RunStatus.APP_ERROR, RunStatus.PROC_ERROR})


# A slot's run may be created this long before the slot, so that a thousand jobs due in the same
# second are all planned in time. Only under ``allow``: the other policies decide by the runs
# active at the slot itself, which are not known earlier.
PLAN_AHEAD = timedelta(seconds=2)


def lookahead(concurrency: str) -> timedelta:
    """How long before a slot a job with this concurrency policy has its slot planned."""
    return PLAN_AHEAD if concurrency == "allow" else timedelta(0)


def plan_at(concurrency: str, slot: datetime | None) -> datetime | None:
    """When the scheduler plans ``slot`` of a job with this concurrency policy."""
    return None if slot is None else slot - lookahead(concurrency)


def check_concurrency(value: object) -> Concurrency:
    if value not in CONCURRENCY:
        raise InvalidSpec(
            f"concurrency: {str(value)[:20]!r} is not one of {', '.join(CONCURRENCY)}"
        )
    return value  # type: ignore[return-value]  # checked just above


def check_max_active(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ACTIVE:
        raise InvalidSpec(f"max_active: must be a whole number from 1 to {MAX_ACTIVE}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Retries:
    """When and how often a failed run is tried again (see the module docstring)."""

    limit: int
    backoff: float = 10.0
    factor: float = 2.0
    max_backoff: float = DEFAULT_MAX_BACKOFF
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise InvalidSpec("retries.limit: must be a whole number")
        if not 0 <= self.limit <= MAX_RETRIES:
            raise InvalidSpec(f"retries.limit: must be from 0 to {MAX_RETRIES}")
        if not 1.0 <= self.factor <= 10.0:
            raise InvalidSpec("retries.factor: must be from 1 to 10")
        if not 0.0 <= self.jitter <= 1.0:
            raise InvalidSpec("retries.jitter: must be a fraction from 0 to 1")
        if not 0.0 <= self.backoff <= self.max_backoff <= MAX_SECONDS:
            raise InvalidSpec("retries: need 0 <= backoff <= max_backoff <= 366 days")

    def wants(self, status: RunStatus, attempt: int) -> bool:
        """Whether a run that ended ``status`` at ``attempt`` (1 = the first try) is retried."""
        return status in RETRIED and attempt <= self.limit

    def delay(self, retry: int, key: str) -> float:
        """Seconds before retry number ``retry`` (1-based) of the run named by ``key``.

        The jitter comes from a hash of ``key``, not a random generator: a server that computes
        it again after a restart gets the same answer.
        """
        base = min(self.backoff * self.factor ** (retry - 1), self.max_backoff)
        digest = hashlib.blake2b(f"{key}\x00{retry}".encode(), digest_size=8).digest()
        fraction = int.from_bytes(digest, "big") / 2**64
        return base * (1.0 + self.jitter * fraction)

    def to_dict(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "backoff": _text(self.backoff),
            "factor": self.factor,
            "max_backoff": _text(self.max_backoff),
            "jitter": self.jitter,
        }


def _text(seconds: float) -> str:
    return format_duration(seconds) if seconds == int(seconds) and seconds else f"{seconds:g}s"


RETRY_KEYS = ("limit", "backoff", "factor", "max_backoff", "jitter")


def parse_retries(data: object) -> Retries | None:
    """Read ``{limit: 3, backoff: 10s, factor: 2, max_backoff: 10m, jitter: 0.1}``; a bare
    number is the limit. None (or limit 0) means no retries."""
    if data is None:
        return None
    if isinstance(data, int) and not isinstance(data, bool):
        data = {"limit": data}
    data = mapping(data, "retries", RETRY_KEYS, "{limit: 3, backoff: 10s}")
    if "limit" not in data:
        raise InvalidSpec("retries: 'limit' (how many retries at most) is required")
    fields: dict[str, Any] = {"limit": data["limit"]}
    for key in ("backoff", "max_backoff"):
        value = data.get(key)
        if value is not None:
            zero = not isinstance(value, bool) and value in (0, "0", "0s")
            fields[key] = 0.0 if zero else parse_duration(value, field=f"retries.{key}")
    for key in ("factor", "jitter"):
        value = data.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidSpec(f"retries.{key}: must be a number")
            fields[key] = float(value)
    if "max_backoff" not in fields and fields.get("backoff", 0.0) > DEFAULT_MAX_BACKOFF:
        fields["max_backoff"] = fields["backoff"]  # a long backoff alone is not an error
    retries = Retries(**fields)
    return retries if retries.limit else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    """How long a job's ended runs (and their logs) are kept: runs older than ``max_age``
    seconds and runs beyond the newest ``max_runs`` go; either may be None (no such limit).
    Runs that have not ended are never pruned, nor a run whose retry is still active."""

    max_age: float | None = None
    max_runs: int | None = None

    def __post_init__(self) -> None:
        if self.max_runs is not None and (
            isinstance(self.max_runs, bool) or not isinstance(self.max_runs, int)
            or not 1 <= self.max_runs <= 10_000_000
        ):
            raise InvalidSpec("retention.max_runs: must be a whole number from 1 to 10000000")

    @property
    def limited(self) -> bool:
        return self.max_age is not None or self.max_runs is not None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.max_age is not None:
            data["max_age"] = _text(self.max_age)
        if self.max_runs is not None:
            data["max_runs"] = self.max_runs
        return data

    def over(self, default: Retention) -> Retention:
        """This retention, with ``default`` (its namespace's, the server's) where it sets
        nothing."""
        return Retention(
            max_age=self.max_age if self.max_age is not None else default.max_age,
            max_runs=self.max_runs if self.max_runs is not None else default.max_runs,
        )


def parse_retention(data: object) -> Retention:
    """Read ``{max_age: 30d, max_runs: 1000}``; both optional."""
    if data is None:
        return Retention()
    data = mapping(data, "retention", ("max_age", "max_runs"), "{max_age: 30d, max_runs: 1000}")
    age = data.get("max_age")
    return Retention(
        max_age=None if age is None else parse_duration(age, field="retention.max_age"),
        max_runs=data.get("max_runs"),
    )
