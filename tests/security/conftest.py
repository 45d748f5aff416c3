"""Security gauntlet: the report printed at the end of the session — for each area, how many
attempts were made and how many got through (must be 0)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from support.summary import write_table


@dataclass
class Probe:
    area: str
    tried: int
    through: int
    note: str = ""


REPORT: list[Probe] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write_table(terminalreporter, "security gauntlet", ("area", 44),
                [("tried", 7), ("through", 9)],
                [(p.area, (p.tried, p.through), p.note) for p in REPORT])


@pytest.fixture
def report():  # type: ignore[no-untyped-def]
    def add(area: str, tried: int, through: int, note: str = "") -> Probe:
        p = Probe(area, tried, through, note)
        REPORT.append(p)
        return p

    return add
