"""查阅 (第二十九条) through the admin service: a party's account sees nothing of its case until
the agency head approves a request, then only the approved items, only until the grant expires
or is revoked, and only while the confidentiality markings allow; every view and every refusal
is in the audit log. Pages and JSON API, on the real app and a real database file."""

from __future__ import annotations

import datetime as dt
import re

from support.admin_client import add_segment, audit_rows, user_id

CHINA = dt.timezone(dt.timedelta(hours=8))
WHEN = dt.datetime(2026, 11, 20, 9, 30, tzinfo=CHINA)
START = {
    "reason": "日常巡查发现", "case_source": "日常巡查", "party_info": "某餐馆",
    "case_facts": "占道经营", "handler_opinion": "建议立案", "unit_opinion": "同意",
    "head_opinion": "同意", "recorded_at": "2026-11-20T09:00:00+08:00",
}
CLIP_A = bytes(range(256)) * 20
CLIP_B = b"B" * 3000


async def _case_with_clips(app, login, tmp_path):
    """A case with a record and two linked clips; party_a linked to it by the agency head."""
    h = await login("handler_a")
    case = await h.create_case(officer_ids=[await user_id(app, "officer_a")])
    cid = case["id"]
    r = await h.api("POST", f"/api/v1/cases/{cid}/records", {"kind": "ex_officio_start",
                                                           "fields": START})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    segs = []
    for data, minutes in ((CLIP_A, 0), (CLIP_B, 10)):
        seg = await add_segment(app, tmp_path, "officer_a", WHEN + dt.timedelta(minutes=minutes),
                                data=data)
        r = await h.api("POST", f"/api/v1/cases/{cid}/clips", {"segment_id": seg})
        assert r.status_code == 201, r.text
        segs.append(seg)
    head = await login("agency_head")
    r = await head.api("PATCH", f"/api/v1/users/{await user_id(app, 'party_a')}",
                       {"party_case_ids": [cid], "persons": ["p:liu"]})
    assert r.status_code == 200 and r.json()["party_case_ids"] == [cid], r.text
    return h, head, cid, rid, segs


def _media(cid: int, seg: str) -> str:
    return f"/access/cases/{cid}/clips/{seg}/media"


def _request_id(resp) -> int:
    m = re.search(r"#req-(\d+)$", resp.headers["location"])
    assert m, resp.headers["location"]
    return int(m.group(1))


async def _views(app, actor: str) -> list[tuple[str, str, bool, str]]:
    """(type, item, allowed, code) of the view/download entries of ``actor``."""
    return [(t, d.get("item"), d.get("allowed"), d.get("code"))
            for _, t, a, _, d in await audit_rows(app) if a == actor and t in ("view", "download")]


async def test_party_sees_nothing_until_approved_then_only_the_granted_clip(app, login, tmp_path):
    h, head, cid, rid, (seg_a, seg_b) = await _case_with_clips(app, login, tmp_path)
    other = await h.create_case(title="另一案件")
    party = await login("party_a")

    # nothing of any case by default: no case list, no case page, no clip, no API
    for url in ("/cases", f"/cases/{cid}", "/findings", f"/cases/{cid}/clips/{seg_a}/media",
                "/api/v1/cases", f"/api/v1/cases/{cid}", f"/api/v1/cases/{cid}/findings"):
        r = await party.get(url)
        assert r.status_code == 403, (url, r.status_code)
    assert "当事人" in (await party.get(f"/api/v1/cases/{cid}")).json()["detail"]
    r = await party.get(f"/access/cases/{other['id']}")  # not their case
    assert r.status_code == 404
    page = await party.get(f"/access/cases/{cid}")
    assert page.status_code == 200 and "目前没有经同意可以查阅的内容" in page.text
    assert "占道经营" not in page.text and "某餐馆" not in page.text  # no record content
    r = await party.get(_media(cid, seg_a))
    assert r.status_code == 403 and "未经负责人同意" in r.text
    assert (await party.get(f"/access/cases/{cid}/records/{rid}")).status_code == 403

    # the party asks for both clips, for 5 days
    r = await party.post(f"/access/cases/{cid}/requests", {
        "purpose": "准备行政复议", "scope_mode": "items",
        "items": [f"segment:{seg_a}", f"segment:{seg_b}"], "days": "5"})
    assert r.status_code == 303, r.text
    req = _request_id(r)
    listing = await party.get("/access")
    assert "待审批" in listing.text and "准备行政复议" in listing.text
    assert (await party.get(_media(cid, seg_a))).status_code == 403  # pending is not consent

    # the agency head approves the first clip only
    page = await head.get("/access")
    assert page.status_code == 200 and f'id="req-{req}"' in page.text and "刘当事人" in page.text
    r = await head.post(f"/access/{req}/approve", {"scope_mode": "items",
                                                   "items": [f"segment:{seg_a}"]})
    assert r.status_code == 303, r.text

    listing = await party.get("/access")
    assert "已同意" in listing.text
    r = await party.get(_media(cid, seg_a), headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == CLIP_A[:100]
    # a download is the watermarked, C2PA-signed export (test_export_download.py), never the
    # raw clip: without a configured signer the party is told so, and gets no file
    r = await party.get(_media(cid, seg_a) + "?download=1")
    assert r.status_code == 303 and r.headers["location"].endswith(f"/clips/{seg_a}/export")
    r = await party.get(r.headers["location"])
    assert r.status_code == 200 and "未配置内容凭证" in r.text and "原始文件不提供下载" in r.text
    r = await party.post(f"/access/cases/{cid}/clips/{seg_a}/export")
    assert r.status_code == 409 and "未配置内容凭证" in r.text
    assert (await party.get(f"/access/cases/{cid}/clips/{seg_a}/export/file")).status_code == 404
    r = await party.get(_media(cid, seg_b))
    assert r.status_code == 403 and "不在批准范围内" in r.text
    r = await party.get(f"/access/cases/{cid}/records/{rid}")
    assert r.status_code == 403 and "不在批准范围内" in r.text
    page = await party.get(f"/access/cases/{cid}")
    assert _media(cid, seg_a) in page.text and _media(cid, seg_b) not in page.text

    # expired: the grant no longer opens anything
    from lerec.hub.db.trust_models import AccessRequest

    async with app.state.sessions() as s, s.begin():
        row = await s.get(AccessRequest, req)
        row.granted_until = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    r = await party.get(_media(cid, seg_a))
    assert r.status_code == 403 and "授权已过期" in r.text
    assert "已过期" in (await party.get("/access")).text

    # a new request, approved as asked, then revoked
    r = await party.post(f"/access/cases/{cid}/requests", {
        "purpose": "核对陈述申辩", "scope_mode": "items", "items": [f"segment:{seg_a}"],
        "days": "3"})
    req2 = _request_id(r)
    assert (await head.post(f"/access/{req2}/approve", {"scope_mode": "asked"})).status_code == 303
    assert (await party.get(_media(cid, seg_a))).status_code == 200
    r = await head.post(f"/access/{req2}/revoke", {"reason": ""})
    assert r.status_code == 400 and "理由" in r.text
    assert (await head.post(f"/access/{req2}/revoke", {"reason": "案件复查"})).status_code == 303
    r = await party.get(_media(cid, seg_a))
    assert r.status_code == 403 and "授权已撤销" in r.text
    listing = await party.get("/access")
    assert "已撤销" in listing.text and "案件复查" in listing.text

    # every view and download attempt, allowed or refused, is in the audit log
    seen = await _views(app, "user:party_a")
    a, b, rec = f"segment:{seg_a}", f"segment:{seg_b}", f"record:{rid}"
    assert seen == [
        ("view", a, False, "no_grant"), ("view", rec, False, "no_grant"),
        ("view", a, False, "no_grant"),
        ("view", a, True, "ok"),
        ("view", b, False, "out_of_scope"), ("view", rec, False, "out_of_scope"),
        ("view", a, False, "expired"),
        ("view", a, True, "ok"),
        ("view", a, False, "revoked"),
    ], seen
    denied = [d for _, t, a_, _, d in await audit_rows(app) if t == "access_denied"
              and a_ == "user:party_a"]
    assert {d["reason"] for d in denied} >= {"role", "case_scope"}


async def test_only_the_agency_head_decides_and_never_on_own_request(app, login, tmp_path):
    h, head, cid, rid, _ = await _case_with_clips(app, login, tmp_path)
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    r = await h.api("POST", f"/api/v1/cases/{cid}/access/requests",
                    {"purpose": "内部复核", "scope": ["*"], "until": until})
    assert r.status_code == 201 and r.json()["requester_kind"] == "official", r.text
    req = r.json()["id"]

    for name in ("unit_head", "legal", "handler_a", "archivist", "party_a"):
        b = await login(name)
        r = await b.api("POST", f"/api/v1/access/requests/{req}/approve", {})
        assert r.status_code == 403 and "无权" in r.json()["detail"], (name, r.text)
        r = await b.post(f"/access/{req}/approve", {})
        assert r.status_code == 403, name

    # the head may not approve their own request (logged as a refusal with the rule's code)
    r = await head.api("POST", f"/api/v1/cases/{cid}/access/requests",
                       {"purpose": "本人查阅", "scope": [f"record:{rid}"], "until": until})
    own = r.json()["id"]
    r = await head.api("POST", f"/api/v1/access/requests/{own}/approve", {})
    assert r.status_code == 403 and "不得审批本人的申请" in r.json()["detail"]
    page = await head.get("/access")
    assert "这是您本人的申请" in page.text
    assert any(d.get("reason") == "self_approval" for _, t, _, _, d in await audit_rows(app)
               if t == "access_denied")

    # a refusal needs a reason; the requester sees it
    r = await head.api("POST", f"/api/v1/access/requests/{req}/refuse", {"reason": "  "})
    assert r.status_code == 400 and "理由" in r.json()["detail"]
    r = await head.post(f"/access/{req}/refuse", {"reason": ""})
    assert r.status_code == 400
    r = await head.api("POST", f"/api/v1/access/requests/{req}/refuse",
                       {"reason": "与本人承办工作无关"})
    assert r.status_code == 200 and r.json()["status"] == "refused"
    mine = (await h.get("/api/v1/access/requests")).json()
    assert [(m["id"], m["status_zh"], m["reason"]) for m in mine] == [
        (req, "不同意", "与本人承办工作无关")]
    page = await h.get("/access")
    assert "不同意的理由" in page.text and "与本人承办工作无关" in page.text
    r = await head.api("POST", f"/api/v1/access/requests/{req}/approve", {})
    assert r.status_code == 409  # decided once
    # others' requests are not shown to a requester; the head and the auditor see all
    assert (await h.get(f"/api/v1/access/requests/{own}")).status_code == 404
    assert len((await (await login("auditor")).get("/api/v1/access/requests")).json()) == 2
    # decisions are audited
    kinds = [(t, d.get("decision")) for _, t, _, subj, d in await audit_rows(app)
             if f"access:{req}" in subj]
    assert kinds == [("access_request", None), ("approval", "refused")]


async def test_head_narrows_scope_and_expiry_never_widens(app, login, tmp_path):
    _, head, cid, rid, (seg_a, seg_b) = await _case_with_clips(app, login, tmp_path)
    party = await login("party_a")
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    r = await party.api("POST", f"/api/v1/cases/{cid}/access/requests", {
        "purpose": "行政诉讼", "scope": [f"segment:{seg_a}"], "until": until.isoformat()})
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    req = r.json()["id"]
    r = await head.api("POST", f"/api/v1/access/requests/{req}/approve",
                       {"scope": [f"segment:{seg_a}", f"segment:{seg_b}"]})
    assert r.status_code == 400 and "不得超出申请范围" in r.json()["detail"]
    r = await head.api("POST", f"/api/v1/access/requests/{req}/approve",
                       {"until": (until + dt.timedelta(days=1)).isoformat()})
    assert r.status_code == 400 and "不得超出申请期限" in r.json()["detail"]
    short = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    r = await head.api("POST", f"/api/v1/access/requests/{req}/approve",
                       {"until": short.isoformat(), "reason": "期限一天"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == "approved" and got["granted_scope"] == [f"segment:{seg_a}"]
    assert abs(dt.datetime.fromisoformat(got["granted_until"]) - short) < dt.timedelta(seconds=1)
    view = (await party.get(f"/api/v1/cases/{cid}/access")).json()
    allowed = {i["id"]: i["allowed"] for i in view["items"]}
    assert allowed == {f"record:{rid}": False, f"segment:{seg_a}": True,
                       f"segment:{seg_b}": False}
    # the request form refuses what the rules would: more than 30 days, no purpose, no scope
    for body, field in (({"purpose": "x", "scope_mode": "all", "days": "31"}, "until"),
                        ({"purpose": "", "scope_mode": "all", "days": "3"}, "purpose"),
                        ({"purpose": "x", "scope_mode": "items", "days": "3"}, "scope")):
        r = await party.post(f"/access/cases/{cid}/requests", body)
        assert r.status_code == 400 and "has-error" in r.text, field
    r = await party.api("POST", f"/api/v1/cases/{cid}/access/requests", {
        "purpose": "x", "scope": ["record:999999"], "until": until.isoformat()})
    assert r.status_code == 400 and "不属于本案" in r.json()["detail"]


async def test_party_reads_a_granted_record_through_api_and_page(app, login, tmp_path):
    _, head, cid, rid, _ = await _case_with_clips(app, login, tmp_path)
    party = await login("party_a")
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    req = (await party.api("POST", f"/api/v1/cases/{cid}/access/requests", {
        "purpose": "核对", "scope": ["*"], "until": until})).json()["id"]
    assert (await head.api("POST", f"/api/v1/access/requests/{req}/approve", {})).status_code == 200
    r = await party.get(f"/api/v1/cases/{cid}/access/records/{rid}")
    assert r.status_code == 200 and r.json()["fields"]["case_facts"] == "占道经营"
    page = await party.get(f"/access/cases/{cid}/records/{rid}")
    assert page.status_code == 200 and "占道经营" in page.text
    r = await party.get(f"/access/cases/{cid}/records/999999")
    assert r.status_code == 404
    rows = await audit_rows(app)
    assert [(t, d.get("allowed")) for _, t, a, _, d in rows
            if a == "user:party_a" and t == "view"] == [("view", True), ("view", True)]
    assert any(t == "access_denied" and d.get("reason") == "item_scope" for _, t, _, _, d in rows)
    # the party still has no case page and no staff route, even with a whole-case grant
    assert (await party.get(f"/cases/{cid}")).status_code == 403
    assert (await party.get(f"/cases/{cid}/records/{rid}")).status_code == 403


async def test_state_secret_and_privacy_markings(app, login, tmp_path):
    h, head, cid, rid, (seg_a, seg_b) = await _case_with_clips(app, login, tmp_path)
    party, other = await login("party_a"), await login("party_b")
    r = await head.api("PATCH", f"/api/v1/users/{await user_id(app, 'party_b')}",
                       {"party_case_ids": [cid], "persons": ["p:sun"]})
    assert r.status_code == 200
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()

    # setting 国家秘密 needs 涉密资格; parties never get it
    r = await h.api("PUT", f"/api/v1/cases/{cid}/markings",
                    {"item": f"segment:{seg_b}", "classes": ["state_secret"]})
    assert r.status_code == 403 and "涉密资格" in r.json()["detail"]
    r = await head.api("PATCH", f"/api/v1/users/{await user_id(app, 'party_a')}",
                       {"cleared_state_secret": True})
    assert r.status_code == 400 and "当事人" in r.json()["detail"]
    r = await head.api("PATCH", f"/api/v1/users/{await user_id(app, 'agency_head')}",
                       {"cleared_state_secret": True})
    assert r.status_code == 200 and r.json()["cleared_state_secret"] is True
    r = await head.api("PUT", f"/api/v1/cases/{cid}/markings",
                       {"item": f"segment:{seg_b}", "classes": ["state_secret"]})
    assert r.status_code == 200 and r.json()[0]["classes_zh"] == ["国家秘密"], r.text
    # the uncleared handler cannot lift it either, nor play the clip
    r = await h.api("PUT", f"/api/v1/cases/{cid}/markings",
                    {"item": f"segment:{seg_b}", "classes": []})
    assert r.status_code == 403
    r = await h.get(f"/cases/{cid}/clips/{seg_b}/media")
    assert r.status_code == 403 and "涉及国家秘密" in r.text
    page = await h.get(f"/cases/{cid}")
    assert "不能播放" in page.text and "国家秘密" in page.text

    # a party's request for it is refused by the rules, readably, and logged
    r = await party.api("POST", f"/api/v1/cases/{cid}/access/requests", {
        "purpose": "复议", "scope": [f"segment:{seg_b}"], "until": until})
    assert r.status_code == 201
    got = r.json()
    assert got["status"] == "refused" and got["refused_by_rules"] and got["rule_code"] == \
        "state_secret" and got["reason"] == "涉及国家秘密，当事人不得查阅"
    page = await party.get("/access")
    assert "涉及国家秘密，当事人不得查阅" in page.text
    view = (await party.get(f"/api/v1/cases/{cid}/access")).json()
    assert not view["whole_case_requestable"]
    assert {i["id"]: i["requestable"] for i in view["items"]}[f"segment:{seg_b}"] is False

    # a marking added after the approval still protects the item (R6)
    req = (await party.api("POST", f"/api/v1/cases/{cid}/access/requests", {
        "purpose": "复议", "scope": [f"segment:{seg_a}", f"record:{rid}"],
        "until": until})).json()["id"]
    assert (await head.api("POST", f"/api/v1/access/requests/{req}/approve", {})).status_code == 200
    assert (await party.get(_media(cid, seg_a))).status_code == 200
    r = await head.api("PUT", f"/api/v1/cases/{cid}/markings",
                       {"item": f"segment:{seg_a}", "classes": ["state_secret"]})
    assert r.status_code == 200
    r = await party.get(_media(cid, seg_a))
    assert r.status_code == 403 and "涉及国家秘密" in r.text

    # 个人隐私: the owner may see their own, another party may not
    r = await h.api("PUT", f"/api/v1/cases/{cid}/markings",
                    {"item": f"record:{rid}", "classes": ["personal_privacy"]})
    assert r.status_code == 400 and "权利人" in r.json()["detail"]
    r = await h.api("PUT", f"/api/v1/cases/{cid}/markings",
                    {"item": f"record:{rid}", "classes": ["personal_privacy"], "owner": "p:liu"})
    assert r.status_code == 200
    assert (await party.get(f"/access/cases/{cid}/records/{rid}")).status_code == 200
    r = await other.api("POST", f"/api/v1/cases/{cid}/access/requests", {
        "purpose": "查阅", "scope": [f"record:{rid}"], "until": until})
    assert r.json()["status"] == "refused" and r.json()["reason"] == "涉及他人个人隐私"
    marks = (await h.get(f"/api/v1/cases/{cid}/markings")).json()
    assert {m["item"]: m["classes_zh"] for m in marks} == {
        f"segment:{seg_a}": ["国家秘密"], f"segment:{seg_b}": ["国家秘密"],
        f"record:{rid}": ["个人隐私"]}
    seen = [(i, ok, code) for t, i, ok, code in await _views(app, "user:party_a")]
    assert seen[-2:] == [(f"segment:{seg_a}", False, "state_secret"),
                         (f"record:{rid}", True, "ok")]
    changed = [d for _, t, _, subj, d in await audit_rows(app)
               if t == "record_changed" and "confidentiality" in d]
    assert len(changed) == 3

    # officials without 涉密资格 do not see a state-secret record's content either
    r = await head.api("PUT", f"/api/v1/cases/{cid}/markings",
                       {"item": f"record:{rid}", "classes": ["state_secret"]})
    assert r.status_code == 200
    page = await h.get(f"/cases/{cid}")
    assert "记录内容已隐藏" in page.text and "占道经营" not in page.text
    rec = (await h.get(f"/api/v1/cases/{cid}")).json()["records"][0]
    assert rec["fields"] == {} and "国家秘密" in rec["withheld"]
    assert (await h.get(f"/cases/{cid}/records/{rid}")).status_code == 403
    assert (await h.get(f"/api/v1/cases/{cid}/records/{rid}/versions")).status_code == 403
    assert "占道经营" in (await head.get(f"/cases/{cid}")).text  # the cleared head does


async def test_case_page_offers_request_and_marking_and_party_lands_on_access(app, login,
                                                                             tmp_path):
    h, head, cid, _, _ = await _case_with_clips(app, login, tmp_path)
    page = await h.get(f"/cases/{cid}")
    assert "申请查阅" in page.text and f'action="/cases/{cid}/markings"' in page.text
    officer = await login("officer_a")
    page = await officer.get(f"/cases/{cid}")
    assert "申请查阅" in page.text and "/markings" not in page.text  # officers do not mark
    r = await h.post(f"/cases/{cid}/markings", {"item": "*", "classes": ["commercial_secret"],
                                                "owner": "91500101MA5U000000"})
    assert r.status_code == 303
    page = await h.get(f"/cases/{cid}")
    assert "商业秘密" in page.text and "91500101MA5U000000" in page.text
    r = await h.post(f"/cases/{cid}/markings", {"item": "*", "classes": ["commercial_secret"],
                                                "owner": "x"}, csrf=False)
    assert r.status_code == 403 and "CSRF" in r.text
    # a party logs in to 查阅申请, with its cases
    c = (await login("party_a")).c
    r = await c.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/access"
    page = await c.get("/access")
    assert "我的案件" in page.text and f"/access/cases/{cid}" in page.text
    assert ">案件<" not in page.text  # no case list in the navigation
    # the users page links a party to cases by case number
    cases = (await h.get("/api/v1/cases")).json()["cases"]
    case_no = next(c["case_no"] for c in cases if c["id"] == cid)
    party_b = await user_id(app, "party_b")
    r = await head.post(f"/users/{party_b}", {"action": "party", "cases": case_no,
                                              "persons": "p:sun 张三"})
    assert r.status_code == 303
    users = {u["name"]: u for u in (await head.get("/api/v1/users")).json()}
    assert users["party_b"]["party_case_ids"] == [cid]
    assert users["party_b"]["persons"] == ["p:sun", "张三"]
    r = await head.post(f"/users/{party_b}", {"action": "party", "cases": "NO-SUCH-CASE"})
    assert r.status_code == 400 and "不存在" in r.text
    r = await head.post(f"/users/{await user_id(app, 'handler_a')}",
                        {"action": "party", "cases": case_no})
    assert r.status_code == 400 and "当事人" in r.text


async def test_openapi_documents_the_access_api(app, login):
    h = await login("handler_a")
    schema = (await h.get("/api/openapi.json")).json()
    for path, method in (("/api/v1/cases/{case_id}/access/requests", "post"),
                         ("/api/v1/access/requests", "get"),
                         ("/api/v1/access/requests/{request_id}/approve", "post"),
                         ("/api/v1/access/requests/{request_id}/refuse", "post"),
                         ("/api/v1/access/requests/{request_id}/revoke", "post"),
                         ("/api/v1/cases/{case_id}/access", "get"),
                         ("/api/v1/cases/{case_id}/markings", "put")):
        op = schema["paths"][path][method]
        assert op["summary"] and "查阅" in "".join(op["tags"]), path
    assert "AccessRequestOut" in schema["components"]["schemas"]
    assert "AccessRequestIn" in schema["components"]["schemas"]


def test_the_party_migration_matches_the_models(tmp_path):
    """The new migration (0007_parties) creates exactly what the models declare."""
    import asyncio

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from lerec.hub.db import make_engine, migrate, sqlite_url
    from lerec.hub.db.models import Base

    async def diff():
        engine = make_engine(sqlite_url(tmp_path / "m.db"))
        try:
            await migrate(engine)
            async with engine.connect() as conn:
                return await conn.run_sync(lambda c: compare_metadata(
                    MigrationContext.configure(c), Base.metadata))
        finally:
            await engine.dispose()

    ours = [d for d in asyncio.run(diff())
            if "case_parties" in repr(d) or "persons" in repr(d) or "cleared_state" in repr(d)]
    assert ours == []
