"""One database API for the hub: SQLAlchemy 2 async, aiosqlite by default, asyncpg for
PostgreSQL. Schema is managed only by Alembic migrations, applied by :func:`migrate`."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import weakref
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    AsyncSessionTransaction,
    async_sessionmaker,
    create_async_engine,
)

from .sqlite_async import async_creator


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{Path(path).resolve()}"


def normalize_url(url: str) -> str:
    """Accept plain ``sqlite:///`` and ``postgresql://`` URLs and pick the async drivers."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, cache_kib: int | None = None) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    if cache_kib is not None:
        cur.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    cur.close()


#: Engine options for the long-running ingest daemon on SQLite. SQLite keeps a page cache per
#: connection (2 MiB by default) outside Python's heap, and each connection of the pool fills
#: its own as the database grows: a soak showed the hub's RSS rising ~0.6 MB/min for that
#: reason alone, flat with these bounds. The file stays in the kernel's page cache anyway.
DAEMON_SQLITE = {"sqlite_cache_kib": 512, "pool_size": 4, "max_overflow": 4}


def daemon_engine_options(url: str) -> dict[str, Any]:
    """Options for :func:`make_engine` in a long-running daemon (bounded memory on SQLite)."""
    return dict(DAEMON_SQLITE) if normalize_url(url).startswith("sqlite") else {}


def make_engine(url: str, *, sqlite_cache_kib: int | None = None, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url``. On SQLite: WAL, full fsync, foreign keys, a busy timeout,
    one thread trip per statement (:mod:`.sqlite_async`) and, with ``sqlite_cache_kib``, a
    page cache of at most that many KiB per connection."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite+aiosqlite") and "async_creator" not in kwargs:
        kwargs["async_creator"] = async_creator(url)  # one thread trip per statement
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect",
                     functools.partial(_sqlite_pragmas, cache_kib=sqlite_cache_kib))
    return engine


#: Set (with :func:`background_writes`) for write transactions that may wait for all others.
_background: contextvars.ContextVar[bool] = contextvars.ContextVar("lerec_background_writes",
                                                                   default=False)


@contextlib.contextmanager
def background_writes() -> Iterator[None]:
    """Write transactions begun in this context queue behind every other waiting writer of
    the process (the oversight checks behind the ingest, whose receipts a recorder waits
    for)."""
    token = _background.set(True)
    try:
        yield
    finally:
        _background.reset(token)


class _GateState:
    def __init__(self) -> None:
        self.held = False
        self.waiting: tuple[collections.deque[asyncio.Future[None]], ...] = (
            collections.deque(), collections.deque())  # (foreground, background)


class WriteGate:
    """One ``async with session.begin()`` transaction at a time per process and event loop.

    SQLite has a single writer. Without the gate, concurrent transactions of one process
    (twenty recorders finishing segments at once, the oversight hooks behind them) wait for
    the file lock in SQLite's busy handler, which *sleeps* in steps of up to 100 ms and so
    turns a contended millisecond commit into tenths of seconds of receipt latency. Queued on
    the gate instead, the next writer starts the moment the previous one commits. FIFO, except
    that writers begun under :func:`background_writes` go after every other waiting writer;
    re-entrant per task (a transaction that opens another session does not deadlock); and only
    a performance measure: other processes are still serialised by SQLite itself
    (``busy_timeout``)."""

    def __init__(self) -> None:
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _GateState] = (
            weakref.WeakKeyDictionary())
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    def _state(self) -> _GateState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _GateState()
        return state

    async def acquire(self) -> None:
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            self._depth += 1
            return
        state = self._state()
        if state.held or any(state.waiting):
            turn = asyncio.get_running_loop().create_future()
            queue = state.waiting[1 if _background.get() else 0]
            queue.append(turn)
            try:
                await turn  # handed over by release(): the gate is ours when this returns
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._hand_over(state)  # it was handed to us as we were cancelled
                elif turn in queue:
                    queue.remove(turn)
                raise
        else:
            state.held = True
        self._owner, self._depth = task, 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth:
            return
        self._owner = None
        self._hand_over(self._state())

    @staticmethod
    def _hand_over(state: _GateState) -> None:
        for queue in state.waiting:
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)  # stays held: passed on to that waiter
                    return
        state.held = False


class _GatedBegin:
    """``AsyncSessionTransaction`` behind a :class:`WriteGate` (``async with`` form; a bare
    ``await session.begin()`` is passed through ungated)."""

    def __init__(self, gate: WriteGate, inner: AsyncSessionTransaction) -> None:
        self.gate, self.inner = gate, inner

    async def __aenter__(self) -> AsyncSessionTransaction:
        await self.gate.acquire()
        try:
            return await self.inner.__aenter__()
        except BaseException:
            self.gate.release()
            raise

    async def __aexit__(self, t: type[BaseException] | None, v: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self.inner.__aexit__(t, v, tb)
        finally:
            self.gate.release()

    def __await__(self) -> Any:
        return self.inner.__await__()


class GatedSession(AsyncSession):
    """An :class:`AsyncSession` whose ``begin()`` blocks queue on the engine's
    :class:`WriteGate`."""

    gate: WriteGate

    def begin(self) -> Any:
        return _GatedBegin(self.gate, super().begin())


_gates: weakref.WeakKeyDictionary[Any, type[GatedSession]] = weakref.WeakKeyDictionary()


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    """Sessions of ``engine``; on SQLite, write transactions of this process share one
    :class:`WriteGate` (all session factories of the same engine share it)."""
    if engine.dialect.name != "sqlite":
        return async_sessionmaker(engine, expire_on_commit=False)
    cls = _gates.get(engine.sync_engine)
    if cls is None:
        cls = _gates[engine.sync_engine] = type(
            "GatedSession", (GatedSession,), {"gate": WriteGate()})
    return async_sessionmaker(engine, class_=cls, expire_on_commit=False)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(resources.files("lerec.hub.db").joinpath("migrations"))
    )
    return cfg


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def migrate(engine: AsyncEngine, revision: str = "heads") -> None:
    """Bring the schema to ``revision`` (idempotent). Each domain (ingest, fleet, audit, cases,
    ...) is its own Alembic branch off ``0001``, so the default target is every head."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several hub workers may start at once: one migrates, the others wait.
            await conn.execute(text("SELECT pg_advisory_xact_lock(741852)"))
        await conn.run_sync(_upgrade, revision)
