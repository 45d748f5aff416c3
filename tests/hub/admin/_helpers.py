"""A tiny 'browser' over httpx for the admin tests: logs in through the HTML form, keeps the
CSRF token, posts forms and JSON."""

from __future__ import annotations

import re
from typing import Any

import httpx

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


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
