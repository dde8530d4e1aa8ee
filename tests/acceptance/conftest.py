from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Server


def short_dir() -> Path:
    # The supervisor's Unix socket lives in the data folder: keep its path short.
    return Path(tempfile.mkdtemp(prefix="hd-", dir="/tmp"))


@pytest.fixture
def server() -> Iterator[Server]:
    """A fresh server on SQLite for one test."""
    s = Server(short_dir() / "data").start()
    yield s
    s.close()


@pytest.fixture(scope="module")
def shared_server() -> Iterator[Server]:
    """One server for a module of tests that do not disturb each other."""
    s = Server(short_dir() / "data").start()
    yield s
    s.close()
