"""Locks under load: runs contending for three locks with overlapping sets, through a kill -9.

    python bench/locks.py [--runs 200] [--kill-after 60] [--command 'sleep 0.05']
                          [--database-url URL]

Starts a real ``herder server`` (SQLite in a temporary folder unless ``--database-url``, then
a throwaway database beside the one named), creates four jobs locking {a}, {a, b}, {b, c} and
{c, a} (a and c have 2 slots, b has 1), submits ``--runs`` runs round-robin over HTTP, kills
the server with SIGKILL once ``--kill-after`` runs have ended (0: never) and starts it again,
and waits until every run has ended. A sampler reads ``GET /api/v1/locks`` every 10 ms
meanwhile. It prints the runs and how they ended, the elapsed time, the most holders seen per
lock against its slots, and how many claims are left once all ended (the goal: 0).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.lock_load import contend
from tests.servers import Server

import harness


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--kill-after", type=int, default=60)
    parser.add_argument("--command", default="sleep 0.05")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="hb-", dir="/tmp"))
    with harness.throwaway_database(args.database_url) as url:
        server = Server(folder / "data", database_url=url,
                        env={"HERDER_LOG_LEVEL": "warning"}).start()
        try:
            figures = contend(server, runs=args.runs, command=args.command,
                              kill_after=args.kill_after or None, deadline=600)
        finally:
            server.close()
            harness.stop_supervisors(folder / "data")
            shutil.rmtree(folder, ignore_errors=True)
    print(f"store: {'PostgreSQL' if args.database_url else 'SQLite'}")
    for line in figures.lines():
        print(line)


if __name__ == "__main__":
    main()
