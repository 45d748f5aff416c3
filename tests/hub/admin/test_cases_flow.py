"""Carrying cases through the regulation: start modes, not starting, records validated by the
rulebook, history kept, stages in order, approvals, archiving, who sees what."""

from __future__ import annotations

from support.admin_client import audit_rows, user_id

START = {
    "reason": "日常巡查发现", "case_source": "日常巡查", "party_info": "某餐馆",
    "case_facts": "占道经营", "handler_opinion": "建议立案", "unit_opinion": "同意",
    "head_opinion": "同意", "recorded_at": "2026-11-20T09:00:00+08:00",
}
INSPECTION = {
    "inspected_at": "2026-11-21T09:30:00+08:00", "place": "滨江路18号", "target": "premises",
    "inspectors": "张执法", "party_or_witness": "刘某", "findings": "桌椅 12 张占道",
}


async def test_application_case_records_acceptance_and_corrections(login):
    h = await login("handler_a")
    case = await h.create_case(start_mode="application", enforcement_type="licensing")
    r = await h.api("POST", f"/api/v1/cases/{case['id']}/records", {
        "kind": "application", "fields": {
            "applicant": "张某", "application_form": "oral", "applied_at": "2026-11-20T09:00:00+08:00",
            "content": "申请临时占道", "acceptance": "rejected", "acceptance_reason": "不属于本机关职权",
            "on_site_correction": "当场更正申请人姓名", "supplement": "无",
            "recorded_at": "2026-11-20T09:30:00+08:00"}})
    assert r.status_code == 201, r.text
    # 不予受理 closes the case as not started (第六条), with the reason
    got = (await h.get(f"/api/v1/cases/{case['id']}")).json()["case"]
    assert got["not_started"] is True and got["status"] == "不启动"
    page = await h.get(f"/cases/{case['id']}")
    assert "不予受理：不属于本机关职权" in page.text
    # a record kind of another start mode is refused with the article
    r = await h.api("POST", f"/api/v1/cases/{case['id']}/records",
                    {"kind": "ex_officio_start", "fields": START})
    assert r.status_code == 409 and "只适用于依职权启动" in r.json()["detail"]


async def test_periodic_refresh_re_evaluates_open_cases(app, login):  # noqa: ANN001
    from lerec.hub.admin.views import refresh_all

    h = await login("handler_a")
    await h.create_case()
    await h.create_case()
    assert await refresh_all(app) == 2


async def test_ex_officio_case_missing_record_becomes_a_finding_after_the_stage(login):
    h = await login("handler_a")
    case = await h.create_case()
    cid = case["id"]
    d = (await h.get(f"/api/v1/cases/{cid}")).json()
    assert not [f for f in d["findings"] if f["severity"] == "error"]
    r = await h.api("POST", f"/api/v1/cases/{cid}/stage", {"to": "investigation"})
    assert r.status_code == 200
    d = (await h.get(f"/api/v1/cases/{cid}")).json()
    missing = [f for f in d["findings"] if f["code"] == "missing_record"]
    assert missing and missing[0]["article"] == 7 and "依职权启动审批记录" in missing[0]["message"]
    r = await h.api("POST", f"/api/v1/cases/{cid}/records", {"kind": "ex_officio_start",
                                                          "fields": START})
    assert r.status_code == 201
    d = (await h.get(f"/api/v1/cases/{cid}")).json()
    assert not [f for f in d["findings"] if f["code"] == "missing_record" and f["article"] == 7]
    # stages only in order
    r = await h.api("POST", f"/api/v1/cases/{cid}/stage", {"to": "service_execution"})
    assert r.status_code == 409 and "按顺序推进" in r.json()["detail"]
    # a record of a later stage is not yet possible
    r = await h.api("POST", f"/api/v1/cases/{cid}/records", {"kind": "direct_service",
                                                          "fields": {}})
    assert r.status_code == 409 and "请先推进案件环节" in r.json()["detail"]


async def test_complaint_not_started_needs_the_notice(login):
    h = await login("handler_a")
    case = await h.create_case(start_mode="complaint", facts=["real_name_complaint"])
    cid = case["id"]
    r = await h.api("POST", f"/api/v1/cases/{cid}/not-start", {"note": "不属于违法行为"})
    assert r.status_code == 200 and r.json()["not_started"] is True
    codes = {(f["kind_id"], f["article"]) for f in
             (await h.get(f"/api/v1/cases/{cid}")).json()["findings"]}
    assert ("complaint_not_started_notice", 8) in codes and ("complaint", 8) in codes
    r = await h.api("POST", f"/api/v1/cases/{cid}/records", {
        "kind": "complaint_not_started_notice", "fields": {
            "review_result": "经审查不属于违法行为", "notified_person": "李某",
            "notice_details": "电话告知", "notified_at": "2026-11-22T10:00:00+08:00"}})
    assert r.status_code == 201
    r = await h.api("POST", f"/api/v1/cases/{cid}/stage", {"to": "investigation"})
    assert r.status_code == 409 and "不启动" in r.json()["detail"]


async def test_invalid_record_is_refused_with_chinese_field_messages(login):
    h = await login("handler_a")
    cid = (await h.create_case())["id"]
    r = await h.api("POST", f"/api/v1/cases/{cid}/records", {
        "kind": "ex_officio_start", "fields": {**START, "reason": "", "bogus": "x",
                                               "recorded_at": "昨天"}})
    assert r.status_code == 400
    body = r.json()
    assert "未通过校验" in body["detail"]
    by_field = {e["field"]: e for e in body["errors"]}
    assert by_field["reason"]["code"] == "required" and "必填" in by_field["reason"]["message"]
    assert by_field["bogus"]["code"] == "unknown_field"
    assert by_field["recorded_at"]["code"] == "invalid_type"
    # the HTML form re-renders with the messages next to the fields
    r = await h.post(f"/cases/{cid}/records", {"kind": "ex_officio_start", "f_reason": ""})
    assert r.status_code == 400 and "「启动原因」为必填项" in r.text and "<form" in r.text


async def test_changes_keep_every_version_and_are_audited(app, login):
    h = await login("handler_a")
    cid = (await h.create_case())["id"]
    rid = (await h.api("POST", f"/api/v1/cases/{cid}/records",
                       {"kind": "ex_officio_start", "fields": START})).json()["id"]
    r = await h.api("PUT", f"/api/v1/cases/{cid}/records/{rid}",
                    {"fields": {**START, "case_facts": "占道经营，已劝离"}, "reason": ""})
    assert r.status_code == 400 and "修改原因" in r.json()["detail"]
    r = await h.api("PUT", f"/api/v1/cases/{cid}/records/{rid}",
                    {"fields": {**START, "case_facts": "占道经营，已劝离"}, "reason": "补充案情",
                     "version": 1})
    assert r.status_code == 200 and r.json()["version"] == 2
    r = await h.api("PUT", f"/api/v1/cases/{cid}/records/{rid}",
                    {"fields": {**START, "case_facts": "又改"}, "reason": "x", "version": 1})
    assert r.status_code == 409 and "已被他人修改" in r.json()["detail"]
    versions = (await h.get(f"/api/v1/cases/{cid}/records/{rid}/versions")).json()
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["fields"]["case_facts"] == "占道经营"
    assert versions[1]["reason"] == "补充案情"
    page = await h.get(f"/cases/{cid}/records/{rid}")
    assert "第 1 版" in page.text and "第 2 版" in page.text and "补充案情" in page.text
    changed = [row for row in await audit_rows(app, "record_changed")
               if f"record:{rid}" in row[3]]
    assert changed and list(changed[0][4]["fields"]) == ["case_facts"]
    created = [row for row in await audit_rows(app, "record_created") if f"case:{cid}" in row[3]]
    assert len(created) == 2  # the case and the record


async def test_html_flow_new_case_record_and_stage(login):
    h = await login("handler_a")
    r = await h.post("/cases", {"title": "网页立案", "enforcement_type": "penalty",
                                "start_mode": "ex_officio", "party": "某某"})
    assert r.status_code == 303
    url = r.headers["location"]
    cid = int(url.rsplit("/", 1)[1])
    form = {"kind": "ex_officio_start", **{f"f_{k}": v for k, v in START.items()}}
    form["f_recorded_at"] = "2026-11-20T09:00"  # what <input type=datetime-local> sends
    r = await h.post(f"/cases/{cid}/records", form)
    assert r.status_code == 303, r.text
    r = await h.post(f"/cases/{cid}/stage", {"to": "investigation"})
    assert r.status_code == 303
    page = await h.get(url)
    assert "依职权启动审批记录" in page.text and "2026-11-20 09:00" in page.text
    assert "当前环节" in page.text


async def test_scope_officers_and_handlers_see_only_their_cases(app, login):
    h = await login("handler_a")
    officer_a = await user_id(app, "officer_a")
    mine = await h.create_case(officer_ids=[officer_a])
    other_h = await login("handler_b")
    other = await other_h.create_case(title="别人的案件")
    oa = await login("officer_a")
    ob = await login("officer_b")
    assert (await oa.get(f"/api/v1/cases/{mine['id']}")).status_code == 200
    for b, cid in ((ob, mine["id"]), (oa, other["id"]), (h, other["id"])):
        r = await b.get(f"/api/v1/cases/{cid}")
        assert r.status_code == 404 and "无权查看" in r.json()["detail"]
        r = await b.get(f"/cases/{cid}")
        assert r.status_code == 404 and "无权查看" in r.text
    listed = {c["id"] for c in (await oa.get("/api/v1/cases")).json()["cases"]}
    assert listed == {mine["id"]}
    for role_user in ("auditor", "agency_head"):
        b = await login(role_user)
        listed = {c["id"] for c in (await b.get("/api/v1/cases")).json()["cases"]}
        assert {mine["id"], other["id"]} <= listed
    denied = [row for row in await audit_rows(app) if row[4].get("reason") == "case_scope"]
    assert len(denied) == 6 and {row[2] for row in denied} == {
        "user:officer_b", "user:officer_a", "user:handler_a"}


async def test_auditor_reads_but_cannot_write(login):
    h = await login("handler_a")
    cid = (await h.create_case())["id"]
    a = await login("auditor")
    assert (await a.get(f"/cases/{cid}")).status_code == 200
    r = await a.api("POST", f"/api/v1/cases/{cid}/records", {"kind": "ex_officio_start",
                                                          "fields": START})
    assert r.status_code == 403


async def test_approval_and_archive_by_their_roles(app, login):
    h = await login("handler_a")
    cid = (await h.create_case())["id"]
    rid = (await h.api("POST", f"/api/v1/cases/{cid}/records",
                       {"kind": "ex_officio_start", "fields": START})).json()["id"]
    head = await login("agency_head")
    r = await head.api("POST", f"/api/v1/cases/{cid}/approvals",
                       {"record_id": rid, "decision": "approve", "opinion": "同意立案"})
    assert r.status_code == 201
    assert (await audit_rows(app, "approval"))[-1][2] == "user:agency_head"
    arch = await login("archivist")
    r = await arch.api("POST", f"/api/v1/cases/{cid}/archive")
    assert r.status_code == 409 and "归档管理" in r.json()["detail"]
    for stage in ("investigation", "decision", "service_execution", "archive"):
        assert (await h.api("POST", f"/api/v1/cases/{cid}/stage", {"to": stage})).status_code == 200
    r = await arch.api("POST", f"/api/v1/cases/{cid}/archive")
    assert r.status_code == 200 and r.json()["archived_at"]
    r = await h.api("PUT", f"/api/v1/cases/{cid}/records/{rid}",
                    {"fields": START | {"reason": "改"}, "reason": "改"})
    assert r.status_code == 409 and "已归档" in r.json()["detail"]
    assert (await audit_rows(app, "archive"))[-1][2] == "user:archivist"


async def test_case_list_filters_and_search(login):
    h = await login("handler_a")
    a = await h.create_case(title="占道经营案", party="刘某")
    b = await h.create_case(title="违法建设案", enforcement_type="coercion")
    await h.api("POST", f"/api/v1/cases/{b['id']}/stage", {"to": "investigation"})

    async def ids(q: str) -> set[int]:
        return {c["id"] for c in (await h.get(f"/api/v1/cases?{q}")).json()["cases"]}

    assert await ids("q=刘某") == {a["id"]}
    assert await ids("type=coercion") == {b["id"]}
    assert await ids("stage=investigation") == {b["id"]}
    assert await ids("has_findings=true") == {b["id"]}  # 第七条 record missing
    assert await ids("has_findings=false") == {a["id"]}
    page = await h.get("/cases?q=违法建设", headers={"HX-Request": "true"})
    assert "违法建设案" in page.text and "占道经营案" not in page.text and "<html" not in page.text
    page = await h.get("/cases?has_findings=yes")
    assert "违规 1" in page.text
