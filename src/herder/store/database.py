"""The connection to the store, and how async code reaches a synchronous SQLAlchemy Core.

Writes go through one writer thread that commits whatever has queued up as one transaction
(group commit); if one call fails, the batch is retried call by call so the others still land.
On SQLite this is the only writer there is, so writers never wait on each other's locks; on
PostgreSQL it bounds the connections a server holds. Reads run on a small pool of threads.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
Op = Callable[Concatenate[Connection, P], T]

_MAX_BATCH = 256


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine with herder's settings for ``url`` (SQLite in WAL mode, or
    PostgreSQL)."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=8,
        )
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return sa.create_engine(url, pool_size=8, max_overflow=4, pool_pre_ping=True)


def _sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # pysqlite's own transaction handling cannot do savepoints; we emit BEGIN ourselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # The writer takes the write lock up front so it never fails to upgrade a read lock.
    immediate = conn.get_execution_options().get("herder_writer", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


Resolve = Callable[[bool, Any], None]


class _Call:
    __slots__ = ("fn", "resolve")

    def __init__(self, fn: Callable[[Connection], Any], resolve: Resolve) -> None:
        self.fn = fn
        self.resolve = resolve


class Database:
    """The store's connection: ``await db.write(fn, ...)`` and ``await db.read(fn, ...)``.

    ``fn`` is a plain function of a ``Connection`` (the query modules are made of them), so the
    same queries serve the async engine, the tests and the command line.
    """

    def __init__(self, url: str, *, readers: int = 4) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="herder-read")
        self._writer = threading.Thread(target=self._write_loop, name="herder-write", daemon=True)
        self._writer.start()

    async def write(self, fn: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(conn, ...)`` in a write transaction (possibly shared with other calls)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def resolve(ok: bool, value: Any) -> None:
            loop.call_soon_threadsafe(_settle, future, ok, value)

        self._queue.put(_Call(lambda conn: fn(conn, *args, **kwargs), resolve))
        return await future

    def submit_write(self, fn: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue a write from a thread that has no event loop; the future has its outcome."""
        future: Future[T] = Future()
        self._queue.put(
            _Call(lambda conn: fn(conn, *args, **kwargs), lambda ok, v: _settle(future, ok, v))
        )
        return future

    def write_sync(self, fn: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return self.submit_write(fn, *args, **kwargs).result()

    async def read(self, fn: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(conn, ...)`` on a reader thread, outside the write transaction."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._readers, lambda: self.read_sync(fn, *args, **kwargs)
        )

    def read_sync(self, fn: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self.engine.connect() as conn:
            result = fn(conn, *args, **kwargs)
            conn.rollback()
            return result

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join(timeout=30)
        self._readers.shutdown(wait=True)
        self.engine.dispose()

    # The writer thread ---------------------------------------------------------------------

    def _write_loop(self) -> None:
        conn: Connection | None = None
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < _MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(item)
            if conn is None or conn.closed or conn.invalidated:
                try:
                    conn = self.engine.connect().execution_options(herder_writer=True)
                except Exception as exc:
                    log.warning("store unreachable: %s", exc, extra={"action": "store_write"})
                    for call in batch:
                        call.resolve(False, exc)
                    conn = None
                    continue
            self._commit(conn, batch)
        if conn is not None:
            conn.close()

    @staticmethod
    def _commit(conn: Connection, batch: list[_Call]) -> None:
        """Commit the batch as one transaction. If any call fails, the batch is rolled back and
        each call is run again alone, so one bad call costs only itself; nobody learns an
        outcome before its commit."""
        try:
            with conn.begin():
                results = [call.fn(conn) for call in batch]
        except Exception as exc:
            if len(batch) > 1:
                for call in batch:
                    Database._commit(conn, [call])
            else:
                batch[0].resolve(False, exc)
            return
        for call, value in zip(batch, results, strict=True):
            call.resolve(True, value)


def _settle(future: Future[Any] | asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # an awaiting task was cancelled; the write happened all the same
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
