"""``lerec-hub run --trace-memory``: the report names the call stack that holds new memory
(hub/daemon/memtrace.py)."""

from __future__ import annotations

import asyncio
import re
import tracemalloc

from lerec.hub.daemon import memtrace

_kept: list[bytes] = []


def _leak_a_little() -> None:
    _kept.extend(bytes(4096) + bytes([i % 256]) for i in range(500))


def test_report_points_at_the_allocating_function():
    tracemalloc.start(8)
    try:
        base = memtrace._snapshot()
        _leak_a_little()
        text = memtrace.report(base, memtrace._snapshot(), elapsed=60)
    finally:
        tracemalloc.stop()
        _kept.clear()
    head, body = text.splitlines()[1], text.split("\n\n", 1)[1]
    assert "net growth since the baseline +" in head
    largest = re.split(r"\n(?=\s*\+)", body)[0]  # one entry: size, blocks, then its stack
    assert re.match(r"\s*\+\s*[0-9.]+ KiB\s+\+500 blocks", largest), largest
    assert "_kept.extend(" in largest, largest  # the allocating line, quoted from source

async def test_trace_memory_rewrites_its_file(tmp_path):
    out = tmp_path / "trace.txt"
    task = asyncio.create_task(memtrace.trace_memory(out, every=0.05, warmup=0.01))
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if out.exists():
                break
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        tracemalloc.stop()
    assert out.read_text().startswith("lerec-hub memory trace")
