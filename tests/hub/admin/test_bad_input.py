"""Missing, oversized and malicious input: refused in Chinese, rendered inert."""

from __future__ import annotations

import io

from support.admin_client import audit_rows

SCRIPT = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_script_payloads_come_back_escaped(login):
    h = await login("handler_a")
    case = await h.create_case(title=SCRIPT, party=SCRIPT)
    r = await h.api("POST", f"/api/v1/cases/{case['id']}/records", {
        "kind": "ex_officio_start", "fields": {
            "reason": SCRIPT, "case_source": SCRIPT, "party_info": "x", "case_facts": "x",
            "handler_opinion": "x", "unit_opinion": "x", "head_opinion": "x",
            "recorded_at": "2026-11-20T09:00:00+08:00"}})
    assert r.status_code == 201
    for url in (f"/cases/{case['id']}", "/cases", f"/cases?q={SCRIPT}"):
        page = await h.get(url)
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "onerror=alert" not in page.text.replace(
            "onerror=alert(1)&gt;", "")
        assert "&lt;script&gt;alert(" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_oversized_and_missing_fields(login):
    h = await login("handler_a")
    r = await h.api("POST", "/api/v1/cases", {"title": "x" * 201, "enforcement_type": "penalty",
                                              "start_mode": "ex_officio"})
    assert r.status_code == 400 and "格式不正确" in r.json()["detail"]
    r = await h.api("POST", "/api/v1/cases", {"enforcement_type": "penalty"})
    assert r.status_code == 400 and {e["field"] for e in r.json()["errors"]} >= {"title"}
    r = await h.api("POST", "/api/v1/cases", {"title": "", "enforcement_type": "penalty",
                                              "start_mode": "ex_officio"})
    assert r.status_code == 400 and r.json()["detail"] == "请填写案件名称。"
    r = await h.api("POST", "/api/v1/cases", {"title": "x", "enforcement_type": "bribery",
                                              "start_mode": "ex_officio"})
    assert r.status_code == 400 and "执法类型" in r.json()["detail"]
    cid = (await h.create_case())["id"]
    r = await h.api("POST", f"/api/v1/cases/{cid}/records", {
        "kind": "ex_officio_start", "fields": {"reason": "长" * 20001}})
    assert r.status_code == 400
    errs = {e["field"]: e for e in r.json()["errors"]}
    assert errs["reason"]["code"] == "too_long" and "超过最大长度" in errs["reason"]["message"]
    r = await h.api("POST", f"/api/v1/cases/{cid}/records", {"kind": "no_such", "fields": {}})
    assert r.status_code == 400 and "未知的记录类型" in r.json()["detail"]
    r = await h.c.post("/api/v1/cases", content=b"{not json", headers={
        **h.headers(), "content-type": "application/json"})
    assert r.status_code == 400 and "格式不正确" in r.json()["detail"]
    page = await h.post("/cases", {"title": "", "enforcement_type": "penalty",
                                   "start_mode": "ex_officio"})
    assert page.status_code == 400 and "请填写案件名称" in page.text


async def test_ids_and_paths_that_do_not_exist(login):
    h = await login("handler_a")
    assert (await h.get("/cases/abc")).status_code in (400, 404)
    r = await h.get("/cases/99999")
    assert r.status_code == 404 and "不存在" in r.text
    cid = (await h.create_case())["id"]
    r = await h.get(f"/cases/{cid}/records/424242")
    assert r.status_code == 404 and "不在本案中" in r.text
    r = await h.get(f"/cases/{cid}/records/new?kind=../../etc")
    assert r.status_code == 404 and "未知的记录类型" in r.text


async def test_upload_too_large_is_refused_before_reading(app, login):
    h = await login("handler_a")
    cid = (await h.create_case())["id"]
    limit = app.state.settings.max_upload_bytes
    r = await h.c.post(f"/cases/{cid}/attachments", content=b"x",
                       headers={"content-length": str(limit * 2), **h.headers(),
                                "content-type": "application/octet-stream"})
    assert r.status_code == 413 and "过大" in r.text


async def test_role_attempting_another_roles_action_is_audited(app, login):
    h = await login("handler_a")
    cid = (await h.create_case())["id"]
    r = await h.api("POST", f"/api/v1/cases/{cid}/archive")
    assert r.status_code == 403 and "党政办" in r.json()["detail"] or "归档" in r.json()["detail"]
    o = await login("officer_a")
    r = await o.api("POST", "/api/v1/users", {"name": "evil", "role": "agency_head",
                                             "password": "x" * 12})
    assert r.status_code == 403
    denied = [row for row in await audit_rows(app) if row[4].get("reason") == "role"]
    assert [row[2] for row in denied] == ["user:handler_a", "user:officer_a"]
    assert denied[0][4]["permission"] == "case.archive"


async def test_attachment_filename_is_sanitised(app, login):
    h = await login("handler_a")
    cid = (await h.create_case())["id"]
    files = {"file": ("../../<b>x</b>.html", io.BytesIO(b"<script>1</script>"), "text/html")}
    r = await h.c.post(f"/api/v1/cases/{cid}/attachments", files=files,
                       data={"media_type": "other_written"}, headers=h.headers())
    assert r.status_code == 201, r.text
    att = r.json()["id"].removeprefix("att-")
    got = await h.get(f"/cases/{cid}/attachments/{att}")
    # served as a download, never as HTML from our origin
    assert got.headers["content-type"].startswith("application/octet-stream")
    assert got.headers["content-disposition"].startswith("attachment")
    page = await h.get(f"/cases/{cid}")
    assert "b&gt;.html" in page.text and "<b>x" not in page.text  # path parts dropped


async def test_nul_characters_are_refused_in_chinese_on_every_database(login):
    """U+0000 in a search, a JSON field or a form field: a 400 saying why (PostgreSQL cannot
    store it; it used to end in a 500 there), and nothing written."""
    h = await login("handler_a")
    for url in ("/api/v1/cases", "/cases"):
        r = await h.get(url, params={"q": "a\x00b"})
        assert r.status_code == 400, (url, r.status_code)
        assert "空字符" in r.text
    before = (await h.get("/api/v1/cases")).json()
    r = await h.api("POST", "/api/v1/cases", {"title": "违法\x00占道", "enforcement_type":
                                              "penalty", "start_mode": "ex_officio"})
    assert r.status_code == 400 and "空字符" in r.json()["detail"]
    assert (await h.get("/api/v1/cases")).json() == before
