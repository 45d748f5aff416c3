"""aiosqlite connections that go to their thread once per statement, not four times.

aiosqlite runs each connection in a thread of its own, and SQLAlchemy's adapter asks that
thread separately to create a cursor, to execute, to fetch the rows and to close the cursor.
Every trip is a queue hand-off, a wake-up of the other thread and a wake-up of the event loop
to deliver the result: on a small virtual machine that costs more CPU than the SQLite work
itself (the hub stores a segment with about twenty statements, so its database share of the
CPU was mostly trips). Here the cursor is created lazily in the thread, ``execute`` brings
back the first rows with it, and a closed cursor is closed in the thread at the start of the
connection's next trip: one trip per statement. Large results are still read in bounded batches (``PREFETCH`` rows per trip),
so streaming a big table does not load it at once.

Used through ``create_async_engine(..., async_creator=...)`` (see :func:`async_creator`), so
SQLAlchemy, its aiosqlite dialect and aiosqlite itself are unchanged.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterable
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url

#: Rows brought back with ``execute`` (and per later trip): enough for every row-at-a-time
#: lookup in one trip, bounded for big reads.
PREFETCH = 500


class OneTripCursor(aiosqlite.Cursor):
    """An aiosqlite cursor whose ``execute`` also fetches the first ``PREFETCH`` rows."""

    def __init__(self, conn: aiosqlite.Connection) -> None:  # no trip to create it
        self.iter_chunk_size = conn._iter_chunk_size
        self._conn = conn
        self._cursor: sqlite3.Cursor | None = None  # type: ignore[assignment]
        self._rows: deque[Any] = deque()
        self._exhausted = True

    def _sqlite_cursor(self) -> sqlite3.Cursor:  # in the connection's thread
        self._conn._close_cursors()  # type: ignore[attr-defined]
        if self._cursor is None:
            self._cursor = self._conn._conn.cursor()
        return self._cursor

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> OneTripCursor:
        params = () if parameters is None else parameters

        def run() -> tuple[list[Any], bool]:
            cur = self._sqlite_cursor()
            cur.execute(sql, params)  # type: ignore[arg-type]
            if cur.description is None:
                return [], True
            rows = cur.fetchmany(PREFETCH)
            return rows, len(rows) < PREFETCH

        rows, self._exhausted = await self._conn._execute(run)
        self._rows = deque(rows)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> OneTripCursor:
        def run() -> None:
            self._sqlite_cursor().executemany(sql, parameters)  # type: ignore[arg-type]

        self._rows, self._exhausted = deque(), True
        await self._conn._execute(run)
        return self

    async def executescript(self, sql_script: str) -> OneTripCursor:
        self._rows, self._exhausted = deque(), True
        await self._conn._execute(lambda: self._sqlite_cursor().executescript(sql_script))
        return self

    async def _more(self, size: int | None) -> None:
        cur = self._cursor
        if self._exhausted or cur is None:
            return
        n = PREFETCH if size is None else max(size, PREFETCH)
        rows = await self._conn._execute(cur.fetchall if size is None else cur.fetchmany, *(
            () if size is None else (n,)))
        self._rows.extend(rows)
        self._exhausted = size is None or len(rows) < n

    async def fetchone(self) -> Any:
        if not self._rows:
            await self._more(1)
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        size = size or self.arraysize
        if len(self._rows) < size:
            await self._more(size - len(self._rows))
        return [self._rows.popleft() for _ in range(min(size, len(self._rows)))]

    async def fetchall(self) -> list[Any]:
        await self._more(None)
        rows, self._rows = list(self._rows), deque()
        return rows

    async def close(self) -> None:
        """No trip of its own: the cursor is closed in the connection's thread at the start of
        the connection's next statement (or with the connection)."""
        cur, self._cursor = self._cursor, None
        self._rows, self._exhausted = deque(), True
        if cur is not None:
            self._conn._closed_cursors.append(cur)  # type: ignore[attr-defined]

    @property
    def rowcount(self) -> int:
        return -1 if self._cursor is None else self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return None if self._cursor is None else self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return 1 if self._cursor is None else self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        if self._cursor is not None:
            self._cursor.arraysize = value

    @property
    def description(self) -> Any:
        return None if self._cursor is None else self._cursor.description


class _Ready:
    """What ``cursor()`` returns: awaitable and an async context manager, like aiosqlite's."""

    def __init__(self, cursor: OneTripCursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, OneTripCursor]:
        if False:  # pragma: no cover - makes this a generator
            yield
        return self._cursor

    async def __aenter__(self) -> OneTripCursor:
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        await self._cursor.close()


class OneTripConnection(aiosqlite.Connection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closed_cursors: list[sqlite3.Cursor] = []  # closed on the next trip

    def cursor(self) -> _Ready:  # type: ignore[override]
        return _Ready(OneTripCursor(self))

    def _close_cursors(self) -> None:  # in the connection's thread
        while self._closed_cursors:
            self._closed_cursors.pop().close()

    async def commit(self) -> None:
        def run() -> None:
            self._close_cursors()
            self._conn.commit()

        await self._execute(run)

    async def rollback(self) -> None:
        def run() -> None:
            self._close_cursors()
            self._conn.rollback()

        await self._execute(run)


def async_creator(url: str) -> Callable[[], Awaitable[OneTripConnection]]:
    """For ``create_async_engine(url, async_creator=async_creator(url))``: connections opened
    with the same arguments SQLAlchemy's aiosqlite dialect would use for ``url``."""
    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))

    async def connect() -> OneTripConnection:
        conn = OneTripConnection(partial(sqlite3.connect, *args, **kwargs), 64)
        conn._thread.daemon = True  # as SQLAlchemy's dialect does
        return await conn

    return connect
