"""Security gauntlet: the report printed at the end of the session — for each area, how many
attempts were made and how many got through (must be 0)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Probe:
    area: str
    tried: int
    through: int
    note: str = ""


REPORT: list[Probe] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT:
        return
    tr = terminalreporter
    tr.section("security gauntlet")
    head = f"{'area':<44}{'tried':>7}{'through':>9}  note"
    tr.write_line(head)
    tr.write_line("-" * len(head))
    for p in REPORT:
        tr.write_line(f"{p.area:<44}{p.tried:>7}{p.through:>9}  {p.note}")
    tr.write_line(f"{'total':<44}{sum(p.tried for p in REPORT):>7}"
                  f"{sum(p.through for p in REPORT):>9}")


@pytest.fixture
def report():  # type: ignore[no-untyped-def]
    def add(area: str, tried: int, through: int, note: str = "") -> Probe:
        p = Probe(area, tried, through, note)
        REPORT.append(p)
        return p

    return add
