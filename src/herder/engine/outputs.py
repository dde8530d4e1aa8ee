"""Where a run writes its outputs, and reading them back safely once it has ended.

``$HERDER_OUTPUT`` is ``<work dir>/.herder-outputs``. It is in the run's working folder, not
in its log folder, because the working folder always exists when the run starts (the backend
makes it; the supervisor makes the log folder only on the first byte of output), is the run's
own to write in, and is where the run executes for every backend, so
``echo rows=42 >> "$HERDER_OUTPUT"`` works without herder creating anything. The file is not
created ahead: a run that publishes nothing costs no file (file creation is the dearest thing
on a busy disk), and a missing file means no outputs. The leading dot keeps it out of ``*``.

The run could make that name (or its folder) a symbolic link to a file it should not publish,
or a FIFO that would block a reader: so the folder and the file are opened without following
symbolic links, without blocking, the file must be a regular file, and at most
``MAX_BYTES + 1`` bytes are read. This is blocking I/O: call it on a thread.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

from herder.masking import Masker
from herder.model import outputs
from herder.model.outputs import Outputs

FILE_NAME = ".herder-outputs"


def work_dir(data_dir: Path, run_id: int) -> Path:
    """The run's working folder in the data folder of the server that started it."""
    return data_dir / "work" / str(int(run_id))


def path(data_dir: Path, run_id: int) -> Path:
    """The file named in the run's ``$HERDER_OUTPUT``."""
    return work_dir(data_dir, run_id) / FILE_NAME


def read(data_dir: Path, run_id: int, mask: Masker | None = None) -> Outputs:
    """The outputs the run left in its file: none when there is no file; ``{}`` with the
    reason when the file is not one herder may read, or breaks the rules. Never raises.

    With ``mask`` (the run's secrets), the values are masked in the file's bytes before they
    are parsed, and again in the parsed strings (a JSON file may spell a value with escapes)."""
    try:
        data = _read_limited(work_dir(data_dir, run_id), FILE_NAME, outputs.MAX_BYTES + 1)
    except FileNotFoundError:
        return Outputs()
    except _Refused as exc:
        return Outputs(error=f"outputs: {FILE_NAME} {exc}; not read")
    except OSError as exc:
        return Outputs(error=f"outputs: cannot read {FILE_NAME} ({exc.strerror or exc})")
    if not mask:
        return outputs.load(data)
    found = outputs.load(mask.bytes(data))
    return Outputs(
        values=_masked(found.values, mask),
        error=None if found.error is None else mask.text(found.error),
    )


def _masked(value: Any, mask: Masker) -> Any:
    if isinstance(value, str):
        return mask.text(value)
    if isinstance(value, list):
        return [_masked(v, mask) for v in value]
    if isinstance(value, dict):
        return {mask.text(k): _masked(v, mask) for k, v in value.items()}
    return value


class _Refused(Exception):
    pass


_NO_FOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def _read_limited(folder: Path, name: str, limit: int) -> bytes:
    try:
        dir_fd = os.open(folder, _NO_FOLLOW | os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _Refused("is in a working folder replaced by a symbolic link") from None
        raise
    try:
        try:
            fd = os.open(name, _NO_FOLLOW, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _Refused("is a symbolic link") from None
            raise
    finally:
        os.close(dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Refused("is not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = os.read(fd, limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
