"""Locks: named mutexes and semaphores a run holds while it runs. Pure: no I/O, no clock.

A job lists the locks its runs need (``locks: [db]`` is a mutex, ``{name: db, slots: 3}`` a
semaphore of three). A run takes all of its locks at once or none, and waits in WAITING until it
can. Who gets in is decided by ``grantable``:

    A waiting run is granted when, for every lock it needs, the number of runs waiting for that
    lock ahead of it (older runs, by id) is smaller than the lock's free slots.

For a mutex this is "first in the queue of every lock it needs, and the lock is free". Why it
never deadlocks and nobody starves:

* No deadlock: when nothing is held, the oldest waiter is first in each of its queues and every
  lock has ``slots >= 1`` free, so it is granted. Runs holding locks end, so this state comes.
* No starvation: a younger run V is granted a lock L only if more slots of L are free than there
  are waiters ahead of V, which include every older waiter W of L; after V's grant, W still has
  fewer waiters ahead than free slots. So a younger run never takes what an older one is waiting
  for; once each condition of the oldest waiter holds it keeps holding, and it is granted when
  the holders that were there before it end. Only finitely many runs are older than any run.
* One pass is enough: granting a run changes neither the condition of those ahead of it (shown
  above) nor of those behind (one fewer ahead, one fewer free), so every run that is grantable
  in a state is granted together, and nobody else becomes grantable by it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from herder.model.errors import InvalidSpec
from herder.model.fields import mapping

MAX_LOCKS = 32  # locks one job may name
MAX_SLOTS = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class LockUse:
    """A lock a job's runs need: its name (in the job's namespace) and its slots (1: a mutex)."""

    name: str
    slots: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "slots": self.slots}


def _check_lock_name(value: object, where: str) -> str:
    from herder.model.jobs import check_name  # jobs imports this module

    if not isinstance(value, str):
        raise InvalidSpec(f"{where}: a lock name is a string")
    return check_name(value, what=where)


def _check_slots(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"{where}.slots: a whole number from 1 to {MAX_SLOTS}")
    if not 1 <= value <= MAX_SLOTS:
        raise InvalidSpec(f"{where}.slots: must be from 1 to {MAX_SLOTS} (got {value})")
    return value


def _parse_one(item: object, where: str) -> LockUse:
    if isinstance(item, str):
        return LockUse(name=_check_lock_name(item, where))
    if isinstance(item, Mapping):
        item = mapping(item, where, ("name", "slots"), "{name: db, slots: 2}")
        if "name" not in item:
            raise InvalidSpec(f"{where}: a lock needs a name")
        name = _check_lock_name(item["name"], f"{where}.name")
        return LockUse(name=name, slots=_check_slots(item.get("slots", 1), where))
    raise InvalidSpec(f"{where}: a lock is a name or {{name, slots}}")


def parse_locks(value: object) -> tuple[LockUse, ...]:
    """``[db, {name: pool, slots: 2}]`` to lock uses, in the order given. The same lock named
    twice with the same slots counts once; with different slots it is refused."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise InvalidSpec("locks: a list of lock names or {name, slots}")
    if len(value) > MAX_LOCKS:
        raise InvalidSpec(f"locks: at most {MAX_LOCKS} locks per job (got {len(value)})")
    uses: dict[str, LockUse] = {}
    for i, item in enumerate(value):
        use = _parse_one(item, f"locks[{i}]")
        seen = uses.get(use.name)
        if seen is not None and seen.slots != use.slots:
            raise InvalidSpec(
                f"locks: {use.name!r} is named twice, with {seen.slots} and {use.slots} slots; "
                "name it once"
            )
        uses.setdefault(use.name, use)
    return tuple(uses.values())


def uses_of(spec: Mapping[str, Any]) -> tuple[LockUse, ...]:
    """The locks a run needs, read from the spec frozen into it (validated when it was saved)."""
    return tuple(
        LockUse(name=str(item["name"]), slots=int(item["slots"]))
        for item in spec.get("locks") or ()
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Waiter:
    """A run waiting for ``locks`` (names); waiters are ordered oldest (lowest run id) first."""

    run_id: int
    locks: frozenset[str]


def grantable(
    waiters: Sequence[Waiter], slots: Mapping[str, int], held: Mapping[str, int]
) -> list[int]:
    """The run ids to grant now, by the rule in the module docstring. ``waiters`` must be in
    queue order (oldest first); ``held`` counts the holders of each lock."""
    ahead: Counter[str] = Counter()
    granted = []
    for waiter in waiters:
        if all(ahead[name] < slots[name] - held.get(name, 0) for name in waiter.locks):
            granted.append(waiter.run_id)
        ahead.update(waiter.locks)
    return granted


def waiting_reason(blocking: Iterable[tuple[str, list[int], int]]) -> str:
    """What a waiting run waits for, as people read it, from ``(lock, holder run ids, waiters
    ahead)`` for each lock it cannot have yet: ``waiting for lock db (held by run 812)``."""
    parts = []
    for name, holders, ahead in blocking:
        held = _runs(holders)
        detail = f"held by {held}" if held else "free"
        if ahead:
            detail += f"; {ahead} waiting ahead"
        parts.append(f"lock {name} ({detail})")
    return "waiting for " + ", ".join(parts) if parts else "waiting for its locks"


def _runs(ids: list[int]) -> str:
    if not ids:
        return ""
    shown = ", ".join(str(i) for i in ids[:5])
    more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
    return f"run{'s' if len(ids) > 1 else ''} {shown}{more}"
