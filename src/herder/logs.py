"""The log store: each run's stdout, stderr and combined output, as files in the data folder.

The local backend's supervisor writes the files; everything here reads them. Reads are by byte
range, so a 100 MB log is never loaded whole, and ``follow`` tails a file while its run lives.
"""

from __future__ import annotations

import asyncio
import enum
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

CHUNK = 256 * 1024


class Stream(enum.StrEnum):
    """Which log: ``output`` is stdout and stderr together, in the order they arrived."""

    OUTPUT = "output"
    STDOUT = "stdout"
    STDERR = "stderr"


class LogStore:
    """Where a run's logs live: ``<data>/runs/<run id>/<stream>.log``. Paths come from the
    integer run id only: nothing a client sends becomes part of a path."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "runs"

    def run_dir(self, run_id: int) -> Path:
        return self.root / str(int(run_id))

    def path(self, run_id: int, stream: Stream) -> Path:
        return self.run_dir(run_id) / f"{stream.value}.log"

    def size(self, run_id: int, stream: Stream) -> int:
        try:
            return self.path(run_id, stream).stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, run_id: int, stream: Stream, offset: int = 0, limit: int = CHUNK) -> bytes:
        """Up to ``limit`` bytes from ``offset``; empty when there is nothing (yet)."""
        try:
            fd = os.open(self.path(run_id, stream), os.O_RDONLY)
        except FileNotFoundError:
            return b""
        try:
            return os.pread(fd, limit, offset)
        finally:
            os.close(fd)

    async def chunks(
        self, run_id: int, stream: Stream, offset: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The log from ``offset`` to ``end`` (default: its current size), chunk by chunk."""
        stop = self.size(run_id, stream) if end is None else end
        while offset < stop:
            data = await asyncio.to_thread(
                self.read, run_id, stream, offset, min(CHUNK, stop - offset)
            )
            if not data:
                return
            offset += len(data)
            yield data

    async def follow(
        self,
        run_id: int,
        stream: Stream,
        offset: int,
        ended: Callable[[], Awaitable[bool]],
        *,
        poll: float = 0.05,
        max_poll: float = 0.5,
    ) -> AsyncIterator[bytes]:
        """Tail a log until its run has ended and every byte is out.

        ``ended`` answers whether the run is terminal; the store only says so once the backend
        has closed the files, so a last read after it says yes gets the tail.
        """
        delay = poll
        while True:
            data = self.read(run_id, stream, offset)
            if data:
                offset += len(data)
                delay = poll
                yield data
                continue
            if await ended():
                async for tail in self.chunks(run_id, stream, offset):
                    yield tail
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_poll)
