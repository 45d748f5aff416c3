"""Fixtures for the case-service tests: a migrated database with one user per role."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load(name: str, path: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


_db = _load("lerec_test_db", Path(__file__).with_name("_db.py"))


@pytest.fixture(scope="session")
def dbs(tmp_path_factory):
    yield from _db.databases_fixture(tmp_path_factory)


@pytest.fixture
def database_url(dbs, tmp_path):
    yield from _db.database_url_fixture(dbs, tmp_path)
