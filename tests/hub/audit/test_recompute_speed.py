"""Throughput of the full re-verification pass (``recompute_root``) on 1,000,000 entries."""

from __future__ import annotations

import random
import time

import pytest
from lerec.hub.audit.compact import recompute_root
from lerec.hub.audit.merkle import hash_leaves, root_from_hashes

ENTRIES = 1_000_000
FLOOR_PER_SECOND = 150_000  # loose: catches a fall back to per-entry Python, not CI noise


@pytest.mark.slow
def test_recompute_one_million_entries(record_property: pytest.RecordProperty) -> None:
    rnd = random.Random(20240501)
    pool = [rnd.randbytes(rnd.randint(100, 200)) for _ in range(4096)]
    datas = [pool[i & 4095][:-8] + i.to_bytes(8, "big") for i in range(ENTRIES)]
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        head = recompute_root(datas)
        best = min(best, time.perf_counter() - start)
    rate = ENTRIES / best
    record_property("entries_per_second", round(rate))
    print(f"recompute_root: {rate:,.0f} entries/s on {ENTRIES:,} entries")
    assert head.size == ENTRIES
    assert head.root == root_from_hashes(hash_leaves(datas))
    assert rate > FLOOR_PER_SECOND
