"""Shared fixtures for the recorder tests: real PyAV, real gpiozero MockFactory."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

# tests run in importlib mode; make the helpers next to this file importable by name
sys.path.insert(0, str(Path(__file__).parent))

from device_helpers import CollectingSink
from lerec.device.clock import FakeClock


@pytest.fixture
def sink() -> CollectingSink:
    return CollectingSink()


@pytest.fixture
def pin_factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
