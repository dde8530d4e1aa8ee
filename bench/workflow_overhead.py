"""Workflow overhead: what herder adds to each step beyond the step's own process.

    python bench/workflow_overhead.py [--chain 100] [--fanout 1000] [--database-url URL]

Starts a real ``herder server`` (SQLite in a temporary folder unless ``--database-url``) and
runs two workflows of ``true`` steps through the API:

* a chain of ``--chain`` steps, each needing the one before: every step waits for the
  previous one's end, its decision, its dispatch and its process start. The overhead per
  step is (wall time - the sum of the steps' own process times) / steps, where a step's own
  time is its run's ``finished_at - started_at`` (the process, as the supervisor saw it);
* a fan-out of one foreach step over ``--fanout`` items, no parallelism limit. Processes
  overlap here, so the figure is wall time / items (what one more item costs), beside the
  rate of bare ``subprocess.Popen(["true"]).wait()`` on this machine for scale.

Each workflow runs ``--repeat`` times; the best (lowest) figure is printed with the median.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.servers import Server, wait_for


def bare_process_ms(count: int = 300) -> float:
    true = shutil.which("true") or "/bin/true"
    start = time.perf_counter()
    for _ in range(count):
        subprocess.Popen([true]).wait()
    return (time.perf_counter() - start) / count * 1000


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run_once(server: Server, ref: str) -> tuple[float, list[dict[str, Any]], str]:
    client = server.client
    start = time.perf_counter()
    response = client.post(f"/api/v1/workflows/{ref}/runs", json={})
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]

    def ended() -> str | None:
        # The list, not the run's own page (which reads every step): the poll must not cost
        # the server what it measures.
        found = client.get("/api/v1/workflow-runs", params={"workflow": ref, "limit": 1})
        item = found.json()["items"][0]
        status: str = item["status"]
        return status if item["id"] == run_id and status in ("SUCCESS", "FAILED",
                                                            "ABORTED") else None

    status = wait_for(ended, timeout=600, interval=0.01, what=f"workflow run {run_id}")
    wall = time.perf_counter() - start
    steps: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"workflow_run": run_id, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/runs", params=params).json()
        steps.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    return wall, steps, status


def gaps(steps: list[dict[str, Any]]) -> str:
    """Where a chain's time goes between one step's end and the next one's start."""
    ordered = sorted(steps, key=lambda s: s["id"])
    decide = [(_time(b["created_at"]) - _time(a["finished_at"])).total_seconds()
              for a, b in itertools.pairwise(ordered)]
    start = [(_time(s["started_at"]) - _time(s["created_at"])).total_seconds() for s in ordered]
    own = [(_time(s["finished_at"]) - _time(s["started_at"])).total_seconds() for s in ordered]
    return (f"end -> next created {statistics.median(decide) * 1000:.2f} ms, created -> "
            f"started {statistics.median(start) * 1000:.2f} ms, process as seen "
            f"{statistics.median(own) * 1000:.2f} ms (medians)")


def own_time(steps: list[dict[str, Any]]) -> float:
    return sum((_time(s["finished_at"]) - _time(s["started_at"])).total_seconds()
               for s in steps if s["started_at"] and s["finished_at"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chain", type=int, default=100)
    parser.add_argument("--fanout", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    bare = bare_process_ms()
    folder = Path(tempfile.mkdtemp(prefix="hwf-", dir="/tmp"))
    server = Server(folder / "data", database_url=args.database_url).start()
    try:
        chain = [{"name": "s0", "command": ["true"]}] + [
            {"name": f"s{i}", "command": ["true"], "needs": [f"s{i - 1}"]}
            for i in range(1, args.chain)
        ]
        fan = [{"name": "fan", "command": ["true"],
                "foreach": list(range(args.fanout))}]
        for name, steps in (("bench-chain", chain), ("bench-fanout", fan)):
            response = server.client.put(f"/api/v1/workflows/{name}",
                                         json={"name": name, "steps": steps})
            assert response.status_code in (200, 201), response.text

        print(f"store: {args.database_url or 'sqlite'}; bare fork+exec of true: {bare:.2f} ms")
        chain_overheads, chain_walls = [], []
        for _ in range(args.repeat):
            wall, runs, status = run_once(server, "bench-chain")
            assert status == "SUCCESS" and len(runs) == args.chain, (status, len(runs))
            chain_walls.append(wall)
            chain_overheads.append((wall - own_time(runs)) / args.chain * 1000)
            print(f"  {gaps(runs)}")
        print(f"chain of {args.chain}: wall {min(chain_walls):.2f} s; overhead per step "
              f"{min(chain_overheads):.2f} ms (median {statistics.median(chain_overheads):.2f}); "
              f"goal < 2 ms")
        fan_per_item, fan_walls = [], []
        for _ in range(args.repeat):
            wall, runs, status = run_once(server, "bench-fanout")
            assert status == "SUCCESS" and len(runs) == args.fanout, (status, len(runs))
            fan_walls.append(wall)
            fan_per_item.append(wall / args.fanout * 1000)
        print(f"fan-out of {args.fanout}: wall {min(fan_walls):.2f} s; per item "
              f"{min(fan_per_item):.2f} ms (median {statistics.median(fan_per_item):.2f}), "
              f"against {bare:.2f} ms for a bare process; goal < 2 ms")
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
