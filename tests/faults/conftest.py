"""Fault gauntlet fixtures, and the table printed at the end of the session (scenario, runs,
segments sent, stored, lost, invalid accepted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from support.summary import write_table


def _load(name: str, path: Path) -> Any:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


gauntlet = _load("lerec_fault_gauntlet", Path(__file__).with_name("_gauntlet.py"))
LEDGER = gauntlet.LEDGER
Fleet = gauntlet.Fleet


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write_table(terminalreporter, "fault gauntlet", ("scenario", 28),
                [("runs", 6), ("sent", 7), ("stored", 8), ("lost", 6), ("invalid", 9)],
                [(o.scenario, (o.runs, o.sent, o.stored, o.lost, o.invalid), o.note)
                 for o in LEDGER])


@pytest.fixture
def fleet_factory(pki: Any, tmp_path: Path):  # type: ignore[no-untyped-def]
    made: list[Fleet] = []

    def make(port: int, devices: tuple[str, ...] = ("rec-a", "rec-b", "rec-c"),
             **kw: Any) -> Fleet:
        f = Fleet(pki, port, tmp_path, devices, **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.stop()
