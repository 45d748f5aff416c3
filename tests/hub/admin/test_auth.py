"""Login (argon2), server-side sessions rotated at login, cookie flags, CSRF, logout."""

from __future__ import annotations

from support.admin import PASSWORD
from support.admin_client import CSRF_RE, Browser, audit_rows


async def test_login_rotates_the_session_and_sets_safe_cookie_flags(app, client_factory):
    c = client_factory()
    page = await c.get("/login")
    pre = c.cookies.get("lerec_session")
    assert pre and page.status_code == 200 and "登录" in page.text
    token = CSRF_RE.search(page.text).group(1)
    r = await c.post("/login", data={"username": "handler_a", "password": PASSWORD,
                                     "csrf_token": token, "next": "/cases"})
    assert r.status_code == 303 and r.headers["location"] == "/cases"
    cookie = r.headers["set-cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/"):
        assert flag.lower() in cookie.lower()
    post = c.cookies.get("lerec_session")
    assert post and post != pre  # no fixation: a new id at login
    # the pre-login id is gone: presenting it again is not logged in
    other = client_factory()
    other.cookies.set("lerec_session", pre, domain="testserver")
    assert (await other.get("/cases")).status_code == 303
    assert (await c.get("/cases")).status_code == 200
    logins = await audit_rows(app, "login")
    assert [row[2] for row in logins] == ["user:handler_a"]


async def test_wrong_password_is_refused_in_chinese_and_audited(app, client_factory):
    b = Browser(client_factory())
    page = await b.c.get("/login")
    token = CSRF_RE.search(page.text).group(1)
    r = await b.c.post("/login", data={"username": "handler_a", "password": "wrong-password",
                                       "csrf_token": token})
    assert r.status_code == 400 and "用户名或密码错误" in r.text
    r = await b.c.post("/login", data={"username": "nobody", "password": "x",
                                       "csrf_token": token})
    assert r.status_code == 400
    failed = await audit_rows(app, "login_failed")
    assert len(failed) == 2 and failed[0][3] == ["user:handler_a"]


async def test_repeated_failures_lock_the_name(app, client_factory):
    b = Browser(client_factory())
    await b.refresh_csrf()
    for _ in range(5):
        r = await b.api("POST", "/api/v1/session", {"username": "officer_a", "password": "bad"})
        assert r.status_code == 401
    r = await b.api("POST", "/api/v1/session", {"username": "officer_a", "password": PASSWORD})
    assert r.status_code == 401  # locked for a while, even with the right password
    reasons = [row[4]["reason"] for row in await audit_rows(app, "login_failed")]
    assert reasons[-1] == "locked"


async def test_login_without_csrf_token_is_refused(app, client_factory):
    c = client_factory()
    await c.get("/login")
    r = await c.post("/login", data={"username": "handler_a", "password": PASSWORD})
    assert r.status_code == 403 and "CSRF" in r.text
    rows = await audit_rows(app, "access_denied")
    assert rows and rows[-1][4]["reason"] == "csrf"


async def test_state_change_without_or_with_a_foreign_csrf_token_is_refused(app, login):
    a = await login("handler_a")
    b = await login("handler_b")
    body = {"title": "无令牌", "enforcement_type": "penalty", "start_mode": "ex_officio"}
    r = await a.api("POST", "/api/v1/cases", body, csrf=False)
    assert r.status_code == 403 and "安全令牌" in r.json()["detail"]
    r = await a.c.post("/api/v1/cases", json=body, headers={"X-CSRF-Token": b.csrf})
    assert r.status_code == 403
    r = await a.post("/cases", {"title": "x", "csrf_token": "forged"})
    assert r.status_code == 403 and "CSRF" in r.text
    assert len([x for x in await audit_rows(app) if x[4].get("reason") == "csrf"]) == 3
    assert (await a.api("POST", "/api/v1/cases", body)).status_code == 201


async def test_logout_ends_the_server_side_session(app, login):
    b = await login("officer_a")
    old = b.c.cookies.get("lerec_session")
    r = await b.post("/logout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    b.c.cookies.set("lerec_session", old, domain="testserver")
    assert (await b.get("/cases")).status_code == 303
    r = await b.get("/api/v1/cases")
    assert r.status_code == 401 and r.json()["detail"] == "请先登录。"
    assert [row[2] for row in await audit_rows(app, "logout")] == ["user:officer_a"]


async def test_api_login_and_bearerless_cookie_flow(app, client_factory):
    b = Browser(client_factory())
    r = await b.c.get("/api/v1/session")
    assert r.json()["authenticated"] is False
    pre_csrf = r.json()["csrf_token"]
    r = await b.c.post("/api/v1/session", json={"username": "auditor", "password": PASSWORD},
                       headers={"X-CSRF-Token": pre_csrf})
    assert r.status_code == 200 and r.json()["user"]["role"] == "auditor"
    assert r.json()["csrf_token"] != pre_csrf
    assert (await b.c.get("/api/v1/cases")).status_code == 200


async def test_unknown_page_is_a_chinese_404(login):
    b = await login("officer_a")
    r = await b.get("/no-such-page")
    assert r.status_code == 404 and "页面不存在" in r.text
    r = await b.get("/api/v1/no-such")
    assert r.status_code == 404 and r.json()["detail"]
