"""The one small Protocol every backend speaks, and the registry that finds them by name.

A backend knows nothing about schedules, retries or workflows: it starts a process (or a pod, or
a remote job) for a run, reports how it ends, and stops it when asked. The ``Handle`` it returns
is small and JSON-serialisable; the engine stores it on the run row, and it is all a restarted
server needs to find the run again.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from herder.model.errors import InvalidSpec

Handle = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunContext:
    """Everything a backend needs to start one run; built by the engine."""

    run_id: int
    attempt: int
    namespace: str
    job: str
    argv: list[str]
    env: dict[str, str]  # the complete environment of the process, nothing inherited
    work_dir: Path  # the run's own working folder; the backend creates it if missing
    log_dir: Path  # where the backend keeps stdout.log, stderr.log and output.log
    metadata: dict[str, Any] = field(default_factory=dict)
    # Strings to replace by ``***`` wherever the backend keeps the run's output (its secrets'
    # values, in every form they may take: ``herder.masking.forms``).
    masks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Running:
    """The run is running (sent when a watch attaches or re-attaches to a live run)."""


@dataclass(frozen=True, slots=True)
class Exited:
    """The run's process is gone and its logs are complete."""

    exit_code: int | None
    signal: int | None = None


BackendEvent = Running | Exited


class Backend(Protocol):
    """Where runs execute.

    Errors: a run that cannot be started raises ``BackendError`` from ``start`` with a message
    a person can act on (the run ends PROC_ERROR with it); a run the backend has no trace of
    raises ``RunLost`` from ``watch``.
    """

    name: ClassVar[str]

    async def open(self) -> None:
        """Get ready (connect, start helpers). Called once before any other method."""

    async def close(self) -> None:
        """Let go of connections; runs that are running keep running."""

    async def prepare(self, run: RunContext) -> None:
        """Do ahead what does not start the run (make its folders, pull an image): the engine
        calls this before a scheduled run's start time, then ``start`` on the dot. ``start``
        must also work for a run that was never prepared."""

    async def start(self, run: RunContext) -> Handle:
        """Start the run and answer its handle once it is running."""
        ...

    def watch(self, run_id: int, handle: Handle) -> AsyncIterator[BackendEvent]:
        """Follow a run until it ends: zero or more ``Running``, then exactly one ``Exited``.

        Works the same for a run this process started and for one found again after a restart.
        """
        ...

    async def cancel(self, run_id: int, handle: Handle, *, force: bool, grace: float) -> None:
        """Stop the run: SIGTERM (or the backend's equivalent), then after ``grace`` seconds
        SIGKILL; ``force`` kills at once. Ending is reported by ``watch``, not here."""
        ...


BackendFactory = Callable[..., Backend]
# Built-in backends by name, imported only when used (heavy clients stay out of start-up).
_BUILTIN: dict[str, str] = {"local": "herder.backends.local:LocalBackend"}
_REGISTRY: dict[str, BackendFactory] = {}


def register(name: str, factory: BackendFactory) -> None:
    """Add a backend (a plug-in, or a fake in tests)."""
    _REGISTRY[name] = factory


def names() -> list[str]:
    return sorted(set(_BUILTIN) | set(_REGISTRY))


def check_name(name: str) -> str:
    """Refuse an unknown backend name, listing the valid ones."""
    if name not in _REGISTRY and name not in _BUILTIN:
        raise InvalidSpec(
            f"backend: unknown backend {name[:40]!r}; available: {', '.join(names())}"
        )
    return name


def create(name: str, **settings: Any) -> Backend:
    """A backend instance by name, built with ``settings`` (e.g. ``data_dir``)."""
    check_name(name)
    factory = _REGISTRY.get(name)
    if factory is None:
        module_name, _, attr = _BUILTIN[name].partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
    return factory(**settings)
