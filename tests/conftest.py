"""Fixtures shared by the whole suite: a dev PKI and a real mosquitto broker per test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Timing belongs in benchmarks: on a shared 2-core machine a slow example is not a failure.
settings.register_profile(
    "lerec", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("lerec")

sys.path.insert(0, str(Path(__file__).parent))

from support.rig import Rig, make_pki  # noqa: E402

from lerec.deploy.broker import Broker  # noqa: E402
from lerec.deploy.pki import Pki  # noqa: E402


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(pki: Pki, tmp_path: Path) -> Iterator[Broker]:
    with Broker(pki, tmp_path / "broker") as b:
        yield b


@pytest.fixture
def rig(pki: Pki, tmp_path: Path) -> Iterator[Rig]:
    b = Broker(pki, tmp_path / "broker")
    b.start()
    r = Rig(pki=pki, broker=b, root=tmp_path)
    try:
        yield r
    finally:
        r.close()
