"""glibc malloc tuning of the hub process (hub/daemon/memory.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

from lerec.hub.daemon import memory


def test_arena_cap_and_trim_apply_on_glibc():
    if platform.libc_ver()[0] != "glibc":
        assert memory.limit_arenas() is False and memory.trim() is False
        return
    # in a fresh interpreter: the cap must be set before threads allocate
    code = ("from lerec.hub.daemon import memory; import sys; "
            "sys.exit(0 if memory.limit_arenas(2) and memory.trim() else 1)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


async def test_the_daemon_bounds_sqlite_page_caches_and_connections(tmp_path):
    """SQLite's page cache (per connection, outside Python's heap) grew the hub's RSS with its
    database; the daemon's engine caps each cache and the number of connections."""
    from sqlalchemy import text

    from lerec.hub.db import make_engine, migrate, sessionmaker, sqlite_url
    from lerec.hub.db.engine import DAEMON_SQLITE, daemon_engine_options

    url = sqlite_url(tmp_path / "hub.db")
    engine = make_engine(url, **daemon_engine_options(url))
    await migrate(engine)
    async with sessionmaker(engine)() as s:
        assert (await s.execute(text("PRAGMA cache_size"))).scalar_one() == \
            -DAEMON_SQLITE["sqlite_cache_kib"]
    pool = engine.sync_engine.pool
    assert pool.size() == DAEMON_SQLITE["pool_size"]
    assert pool._max_overflow == DAEMON_SQLITE["max_overflow"]  # type: ignore[attr-defined]
    await engine.dispose()
    plain = make_engine(url)  # other processes keep SQLite's default cache
    async with sessionmaker(plain)() as s:
        assert (await s.execute(text("PRAGMA cache_size"))).scalar_one() == -2000
    await plain.dispose()
    assert daemon_engine_options("postgresql://postgres@127.0.0.1/x") == {}
