"""The admin web service under attack, in-process (httpx over ASGI, the real app, a real
database seeded with one user per role):

- schemathesis generates requests from the app's own OpenAPI schema for every operation; sent
  by a logged-in user with a valid CSRF token none may end in a 5xx, and sent again without a
  session none of the non-public ones may succeed (auth bypass);
- session fixation: a session id chosen or seen before login never becomes a logged-in one,
  and a logged-out id stays dead;
- CSRF: every state-changing route (JSON API and HTML forms) without a token or with a wrong one
  is refused;
- path traversal in clip / attachment ids and static paths never serves a file;
- SQL injection probes in case search neither fail nor widen what a scoped officer sees.

The role x endpoint matrix itself is tests/hub/admin/test_permissions.py (not repeated here).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.admin import (  # noqa: F401 - dbs, database_url: the fixtures
    PASSWORD,
    ROLE_USER,
    admin_app,
    database_url,
    dbs,
    route_permissions,
)
from support.admin_client import Browser, in_process_client

from lerec.hub.admin.permissions import PUBLIC
from lerec.hub.admin.security import COOKIE

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


class Web:
    """The admin app on a private event loop, so hypothesis (sync) can drive it."""

    def __init__(self, database_url: str, storage: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = admin_app(database_url, storage)
        self.stack = AsyncExitStack()
        self.run(self.stack.enter_async_context(self.app.router.lifespan_context(self.app)))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def client(self) -> httpx.AsyncClient:
        return in_process_client(self.app)

    def browser(self, name: str) -> Any:
        b = Browser(self.client())
        self.run(b.login(name, PASSWORD))
        return b

    def close(self) -> None:
        self.run(self.stack.aclose())
        self.loop.close()


@pytest.fixture
def web(database_url, tmp_path):  # type: ignore[no-untyped-def]
    w = Web(database_url, tmp_path / "store")
    try:
        yield w
    finally:
        w.close()


def permission_of(route: APIRoute) -> str:
    return (route_permissions(route) or [PUBLIC])[0]


def _request_kwargs(case: Any) -> dict[str, Any]:
    kw = case.as_transport_kwargs(base_url="https://testserver")
    out: dict[str, Any] = {"method": kw["method"], "url": kw["url"],
                           "params": kw.get("params") or None}
    headers = {k: v for k, v in (kw.get("headers") or {}).items()
               if k.lower() not in ("connection", "accept-encoding", "content-length")}
    out["headers"] = headers
    for key in ("json", "data", "files", "content"):
        if kw.get(key) is not None:
            out[key] = kw[key]
    return out


def test_schemathesis_no_5xx_and_no_auth_bypass(web, report):
    handler = web.browser(ROLE_USER["handler"])
    head = web.browser(ROLE_USER["agency_head"])
    web.run(handler.create_case())  # something to find
    schema = schemathesis.openapi.from_dict(web.app.openapi())
    public = {(m, r.path) for r in web.app.routes if isinstance(r, APIRoute)
              for m in r.methods if permission_of(r) == PUBLIC}
    anon = web.client()
    tried = tried_anon = errors = bypass = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()
        method = op.method.upper()

        @settings(max_examples=20, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(), who=st.sampled_from([handler, head]))
        def probe(case: Any, who: Any) -> None:  # run at once, inside this iteration
            nonlocal tried, tried_anon, errors, bypass
            kw = _request_kwargs(case)
            kw["headers"] = {**kw["headers"], **who.headers()}
            tried += 1
            r = web.run(who.c.request(**kw))
            if r.status_code >= 500:
                errors += 1
                failures.append(f"{method} {r.url} -> {r.status_code}")  # noqa: B023
            if (method, op.path) not in public:  # noqa: B023
                kw["headers"] = {k: v for k, v in kw["headers"].items()
                                 if k.lower() != "x-csrf-token"}
                a = web.run(anon.request(**kw))
                tried_anon += 1
                if a.status_code < 400:
                    bypass += 1
                    failures.append(f"anonymous {method} {a.url} -> {a.status_code}")  # noqa: B023
                if a.status_code >= 500:
                    errors += 1

        probe()
    report("web: schemathesis, logged in (5xx)", tried, errors,
           f"{len(web.app.openapi()['paths'])} paths of /api/openapi.json, 20 examples per "
           "operation, as handler / agency head")
    report("web: schemathesis, anonymous (auth bypass)", tried_anon, bypass,
           "non-public operations without a session")
    assert not failures, failures[:20]


def test_session_fixation_and_logout(web, report):
    user, tried, through = ROLE_USER["handler"], 0, 0

    def sid(c: httpx.AsyncClient) -> str | None:
        values = [k.value for k in c.cookies.jar if k.name == COOKIE]
        return values[-1] if values else None

    async def logged_in(cookie: str) -> bool:
        c = web.client()
        r = await c.get("/api/v1/session", headers={"Cookie": f"{COOKIE}={cookie}"})
        return bool(r.json().get("user")) if r.status_code == 200 else False

    # 1. A session id the attacker chose before the victim logs in.
    c = web.client()
    c.cookies.set(COOKIE, "attacker-chosen-session-id-0123456789")
    b = Browser(c)
    web.run(b.login(user, PASSWORD))
    tried += 1
    through += web.run(logged_in("attacker-chosen-session-id-0123456789"))
    assert sid(c) != "attacker-chosen-session-id-0123456789"
    # 2. A real pre-login session (the attacker fetched /login, then planted the cookie).
    c2 = web.client()
    web.run(c2.get("/login"))
    planted = sid(c2)
    b2 = Browser(c2)
    web.run(b2.login(user, PASSWORD))
    if planted:
        tried += 1
        through += web.run(logged_in(planted))
        assert sid(c2) != planted, "login rotates the session id"
    # 3. After logout the old id is dead.
    old = sid(c2)
    assert web.run(logged_in(old))
    web.run(c2.delete("/api/v1/session", headers=b2.headers()))
    tried += 1
    through += web.run(logged_in(old))
    report("web: session fixation / logout", tried, through,
           "chosen id, planted pre-login id, id after logout")
    assert through == 0


def test_csrf_on_every_state_changing_route(web, report):
    b = web.browser(ROLE_USER["handler"])
    case = web.run(b.create_case())
    tried = through = 0
    refused_codes: set[int] = set()
    for r in web.app.routes:
        if not isinstance(r, APIRoute):
            continue
        for method in sorted(r.methods & STATE_CHANGING):
            path = r.path
            for name in ("case_id", "record_id", "att_id", "user_id"):
                path = path.replace("{" + name + "}", str(case["id"]) if name == "case_id"
                                    else "1")
            path = path.replace("{segment_id}", "no-such-segment")
            for token in (None, "wrong-token", b.csrf[::-1]):
                headers = {"X-CSRF-Token": token} if token else {}
                form = {"csrf_token": token} if token else {}
                if path.startswith("/api/"):
                    resp = web.run(b.c.request(method, path, json={}, headers=headers))
                else:
                    resp = web.run(b.c.request(method, path, data=form))
                tried += 1
                refused_codes.add(resp.status_code)
                if resp.status_code < 400:
                    through += 1
    report("web: CSRF (no / wrong token) on state changes", tried, through,
           f"refused with {sorted(refused_codes)}")
    assert through == 0 and tried > 20


TRAVERSAL = ["../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd",
             "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "....//....//etc/passwd", "/etc/passwd",
             "..\\..\\hub.db", "%252e%252e%252fetc%252fpasswd", "sha256:../../hub.db",
             "..%00/etc/passwd", "%c0%ae%c0%ae/etc/passwd"]
LEAK_MARKERS = (b"root:x:0", b"SQLite format 3", b"[project]", b"BEGIN PRIVATE KEY")


def test_path_traversal_in_downloads(web, report):
    b = web.browser(ROLE_USER["handler"])
    case = web.run(b.create_case())
    cid = case["id"]
    urls = []
    for t in TRAVERSAL:
        urls += [f"/cases/{cid}/clips/{t}/media", f"/cases/{cid}/clips/{t}/media?download=1",
                 f"/cases/{cid}/attachments/{t}", f"/cases/{cid}/attachments/{t}?download=1",
                 f"/static/{t}", f"/api/v1/cases/{cid}/records/{t}/versions",
                 f"/api/v1/cases/{t}"]
    tried = through = 0
    for u in urls:
        r = web.run(b.c.get(u))
        tried += 1
        if r.status_code == 200 and any(m in r.content for m in LEAK_MARKERS) or r.status_code == 200 and "/static/" not in u:
            through += 1
        assert r.status_code < 500, (u, r.status_code)
    report("web: path traversal in download ids", tried, through,
           "clip media, attachments, static, API ids")
    assert through == 0


SQLI = ["' OR '1'='1", "' OR 1=1 --", "%' OR 1=1 --", "'; DROP TABLE cases; --",
        "\" OR \"\"=\"", "1' UNION SELECT name, password_hash FROM users --", "%", "_", "\\",
        "' || (SELECT password_hash FROM users LIMIT 1) || '", "') OR ('a'='a",
        "1; SELECT pg_sleep(2)", "*/ OR 1=1 /*", "\u0000", "'", "%%'%%"]


def test_sql_injection_probes_in_search(web, report):
    handler = web.browser(ROLE_USER["handler"])
    for i in range(3):
        web.run(handler.create_case(title=f"案件{i}"))
    officer = web.browser(ROLE_USER["officer"])  # a member of none of them
    tried = through = 0
    for probe in SQLI:
        for who, visible in ((officer, 0), (handler, None)):
            for url in ("/api/v1/cases", "/cases"):
                r = web.run(who.c.get(url, params={"q": probe}))
                tried += 1
                if r.status_code >= 500:
                    through += 1
                    continue
                if url.startswith("/api") and r.status_code == 200 and visible is not None:
                    body = r.json()
                    items = body.get("items", body.get("cases", []))
                    if len(items) > visible:
                        through += 1
    everything = web.run(handler.c.get("/api/v1/cases")).json()
    items = everything.get("items", everything.get("cases", []))
    assert len(items) == 3, "the cases table survived the probes"
    report("web: SQL injection probes in search", tried, through,
           f"{len(SQLI)} probes x officer/handler x API/HTML; scope not widened")
    assert through == 0
