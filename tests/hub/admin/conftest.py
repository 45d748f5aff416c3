"""Fixtures for the admin service: the app on a fresh database (one user per role), httpx
clients talking to it in-process (https, so the Secure cookie is sent), logged in by role."""

from __future__ import annotations

import httpx
import pytest
from support.admin import PASSWORD, admin_app, database_url, dbs  # noqa: F401 - fixtures
from support.admin_client import Browser, in_process_client


@pytest.fixture
async def app(database_url, tmp_path):
    application = admin_app(database_url, tmp_path / "store")
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def client_factory(app):
    clients: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        c = in_process_client(app)
        clients.append(c)
        return c

    yield make


@pytest.fixture
def login(client_factory):
    async def do(name: str) -> Browser:
        c = client_factory()
        b = Browser(c)
        await b.login(name, PASSWORD)
        return b

    return do

