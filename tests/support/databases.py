"""Databases for tests: a SQLite file, or a fresh PostgreSQL database per test.

Set LEREC_TEST_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres) to run the
suite on PostgreSQL: the database named in that URL is the maintenance database on which test
databases are created and dropped. Every database made here has a unique name and is dropped
when its test (or session) is done, and, whatever is left, at exit.

- :func:`database_url` / :func:`drop_databases`: the database of a hub living in a directory
  (the same one again for the same directory, so a restarted hub finds its data).
- :class:`Databases`: a migrated (and seeded) template made once, and a copy of it per test
  (the SQLite file copied, or ``CREATE DATABASE ... TEMPLATE``); :func:`databases` and
  :func:`database` are the bodies of the session and per-test fixtures.
- :class:`FreshPostgres`: an empty PostgreSQL database whatever the run (LEREC_TEST_DATABASE_URL,
  else the local server), for tests that need PostgreSQL itself.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from lerec.hub.db import make_engine, migrate, sqlite_url

DATABASE_ENV = "LEREC_TEST_DATABASE_URL"
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"

Seed = Callable[[str], Awaitable[None]]

_lock = threading.RLock()
_alive: dict[str, str] = {}  # database name -> maintenance URL of its server
_by_root: dict[Path, str] = {}  # hub directory -> its database


def configured_server() -> str | None:
    """LEREC_TEST_DATABASE_URL as a plain postgresql:// URL; None: the run is on SQLite."""
    url = os.environ.get(DATABASE_ENV, "").strip()
    return url.replace("postgresql+asyncpg://", "postgresql://") if url else None


def server() -> str:
    """The PostgreSQL server of tests that need one: LEREC_TEST_DATABASE_URL, else the local
    default."""
    return configured_server() or LOCAL_SERVER


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion on a loop in a thread of its own (callers may be inside a
    running event loop)."""
    result: list[Any] = []
    error: list[BaseException] = []

    def go() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            error.append(exc)

    t = threading.Thread(target=go)
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


def execute(*sql: str, server_url: str | None = None) -> None:
    """Run statements on the maintenance database of ``server_url`` (default :func:`server`)."""
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(server_url or server())
        try:
            for stmt in sql:
                await conn.execute(stmt)
        finally:
            await conn.close()

    run(go())


def url_of(name: str, server_url: str | None = None) -> str:
    """The URL of database ``name`` on the server of ``server_url``."""
    return f"{(server_url or server()).rpartition('/')[0]}/{name}"


def create(prefix: str, *, template: str | None = None, server_url: str | None = None) -> str:
    """Create a uniquely named database (a copy of ``template`` if given); return its name."""
    srv = server_url or server()
    name = f"{prefix}_{os.getpid()}_{os.urandom(5).hex()}"
    execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""),
            server_url=srv)
    with _lock:
        _alive[name] = srv
    return name


def drop(name: str) -> None:
    """Drop a database made by :func:`create`, connections and all."""
    with _lock:
        srv = _alive.pop(name, None)
    if srv is not None:
        execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', server_url=srv)


def _drop_all() -> None:
    for name in reversed(list(_alive)):  # copies before their template
        try:
            drop(name)
        except Exception as exc:  # noqa: BLE001 - keep dropping the others
            print(f"could not drop test database {name}: {exc}")


atexit.register(_drop_all)


# -- a hub's database, by its directory --------------------------------------------------------


def database_url(root: Path) -> str:
    """The hub database for a test whose hub lives in ``root``: a SQLite file there, or, with
    LEREC_TEST_DATABASE_URL set, a fresh PostgreSQL database (the same one for the same root,
    so a restarted hub finds its data)."""
    srv = configured_server()
    if not srv:
        return sqlite_url(root / "hub.db")
    key = Path(root).resolve()
    with _lock:
        name = _by_root.get(key)
        if name is None:
            name = _by_root[key] = create("lerec_t", server_url=srv)
    return url_of(name, srv)


def drop_databases(root: Path | None = None) -> None:
    """Drop the PostgreSQL databases made for ``root`` and below (every one when None)."""
    with _lock:
        keys = [k for k in _by_root if root is None or k == Path(root).resolve()
                or Path(root).resolve() in k.parents]
        names = [_by_root.pop(k) for k in keys]
    for name in names:
        try:
            drop(name)
        except Exception:  # noqa: BLE001, S110 - best effort at teardown
            pass


# -- a migrated template, copied per test ------------------------------------------------------


async def migrated(url: str) -> None:
    """The default seed: the schema, no rows."""
    engine = make_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


class Databases:
    """A template made once by ``seed`` (in ``root`` on SQLite), and a copy of it per test."""

    def __init__(self, root: Path, seed: Seed = migrated) -> None:
        self.server = configured_server()
        if self.server:
            self.template = create("lerec_test_tpl", server_url=self.server)
            run(seed(url_of(self.template, self.server)))
        else:
            self.template_file = root / "template.db"
            run(seed(sqlite_url(self.template_file)))

    def new(self, tmp_path: Path) -> str:
        """A copy of the template for one test (``tmp_path / "hub.db"`` on SQLite)."""
        if self.server:
            name = create("lerec_test", template=self.template, server_url=self.server)
            return url_of(name, self.server)
        path = tmp_path / "hub.db"
        shutil.copy(self.template_file, path)
        return sqlite_url(path)

    def drop(self, url: str) -> None:
        if self.server:
            drop(url.rsplit("/", 1)[1])

    def close(self) -> None:
        if self.server:
            drop(self.template)


def databases(tmp_path_factory: Any, seed: Seed = migrated) -> Iterator[Databases]:
    """Body of a session fixture: the template, dropped at the end."""
    dbs = Databases(tmp_path_factory.mktemp("dbtemplate"), seed)
    try:
        yield dbs
    finally:
        dbs.close()


def database(dbs: Databases, tmp_path: Path) -> Iterator[str]:
    """Body of a per-test fixture: a copy of the template, dropped afterwards."""
    url = dbs.new(tmp_path)
    try:
        yield url
    finally:
        dbs.drop(url)


class FreshPostgres:
    """``with FreshPostgres() as url:`` a new, empty PostgreSQL database (plain postgresql://
    URL) on :func:`server`, dropped on exit."""

    def __enter__(self) -> str:
        self.name = create("lerec_f")
        return url_of(self.name)

    def __exit__(self, *exc: object) -> None:
        drop(self.name)
