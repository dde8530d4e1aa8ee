"""Many runs contending for a few locks with overlapping sets, against a real server, with an
optional kill -9 and restart half-way: shared by the acceptance test and ``bench/locks.py``."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from tests.servers import Server

NAMESPACE = "load"
SLOTS = {"a": 2, "b": 1, "c": 2}
# Overlapping sets, so that a run can hold one lock another needs beside a third.
JOBS = {"only-a": ["a"], "a-b": ["a", "b"], "b-c": ["b", "c"], "c-a": ["c", "a"]}
ACTIVE = "READY,WAITING,JOB_DEPLOYED,PENDING,RUNNING,IN_DOUBT"
ENDED = "TIMEOUT,PROC_ERROR,APP_ERROR,ABORTED,SKIPPED,SUCCESS"


@dataclass(slots=True)
class Figures:
    """What a contention run measured."""

    runs: int = 0
    elapsed: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    max_holders: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    overbooked: list[str] = field(default_factory=list)  # "lock: n holders > slots", ever seen
    left: dict[str, int] = field(default_factory=dict)  # holders + waiters once all ended
    restarted: bool = False
    # From the end of one holder of the mutex b to the start of the next: the hand-over.
    handover_ms: list[float] = field(default_factory=list)

    def lines(self) -> list[str]:
        per_lock = ", ".join(
            f"{name}: {self.max_holders.get(name, 0)} of {slots}" for name, slots in SLOTS.items()
        )
        return [
            f"runs {self.runs}, ended {sum(self.statuses.values())} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.statuses.items()))})",
            f"elapsed {self.elapsed:.1f} s ({self.runs / self.elapsed:.1f} runs/s)"
            + (", with a kill -9 and restart of the server" if self.restarted else ""),
            f"max holders seen per lock ({self.samples} samples): {per_lock}",
            f"more holders than slots: {', '.join(self.overbooked) or 'never'}",
            f"locks held or waited for after the end: {sum(self.left.values())}",
            f"mutex b handed over (one run's end to the next one's start): {_spread(self)}",
        ]


def _spread(figures: Figures) -> str:
    gaps = sorted(figures.handover_ms)
    if not gaps:
        return "-"
    at = [gaps[min(len(gaps) - 1, int(len(gaps) * q))] for q in (0.5, 0.9, 0.99)]
    return "p50 {:.0f} ms, p90 {:.0f} ms, p99 {:.0f} ms".format(*at)


def _handovers(ended: list[dict[str, Any]]) -> list[float]:
    """Gaps between consecutive runs of the jobs needing mutex b (restart gaps included)."""
    using = [r for r in ended if "b" in JOBS[r["job"].split("/")[1]] and r["started_at"]]
    using.sort(key=lambda r: r["started_at"])
    gaps = []
    for before, after in itertools.pairwise(using):
        end = datetime.fromisoformat(before["finished_at"])
        gaps.append((datetime.fromisoformat(after["started_at"]) - end).total_seconds() * 1000)
    return gaps


def _lock_spec(name: str) -> Any:
    return name if SLOTS[name] == 1 else {"name": name, "slots": SLOTS[name]}


def _sample(server: Server, figures: Figures, stop: threading.Event) -> None:
    with httpx.Client(base_url=server.url, timeout=5) as client:
        while not stop.is_set():
            try:
                page = client.get("/api/v1/locks", params={"namespace": NAMESPACE}).json()
            except (httpx.TransportError, ValueError):
                time.sleep(0.05)  # the server is being restarted
                continue
            figures.samples += 1
            for lock in page["items"]:
                held = len(lock["holders"])
                name = lock["name"]
                figures.max_holders[name] = max(figures.max_holders.get(name, 0), held)
                if held > lock["slots"]:
                    figures.overbooked.append(f"{name}: {held} > {lock['slots']}")
            time.sleep(0.01)


def _count(server: Server, statuses: str) -> list[dict[str, Any]]:
    """The runs of the load's namespace in ``statuses`` (none while the server is down)."""
    params: dict[str, Any] = {"namespace": NAMESPACE, "status": statuses, "limit": 1000}
    items: list[dict[str, Any]] = []
    while True:
        try:
            page = server.client.get("/api/v1/runs", params=params)
        except httpx.TransportError:
            return []
        if page.status_code != 200:
            return []
        body = page.json()
        items.extend(body["items"])
        if not body.get("next_cursor"):
            return items
        params["cursor"] = body["next_cursor"]


def contend(
    server: Server, *, runs: int = 200, command: str = "sleep 0.05", kill_after: int | None = None,
    deadline: float = 300.0, also: Server | None = None,
) -> Figures:
    """Submit ``runs`` runs round-robin over ``JOBS`` (and over ``server`` and ``also``, a
    second server on the same PostgreSQL); with ``kill_after``, kill -9 ``server`` once that
    many have ended and start it again. Returns once every run has ended (or raises
    AssertionError at ``deadline`` seconds: a deadlock or a lost run)."""
    figures = Figures(runs=runs)
    servers = [server] if also is None else [server, also]
    watcher = servers[-1]  # the one that is not killed, if there are two
    for job, names in JOBS.items():
        response = server.client.put(f"/api/v1/jobs/{NAMESPACE}/{job}", json={
            "name": job, "namespace": NAMESPACE, "command": command,
            "locks": [_lock_spec(n) for n in names],
        })
        assert response.status_code in (200, 201), response.text
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(watcher, figures, stop), daemon=True)
    sampler.start()
    start = time.monotonic()
    try:
        names = list(JOBS)
        for i in range(runs):
            servers[i % len(servers)].run(f"{NAMESPACE}/{names[i % len(names)]}")
        while True:
            ended = _count(watcher, ENDED)
            if len(ended) >= runs:
                break
            if kill_after is not None and not figures.restarted and len(ended) >= kill_after:
                server.kill(signal.SIGKILL)
                server.start()
                figures.restarted = True
            if time.monotonic() - start > deadline:
                raise AssertionError(
                    f"only {len(ended)} of {runs} runs ended within {deadline:g} s; still "
                    f"active: {len(_count(watcher, ACTIVE))}"
                )
            time.sleep(0.05)
        figures.elapsed = time.monotonic() - start
    finally:
        stop.set()
        sampler.join(timeout=10)
    figures.statuses = Counter(run["status"] for run in ended)
    figures.handover_ms = _handovers(ended)
    final = watcher.client.get("/api/v1/locks", params={"namespace": NAMESPACE}).json()
    figures.left = {
        lock["name"]: len(lock["holders"]) + len(lock["waiters"]) for lock in final["items"]
    }
    return figures
