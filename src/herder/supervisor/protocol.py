"""Names and framing shared by the supervisor and its client: file names, the socket path rule,
and a ``LineProtocol`` that reads and writes newline-delimited JSON."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, cast

SOCKET_NAME = "supervisor.sock"
LOCK_NAME = "supervisor.lock"
LOG_NAME = "supervisor.log"
PID_NAME = "supervisor.pid"  # the pid of the supervisor listening now (absent when none)
EXIT_JOURNAL = "exits.jsonl"
STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"
OUTPUT_LOG = "output.log"  # both streams in arrival order

IDLE_ENV = "HERDER_SUPERVISOR_IDLE"
SYNC_ENV = "HERDER_SYNC_EXIT_RECORDS"
DEFAULT_IDLE = 30.0

# sun_path holds 108 bytes on Linux (104 on some BSDs) including the final NUL; refusing a bit
# earlier gives one clear message instead of a truncated path or an obscure EINVAL.
MAX_SOCKET_PATH = 100
# A line longer than this is a broken or hostile peer, not a big environment.
MAX_LINE = 16 * 1024 * 1024

Message = dict[str, Any]


def socket_path(data_dir: str | os.PathLike[str]) -> str:
    """The absolute socket path of a data folder; ``ValueError`` when it is too long to bind."""
    path = os.path.join(os.path.abspath(data_dir), SOCKET_NAME)
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH:
        raise ValueError(
            f"the supervisor socket path {path!r} is {size} bytes long; Unix sockets allow about "
            f"{MAX_SOCKET_PATH}: choose a data folder with a shorter path"
        )
    return path


def encode(message: Message) -> bytes:
    """One message as a line of compact JSON, without the newline."""
    return json.dumps(message, separators=(",", ":")).encode()


class LineProtocol(asyncio.Protocol):
    """Newline-delimited JSON over a stream transport.

    Messages sent during one turn of the event loop leave in a single ``write``: under load a
    turn handles dozens of runs, and one system call for all their replies is much cheaper than
    one each.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._pending = b""
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports have the Transport methods without inheriting from the class)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if b"\n" not in data:
            self._pending += data
            if len(self._pending) > MAX_LINE:
                self.protocol_error(f"a message longer than {MAX_LINE} bytes")
            return
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                self.protocol_error(f"a line that is not JSON: {line[:80]!r}")
                return
            if not isinstance(message, dict) or not isinstance(message.get("op"), str):
                self.protocol_error(f"a message without an op: {line[:80]!r}")
                return
            self.message_received(message)

    def message_received(self, message: Message) -> None:
        """Handle one decoded message (a dict with a string ``op``)."""
        raise NotImplementedError

    def protocol_error(self, problem: str) -> None:
        """The peer sent garbage: drop the connection (subclasses also log it)."""
        if self.transport is not None:
            self.transport.abort()

    @property
    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def send(self, message: Message) -> None:
        """Queue a message; it leaves at the end of this loop turn with the others."""
        if self.closing:
            return
        self._out.append(encode(message))
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write every queued message now."""
        self._flush_handle = None
        if self._out and self.transport is not None and not self.transport.is_closing():
            self._out.append(b"")
            self.transport.write(b"\n".join(self._out))
        self._out.clear()
