"""A tiny 'browser' over httpx for the admin tests: logs in through the HTML form, keeps the
CSRF token, posts forms and JSON; and helpers reading the app's database."""

from __future__ import annotations

import re
from typing import Any

import httpx

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def in_process_client(app: Any) -> httpx.AsyncClient:
    """An httpx client calling ``app`` in-process (https, so the Secure cookie is sent)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                             base_url="https://testserver", follow_redirects=False)


class Browser:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.c = client
        self.csrf = ""
        self.name = ""

    async def login(self, name: str, password: str) -> httpx.Response:
        page = await self.c.get("/login")
        token = CSRF_RE.search(page.text)
        assert token, page.text[:500]
        resp = await self.c.post("/login", data={"username": name, "password": password,
                                                 "csrf_token": token.group(1), "next": "/cases"})
        assert resp.status_code == 303, resp.text[:800]
        self.name = name
        await self.refresh_csrf()
        return resp

    async def refresh_csrf(self) -> None:
        r = await self.c.get("/api/v1/session")
        self.csrf = r.json()["csrf_token"]

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.c.get(url, **kw)

    async def post(self, url: str, data: dict[str, Any] | None = None, csrf: bool = True,
                   **kw: Any) -> httpx.Response:
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf)
        return await self.c.post(url, data=data, **kw)

    def headers(self, csrf: bool = True) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf} if csrf else {}

    async def api(self, method: str, url: str, json: Any = None, csrf: bool = True,
                  **kw: Any) -> httpx.Response:
        return await self.c.request(method, url, json=json, headers=self.headers(csrf), **kw)

    async def create_case(self, **fields: Any) -> dict[str, Any]:
        body = {"title": "测试案件", "enforcement_type": "penalty", "start_mode": "ex_officio",
                "party": "某某餐馆"}
        body.update(fields)
        r = await self.api("POST", "/api/v1/cases", body)
        assert r.status_code == 201, r.text
        return r.json()


async def audit_rows(app, type_: str | None = None):
    """All audit entries (idx, type, actor, subjects, details) in order."""
    from lerec.hub.audit.entries import decode_event
    from lerec.hub.db.audit_models import AuditEntry
    from sqlalchemy import select

    async with app.state.sessions() as s:
        q = select(AuditEntry).order_by(AuditEntry.idx)
        if type_ is not None:
            q = q.where(AuditEntry.type == type_)
        rows = (await s.execute(q)).scalars().all()
        return [(r.idx, r.type, r.actor, r.subjects.split(), dict(decode_event(bytes(r.data)).details))
                for r in rows]


async def user_id(app, name: str) -> int:
    from lerec.hub.db.cases_models import User
    from sqlalchemy import select

    async with app.state.sessions() as s:
        return (await s.execute(select(User.id).where(User.name == name))).scalar_one()


async def add_segment(app, tmp_path, officer: str, start, seconds: float = 2.0,
                      device: str = "rec-t1", media_type: str = "video/mp4", data=None):
    """A stored segment (blob + row) as ingest leaves it; a real H.264 MP4 unless ``data``."""
    import os

    from lerec.hub.admin.demo import ensure_device, make_mp4, store_segment

    path = tmp_path / f"clip-{os.urandom(4).hex()}.mp4"
    if data is None:
        make_mp4(path, seconds=seconds)
    else:
        path.write_bytes(data)
    async with app.state.sessions() as s, s.begin():
        await ensure_device(s, device, officer)
        seg = await store_segment(s, app.state.store, path, device_id=device, officer_id=officer,
                                  start=start, seconds=seconds, media_type=media_type)
        return seg.segment_id
