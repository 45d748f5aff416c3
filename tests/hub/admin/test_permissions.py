"""The permission matrix is enforced on EVERY route for EVERY role, in one place.

Walks ``app.routes``: each route depends on exactly one ``need(permission)``; each role (and
an anonymous client) calling it is refused with 403/401 exactly when the matrix says so.
Refusals are audit entries."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount
from support.admin import ROLE_USER, route_permissions
from support.admin_client import audit_rows

from lerec.hub.admin.permissions import MATRIX, PUBLIC, ROLES, SESSION, allowed

PATH_PARAM = re.compile(r"\{([a-z_]+)\}")


def routes(app):
    out = []
    for r in app.routes:
        if isinstance(r, Mount):
            assert r.path == "/static", f"unexpected mount {r.path}"
            continue
        if not isinstance(r, APIRoute):
            continue  # FastAPI's own openapi.json route
        for method in sorted(r.methods - {"HEAD"}):
            out.append((method, r))
    return out


async def test_every_route_names_exactly_one_permission_from_the_matrix(app):
    seen = set()
    for method, route in routes(app):
        perms = route_permissions(route)
        assert len(perms) == 1, f"{method} {route.path} has permissions {perms}"
        assert perms[0] in MATRIX
        seen.add(perms[0])
    assert seen == set(MATRIX), f"matrix entries without a route: {set(MATRIX) - seen}"


def test_matrix_roles_are_the_rulebook_roles():
    from lerec.hub.rules import default_rulebook

    assert set(ROLES) == set(default_rulebook().roles)
    for roles, desc in MATRIX.values():
        assert roles <= set(ROLES) and desc


@pytest.fixture
async def sessions_by_role(app, login, client_factory):
    out = {role: await login(ROLE_USER[role]) for role in ROLES}
    from support.admin_client import Browser

    anon = Browser(client_factory())
    await anon.refresh_csrf()  # a pre-login session with its CSRF token
    out[None] = anon
    return out


async def test_every_route_for_every_role_matches_the_matrix(app, sessions_by_role, tmp_path):
    import datetime as dt

    from support.admin_client import add_segment, user_id

    handler = sessions_by_role["handler"]
    officer_id = await user_id(app, "officer_a")
    case = await handler.create_case(officer_ids=[officer_id])
    r = await handler.api("POST", f"/api/v1/cases/{case['id']}/records", {
        "kind": "ex_officio_start", "fields": {
            "reason": "巡查", "case_source": "巡查", "party_info": "某", "case_facts": "某",
            "handler_opinion": "立案", "unit_opinion": "同意", "head_opinion": "同意",
            "recorded_at": "2026-11-20T09:00:00+08:00"}})
    assert r.status_code == 201, r.text
    record_id = r.json()["id"]
    seg = await add_segment(app, tmp_path, "officer_a", dt.datetime.now(dt.UTC),
                            data=b"\0" * 1000)
    r = await handler.api("POST", f"/api/v1/cases/{case['id']}/clips", {"segment_id": seg})
    assert r.status_code == 201, r.text
    # 第二十九条: the party's account is linked to the case; every requester holds an approved
    # request for the whole case, so the access.* routes answer by the matrix, not the rules
    head = sessions_by_role["agency_head"]
    r = await head.api("PATCH", f"/api/v1/users/{await user_id(app, ROLE_USER['party'])}",
                       {"party_case_ids": [case["id"]]})
    assert r.status_code == 200, r.text
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    request_id = None
    for role in ROLES:
        if not allowed("access.request", role) or role == "agency_head":
            continue
        r = await sessions_by_role[role].api(
            "POST", f"/api/v1/cases/{case['id']}/access/requests",
            {"purpose": "矩阵测试", "scope": ["*"], "until": until})
        assert r.status_code == 201 and r.json()["status"] == "pending", (role, r.text)
        request_id = r.json()["id"]
        r = await head.api("POST", f"/api/v1/access/requests/{request_id}/approve", {})
        assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    values = {"case_id": str(case["id"]), "record_id": str(record_id), "segment_id": seg,
              "att_id": "999999", "user_id": "999999", "request_id": str(request_id),
              "alert_id": "999999", "hold_id": "999999"}

    checked = 0
    for method, route in routes(app):
        perm = route_permissions(route)[0]
        if route.path in ("/logout",) or (route.path == "/api/v1/session" and method == "DELETE"):
            continue  # checked below: they end the session they are called with
        url = PATH_PARAM.sub(lambda m: values[m.group(1)], route.path)
        for role, browser in sessions_by_role.items():
            resp = await browser.c.request(method, url, headers=browser.headers(),
                                           data=None if method == "GET" else
                                           {"csrf_token": browser.csrf})
            refused = resp.status_code in (401, 403) or (
                resp.status_code == 303 and resp.headers["location"].startswith("/login"))
            expect_refused = not allowed(perm, role) if perm != PUBLIC else False
            assert refused == expect_refused, (
                f"{method} {url} as {role}: {resp.status_code} {resp.text[:300]}")
            assert resp.status_code < 500, f"{method} {url} as {role}: {resp.text[:500]}"
            checked += 1
    assert checked > 200

    for path, method in (("/logout", "POST"), ("/api/v1/session", "DELETE")):
        for role in list(ROLES) + [None]:
            b = sessions_by_role[role]
            resp = await b.c.request(method, path, headers=b.headers(),
                                     data={"csrf_token": b.csrf})
            refused = resp.status_code in (401, 403) or resp.headers.get(
                "location", "").startswith("/login?")
            assert refused == (role is None), (path, role, resp.status_code, resp.text)
            if role is not None:
                await b.login(ROLE_USER[role], "test-password-123")

    denied = await audit_rows(app)
    assert any(d.get("reason") == "role" for _, _, _, _, d in denied)


async def test_a_refusal_is_explained_in_chinese_and_audited(app, login):
    auditor = await login("auditor")
    r = await auditor.api("POST", "/api/v1/cases", {"title": "x", "enforcement_type": "penalty",
                                                     "start_mode": "ex_officio"})
    assert r.status_code == 403
    assert "审计" in r.json()["detail"] and "无权" in r.json()["detail"]
    page = await auditor.post("/cases", {"title": "x"})
    assert page.status_code == 403 and "无权" in page.text and "<html" in page.text
    rows = [row for row in await audit_rows(app) if row[4].get("outcome") == "denied"]
    assert len(rows) == 2
    assert all(row[2] == "user:auditor" and row[4]["reason"] == "role" for row in rows)


def test_public_and_session_permissions_are_open_to_all():
    assert all(allowed(PUBLIC, r) for r in (*ROLES, None))
    assert all(allowed(SESSION, r) for r in ROLES) and not allowed(SESSION, None)
