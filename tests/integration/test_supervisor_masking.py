"""The supervisor masks a run's secrets before its logs reach the disk; a supervisor that cannot
(left running by an older herder) is never sent a run with secrets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from herder.masking import forms
from herder.model.errors import BackendError
from herder.supervisor.client import SupervisorClient
from herder.supervisor.protocol import socket_path
from tests.integration.test_local_backend import (  # the same folders and supervisors
    arun,
    context,
    data_dir,
    opened,
    run_to_end,
)

__all__ = ["data_dir"]  # a fixture, used by name
VALUE = "s3cret-value-42"
SCRIPT = (f'printf "out=%s" "{VALUE[:5]}"; sleep 0.1; printf "%s\\n" "{VALUE[5:]}"; '
          f'echo "err={VALUE}" >&2; echo "quoted=\'{VALUE}\'"')


def test_logs_are_masked_as_they_are_written(data_dir: Path) -> None:
    async def scenario() -> None:
        async with opened(data_dir) as backend:
            run = context(data_dir, 1, ["sh", "-c", SCRIPT], masks=tuple(forms([VALUE])))
            ended = await run_to_end(backend, run)
            assert ended.exit_code == 0
            logs = {p.name: p.read_text() for p in run.log_dir.iterdir()}
            assert logs["stdout.log"] == "out=***\nquoted='***'\n"
            assert logs["stderr.log"] == "err=***\n"
            assert sorted(logs["output.log"].splitlines()) == [
                "err=***", "out=***", "quoted='***'"]

    arun(scenario())


def test_a_failed_spawn_names_no_secret(data_dir: Path) -> None:
    async def scenario() -> None:
        async with opened(data_dir) as backend:
            run = context(data_dir, 2, [f"/no/such/{VALUE}"], masks=tuple(forms([VALUE])))
            with pytest.raises(BackendError) as caught:
                await backend.start(run)
            assert VALUE not in caught.value.message and "***" in caught.value.message

    arun(scenario())


def test_a_supervisor_that_cannot_mask_is_sent_no_secrets(data_dir: Path) -> None:
    """An old supervisor says hello without ``features``: runs without secrets still go to it
    (here it never answers them), runs with secrets are refused before anything is sent."""

    data_dir.mkdir(parents=True, exist_ok=True)

    async def scenario() -> None:
        received: list[dict[str, object]] = []

        async def old_supervisor(reader: asyncio.StreamReader,
                                 writer: asyncio.StreamWriter) -> None:
            try:
                while line := await reader.readline():
                    message = json.loads(line)
                    received.append(message)
                    if message["op"] == "hello":
                        writer.write(b'{"op":"hello","pid":1,"live":[]}\n')
                        await writer.drain()
            finally:
                writer.close()
                await writer.wait_closed()

        server = await asyncio.start_unix_server(old_supervisor, socket_path(data_dir))
        client = SupervisorClient(data_dir, start_if_missing=False)
        try:
            await client.open()
            with pytest.raises(BackendError, match="older herder and cannot mask secrets"):
                await client.spawn(3, argv=["true"], env={}, cwd="/", log_dir="/tmp",
                                   mask=[VALUE])
            assert [m["op"] for m in received] == ["hello"]
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    arun(scenario())
