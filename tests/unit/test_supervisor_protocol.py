"""The supervisor's pure parts: framing, the socket path rule, outcomes, messages, records."""

from __future__ import annotations

import asyncio
import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from herder.supervisor.children import describe_spawn_error
from herder.supervisor.protocol import LineProtocol, Message, socket_path
from herder.supervisor.records import Outcome, read_exit_record


class FakeTransport:
    """Just what LineProtocol uses of a transport."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


class Recorder(LineProtocol):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[Message] = []
        self.fake = FakeTransport()
        self.connection_made(self.fake)  # type: ignore[arg-type]

    def message_received(self, message: Message) -> None:
        self.received.append(message)


def test_lines_split_across_reads_are_joined() -> None:
    protocol = Recorder()
    protocol.data_received(b'{"op":"hello"}\n{"op":"wat')
    protocol.data_received(b'ch","id":1}\n\n{"op"')
    protocol.data_received(b':"bye"}\n')
    assert protocol.received == [{"op": "hello"}, {"op": "watch", "id": 1}, {"op": "bye"}]
    assert not protocol.fake.aborted


@pytest.mark.parametrize("line", [b"not json\n", b"[1, 2]\n", b'{"id": 1}\n', b'{"op": 3}\n'])
def test_garbage_drops_the_connection(line: bytes) -> None:
    protocol = Recorder()
    protocol.data_received(line + b'{"op":"hello"}\n')
    assert protocol.fake.aborted
    assert protocol.received == []


def test_messages_of_one_loop_turn_leave_in_one_write() -> None:
    async def main() -> list[bytes]:
        protocol = Recorder()
        protocol.send({"op": "started", "id": 1, "pid": 10})
        protocol.send({"op": "started", "id": 2, "pid": 11})
        assert protocol.fake.written == []
        await asyncio.sleep(0)
        protocol.send({"op": "exited", "id": 1, "exit_code": 0, "signal": None})
        await asyncio.sleep(0)
        return protocol.fake.written

    first, second = asyncio.run(main())
    assert [json.loads(line) for line in first.splitlines()] == [
        {"op": "started", "id": 1, "pid": 10},
        {"op": "started", "id": 2, "pid": 11},
    ]
    assert first.endswith(b"\n") and second.count(b"\n") == 1


def test_socket_path_is_absolute_and_short_enough(tmp_path: Path) -> None:
    assert socket_path(tmp_path) == str(tmp_path / "supervisor.sock")
    with pytest.raises(ValueError, match=r"bytes long; .* shorter path"):
        socket_path(tmp_path / ("x" * 100))


@pytest.mark.parametrize(
    ("returncode", "outcome"),
    [(0, Outcome(0, None)), (3, Outcome(3, None)), (-9, Outcome(137, 9)), (-15, Outcome(143, 15))],
)
def test_outcome_follows_the_shell_convention(returncode: int, outcome: Outcome) -> None:
    assert Outcome.from_returncode(returncode) == outcome


def _oserror(number: int, filename: str) -> OSError:
    return OSError(number, os.strerror(number), filename)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (_oserror(errno.ENOENT, "nosuch"), "no such program: 'nosuch' (No such file or directory)"),
        (_oserror(errno.ENOENT, "/work"), "cannot use working folder '/work' (No such file or"),
        (_oserror(errno.EACCES, "nosuch"), "cannot run 'nosuch' (Permission denied)"),
        (_oserror(errno.ENOEXEC, "nosuch"), "'nosuch' is not a program this system can run"),
    ],
)
def test_spawn_errors_say_what_to_fix(error: OSError, message: str) -> None:
    assert describe_spawn_error(error, ["nosuch", "-x"], "/work").startswith(message)


def test_exit_records(tmp_path: Path) -> None:
    assert read_exit_record(str(tmp_path)) is None
    assert read_exit_record(str(tmp_path / "missing")) is None
    record: dict[str, Any] = {"exit_code": 137, "signal": 9, "finished_at": "…"}
    (tmp_path / "exit.json").write_text(json.dumps(record))
    assert read_exit_record(str(tmp_path)) == Outcome(137, 9)
    (tmp_path / "exit.json").write_text("")  # what a crash before the flush can leave
    with pytest.raises(ValueError, match=r"cannot read exit\.json"):
        read_exit_record(str(tmp_path))
    (tmp_path / "exit.json").write_text('{"exit_code": "zero"}')
    with pytest.raises(ValueError, match="not an exit record"):
        read_exit_record(str(tmp_path))
