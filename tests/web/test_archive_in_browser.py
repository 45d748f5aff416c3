"""The archivist archives a case in a real browser: the page comes back at once with 归档进度,
which htmx keeps up to date until the package is built and its archive number shows — no
reload. (The build is held on an event the test releases, not on timing.)"""

from __future__ import annotations

import asyncio
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@pytest.fixture
def server(database_url, tmp_path):
    """The admin service with the hub's signing key (so archiving builds the package)."""
    from web.conftest import Server, _free_port

    from lerec.hub.admin.app import create_app
    from lerec.hub.admin.settings import AdminSettings

    keyfile = tmp_path / "hub-signing.key"
    keyfile.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    app = create_app(AdminSettings(database_url=database_url, storage_dir=tmp_path / "store",
                                   migrate=False, refresh_minutes=0, signing_key=keyfile,
                                   archive_dir=tmp_path / "archives"))
    with Server(app, _free_port()) as srv:
        yield srv


async def test_archivist_sees_the_progress_and_then_the_archive_number(
        server, new_page, login, run_db, shots, monkeypatch):
    from sqlalchemy import select

    from lerec.hub.admin import archiving
    from lerec.hub.cases import service
    from lerec.hub.db.cases_models import User
    from lerec.hub.rules import default_rulebook

    async def closed_case(s):
        h = (await s.execute(select(User).where(User.name == "handler_a"))).scalar_one()
        actor = service.Actor(h.id, h.name, h.display_name, h.role, h.officer_id, True)
        rb = default_rulebook()
        case = await service.create_case(s, rb, actor, title="某商户占道经营（不予立案）",
                                         enforcement_type="penalty", start_mode="ex_officio",
                                         party="某商户")
        await service.decide_not_to_start(s, rb, actor, case, "经核查不存在违法行为")
        return case.id

    case_id = await run_db(closed_case)
    release = threading.Event()
    real = archiving.archive_package

    async def held(*args, **kw):  # (runs on the server's event loop, in its thread)
        await asyncio.to_thread(release.wait, 120)
        return await real(*args, **kw)

    monkeypatch.setattr(archiving, "archive_package", held)

    page = await new_page()
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await login(page, "archivist")
    await page.goto(f"{server.url}/cases/{case_id}")
    await page.click("button:has-text('形成案卷并归档')")
    await page.wait_for_url(f"{server.url}/cases/{case_id}#archive-status")
    panel = page.locator("#archive-status")
    assert await panel.get_attribute("data-state") == "running"
    assert "收集记录" in await panel.inner_text()
    assert await page.locator("#archive-status progress").count() == 1
    await shots(page, "28-archive-progress")

    release.set()  # the build runs; htmx polls the panel until it is done
    await page.wait_for_selector("#archive-status[data-state=done]", timeout=60_000)
    text = await page.inner_text("#archive-status")
    assert "归档包已生成" in text and "档号" in text and "新乡镇-" in text
    assert "archives" in await page.inner_text("#archive-status .archive-path")
    await shots(page, "29-archive-done")
