"""Shared helpers for the benchmarks: a throwaway PKI + broker + hub on loopback."""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # reuse the test rig (real broker, hub, recorders)


def workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"lerec-bench-{prefix}-"))


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def median(xs: list[float]) -> float:
    return statistics.median(xs)
