"""Locks under load: 200 runs contending for three locks with overlapping sets, with a kill -9
of the server and a restart half-way, all end SUCCESS, never with more holders than slots, and
leave no lock held."""

from __future__ import annotations

import sqlite3

import pytest

from tests.acceptance.conftest import short_dir
from tests.lock_load import SLOTS, contend
from tests.servers import Server

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]


def test_200_runs_contending_survive_a_kill_9(server: Server) -> None:
    figures = contend(server, runs=200, kill_after=60, deadline=240)
    print("\n".join(figures.lines()))
    assert figures.restarted
    assert figures.statuses == {"SUCCESS": 200}
    assert figures.overbooked == []
    assert figures.samples > 10
    assert max(figures.max_holders.values()) >= 1
    assert all(held <= SLOTS[name] for name, held in figures.max_holders.items())
    assert figures.left == {"a": 0, "b": 0, "c": 0}
    with sqlite3.connect(server.data_dir / "herder.db") as conn:  # and in the store itself
        assert conn.execute("SELECT count(*) FROM lock_claims").fetchone() == (0,)


@pytest.mark.postgres
def test_two_servers_on_postgres_share_the_locks(postgres_url: str) -> None:
    """Both servers take runs and end them, one is killed -9 and restarted: the slots hold
    across servers."""
    base = short_dir()
    a = Server(base / "a", database_url=postgres_url).start()
    b = Server(base / "b", database_url=postgres_url).start()
    try:
        figures = contend(a, also=b, runs=200, kill_after=60, deadline=240)
    finally:
        a.close()
        b.close()
    print("\n".join(figures.lines()))
    assert figures.statuses == {"SUCCESS": 200}
    assert figures.overbooked == []
    assert all(held <= SLOTS[name] for name, held in figures.max_holders.items())
    assert figures.left == {"a": 0, "b": 0, "c": 0}
    assert all((base / name / "exits.jsonl").exists() for name in ("a", "b"))  # both ran some
