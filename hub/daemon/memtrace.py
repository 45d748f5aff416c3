"""Where does the hub's memory grow? ``lerec-hub run --trace-memory FILE`` (diagnostics).

Starts :mod:`tracemalloc`, takes a baseline snapshot after a warm-up and then, every
``every`` seconds, rewrites FILE with what Python has allocated since the baseline and not
freed, grouped by the allocating call stack, largest growth first. Memory that glibc keeps
without Python holding it (fragmentation, arenas) does not show here; compare the report's
traced total with the process RSS to tell the two apart.

Tracing costs CPU (every allocation records its stack): use it for a soak, not in production.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import linecache
import os
import tracemalloc
from pathlib import Path

#: Allocations of the tracer itself (and the source lines it quotes) and of the import system
#: are not the hub's.
_IGNORE = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, linecache.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


def _snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(_IGNORE)


def report(base: tracemalloc.Snapshot, now: tracemalloc.Snapshot, *, elapsed: float,
           top: int = 25) -> str:
    """What grew from ``base`` to ``now``, by allocating stack (text)."""
    stats = now.compare_to(base, "traceback")
    grown = sum(s.size_diff for s in stats)
    current, peak = tracemalloc.get_traced_memory()
    lines = [
        f"lerec-hub memory trace, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC, "
        f"{elapsed / 60:.1f} min after the baseline",
        f"traced now {current / 2**20:.1f} MiB (peak {peak / 2**20:.1f} MiB); "
        f"net growth since the baseline {grown / 2**20:+.2f} MiB",
        "",
    ]
    for s in sorted(stats, key=lambda s: s.size_diff, reverse=True)[:top]:
        if s.size_diff <= 0:
            break
        lines.append(f"{s.size_diff / 1024:+10.1f} KiB  {s.count_diff:+7d} blocks  "
                     f"(now {s.size / 1024:.1f} KiB in {s.count} blocks)")
        lines += [f"        {line}" for line in s.traceback.format(limit=8, most_recent_first=True)]
    return "\n".join(lines) + "\n"


async def trace_memory(path: Path, *, every: float = 60.0, warmup: float = 60.0,
                       frames: int = 12) -> None:
    """Run until cancelled, rewriting ``path`` every ``every`` seconds."""
    if not tracemalloc.is_tracing():
        tracemalloc.start(frames)
    await asyncio.sleep(warmup)
    base = _snapshot()
    started = asyncio.get_running_loop().time()
    while True:
        await asyncio.sleep(every)
        now = _snapshot()
        text = report(base, now, elapsed=asyncio.get_running_loop().time() - started)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
