"""The supervisor's pure parts: framing, the socket path rule, outcomes, messages, records."""

from __future__ import annotations

import asyncio
import errno
import json
import os
from pathlib import Path

import pytest

from herder.supervisor import records
from herder.supervisor.children import describe_spawn_error
from herder.supervisor.protocol import LineProtocol, Message, socket_path
from herder.supervisor.records import Outcome, load


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


def test_exit_journal_last_line_wins(tmp_path: Path) -> None:
    journal = tmp_path / "exits.jsonl"
    assert load(str(journal)) == {}
    lines = [
        {"id": 1, "exit_code": 0, "signal": None, "finished_at": "…"},
        {"id": 2, "exit_code": 137, "signal": 9, "finished_at": "…"},
        {"id": 1, "start": True},  # run id 1 started again: the old end is not its end
        {"id": 3, "exit_code": "zero"},  # not a record
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines) + '{"id": 4, "exit_co'  # torn
    journal.write_text(text)
    assert load(str(journal)) == {2: Outcome(137, 9)}


def test_exit_journal_compacts_old_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = tmp_path / "exits.jsonl"
    monkeypatch.setattr(records, "COMPACT_LINES", 2)
    old = {"id": 1, "exit_code": 0, "signal": None, "finished_at": "2000-01-01T00:00:00+00:00"}
    new = {"id": 2, "exit_code": 1, "signal": None, "finished_at": "2999-01-01T00:00:00+00:00"}
    journal.write_text("".join(json.dumps(r) + "\n" for r in (old, new, {"id": 3, "start": 1})))
    assert load(str(journal)) == {2: Outcome(1, None)}
    assert len(journal.read_text().splitlines()) == 1


def test_exit_journal_forgets_old_ends_in_memory_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    monkeypatch.setattr(records, "REMEMBERED", 2)

    async def main() -> None:
        journal = records.ExitJournal(str(tmp_path))
        try:
            for run_id in (1, 2, 3):
                journal.ended(run_id, Outcome(run_id, None), 0.0, lambda problem: None)
            assert list(journal.ends) == [2, 3]  # bounded memory
            assert journal.find(1) == Outcome(1, None)  # still answered, from the file
            assert journal.find(4) is None
        finally:
            journal.close()

    asyncio.run(main())
