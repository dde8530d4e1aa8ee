"""``python -m herder.supervisor [--detach] DATA_DIR``: be the supervisor of a data folder.

``--detach`` is how herder starts it: the command forks, the child becomes the supervisor, and
the command itself exits once the child listens (0), lost the start race to another supervisor
(0), or failed (non-zero; the reason is in its stderr). The caller can wait for that exit instead
of polling the socket, and the supervisor is nobody's child: killing the server leaves no zombie
to reap and no ``Popen`` object to outlive.
"""

from __future__ import annotations

import os
import sys

from herder.supervisor.server import run

USAGE = "usage: python -m herder.supervisor [--detach] DATA_DIR\n"


def _detached(data_dir: str) -> int:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the supervisor
        os.close(read_end)
        os.chdir("/")  # do not keep the caller's folder busy for hours

        def ready() -> None:
            os.write(write_end, b"ready")
            os.close(write_end)

        os._exit(run(data_dir, ready))
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        said = pipe.read()
    if said == b"ready":
        return 0
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def main(argv: list[str]) -> int:
    args = [arg for arg in argv if arg != "--detach"]
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write(USAGE)
        return 2
    data_dir = os.path.abspath(args[0])
    if len(args) != len(argv):
        return _detached(data_dir)
    return run(data_dir, lambda: None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
