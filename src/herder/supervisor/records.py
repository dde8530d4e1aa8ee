"""The exit journal: ``DATA_DIR/exits.jsonl``, the supervisor's word on how each run ended.

It lets a server that was down when a run ended (or a supervisor that restarted) still report
the true end. One line is appended per run start and per run end (``O_APPEND``: no file is
created, which on a busy disk costs more than the fork and exec of a run), and the end is told
to anyone only once its line is written, so it survives the death of any process. The last
line about a run wins: a ``start`` line clears an older end recorded under the same id.

Flushing it to disk as well (``HERDER_SYNC_EXIT_RECORDS=1``) also survives a power loss or a
kernel crash, at the price of an ``fdatasync`` per group of ends. Without it a run that ended in
the last seconds before a power loss may be reported lost (PROC_ERROR) instead of with its exit
code; its processes died with the machine anyway. The database makes the same trade (SQLite
``synchronous=NORMAL``).

At start the journal is read back, and rewritten with only the ends of the last
``KEEP_SECONDS`` when it has grown past ``COMPACT_LINES`` lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from herder.supervisor.protocol import EXIT_JOURNAL, Message

KEEP_SECONDS = 30 * 86400
COMPACT_LINES = 200_000
REMEMBERED = 100_000  # ends kept in memory; older ones are looked up in the file


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended, in the wire convention: death by signal N is ``exit_code`` 128 + N."""

    exit_code: int | None
    signal: int | None

    @classmethod
    def from_returncode(cls, returncode: int) -> Outcome:
        """From ``Popen.returncode`` (negative: killed by that signal)."""
        if returncode < 0:
            return cls(exit_code=128 - returncode, signal=-returncode)
        return cls(exit_code=returncode, signal=None)

    def fields(self) -> Message:
        return {"exit_code": self.exit_code, "signal": self.signal}


Done = Callable[[str | None], None]  # called on the loop with None, or what went wrong


class ExitJournal:
    """Appends starts and ends to the journal; remembers the ends it holds."""

    def __init__(self, data_dir: str, *, durable: bool = False) -> None:
        self.path = os.path.join(data_dir, EXIT_JOURNAL)
        self._durable = durable
        self._loop = asyncio.get_running_loop()
        self.ends: dict[object, Outcome] = load(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exit-journal")
        self._waiting: list[Done] = []
        self._syncing = False

    def started(self, run_id: object) -> None:
        """A run starts under ``run_id``: an end recorded under that id before is not its end."""
        if self.ends.pop(run_id, None) is not None:
            self._append({"id": run_id, "start": True})

    def ended(self, run_id: object, outcome: Outcome, finished_at: float, done: Done) -> None:
        """Record the end; ``done`` is called on the loop once it is written (and flushed, in
        durable mode), or with what went wrong."""
        record = {"id": run_id, **outcome.fields(),
                  "finished_at": datetime.fromtimestamp(finished_at, UTC).isoformat()}
        try:
            self._append(record)
        except OSError as exc:
            self._loop.call_soon(done, f"cannot write its end to {self.path}: {exc}")
            return
        self.ends[run_id] = outcome
        if len(self.ends) > REMEMBERED:  # a long-lived supervisor: forget the oldest end
            del self.ends[next(iter(self.ends))]
        if not self._durable:
            self._loop.call_soon(done, None)
            return
        self._waiting.append(done)
        if not self._syncing:
            self._sync()

    def find(self, run_id: object) -> Outcome | None:
        """The end of ``run_id``: from memory, else (rarely: a server down for a long while)
        from the file."""
        found = self.ends.get(run_id)
        return found if found is not None else load(self.path, compact=False).get(run_id)

    def close(self) -> None:
        """Stop the flushing thread (after the flush under way, if any)."""
        self._executor.shutdown(wait=True)
        os.close(self._fd)

    def _append(self, record: Message) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def _sync(self) -> None:
        waiting, self._waiting = self._waiting, []
        self._syncing = True
        future = self._loop.run_in_executor(self._executor, os.fdatasync, self._fd)
        future.add_done_callback(lambda finished: self._synced(waiting, finished))

    def _synced(self, waiting: list[Done], finished: asyncio.Future[None]) -> None:
        self._syncing = False
        error = None if finished.cancelled() else finished.exception()
        problem = None if error is None else f"its end may not be durable: {error}"
        for done in waiting:
            done(problem)
        if self._waiting:
            self._sync()


def load(path: str, *, compact: bool = True) -> dict[object, Outcome]:
    """The ends the journal at ``path`` holds (the last line about a run wins); a journal grown
    past ``COMPACT_LINES`` is rewritten with the ends of the last ``KEEP_SECONDS`` only."""
    ends: dict[object, tuple[Outcome, str]] = {}
    lines = 0
    try:
        with open(path, "rb") as journal:
            for raw in journal:
                lines += 1
                try:
                    record = json.loads(raw)
                    run_id = record["id"]
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash: not evidence of anything
                if record.get("start"):
                    ends.pop(run_id, None)
                    continue
                code, sig = record.get("exit_code"), record.get("signal")
                if isinstance(code, int | None) and isinstance(sig, int | None):
                    ends[run_id] = (Outcome(code, sig), str(record.get("finished_at", "")))
    except FileNotFoundError:
        return {}
    if compact and lines > COMPACT_LINES:
        _compact(path, ends)
    return {run_id: outcome for run_id, (outcome, _) in ends.items()}


def _compact(path: str, ends: dict[object, tuple[Outcome, str]]) -> None:
    cutoff = datetime.fromtimestamp(time.time() - KEEP_SECONDS, UTC).isoformat()
    for run_id in [r for r, (_, at) in ends.items() if at < cutoff]:
        del ends[run_id]
    temporary = path + ".tmp"
    with open(temporary, "w") as journal:
        for run_id, (outcome, at) in ends.items():
            journal.write(json.dumps({"id": run_id, **outcome.fields(), "finished_at": at}) + "\n")
        journal.flush()
        os.fsync(journal.fileno())
    os.replace(temporary, path)
