"""Fixtures for the admin service: the app on a fresh database (one user per role), httpx
clients talking to it in-process (https, so the Secure cookie is sent), logged in by role."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import httpx
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


_db = _load("lerec_test_db", Path(__file__).parents[1] / "cases" / "_db.py")
helpers = _load("lerec_admin_helpers", Path(__file__).with_name("_helpers.py"))


@pytest.fixture(scope="session")
def dbs(tmp_path_factory):
    yield from _db.databases_fixture(tmp_path_factory)


@pytest.fixture
def database_url(dbs, tmp_path):
    yield from _db.database_url_fixture(dbs, tmp_path)


@pytest.fixture
async def app(database_url, tmp_path):
    from lerec.hub.admin.app import create_app
    from lerec.hub.admin.settings import AdminSettings

    application = create_app(AdminSettings(database_url=database_url,
                                           storage_dir=tmp_path / "store", migrate=False,
                                           refresh_minutes=0))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def client_factory(app):
    clients: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                              base_url="https://testserver", follow_redirects=False)
        clients.append(c)
        return c

    yield make


@pytest.fixture
def login(client_factory):
    async def do(name: str) -> helpers.Browser:
        c = client_factory()
        b = helpers.Browser(c)
        await b.login(name, _db.PASSWORD)
        return b

    return do


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
