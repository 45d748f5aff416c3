"""保存期满 in the admin service: an old, unlinked recording is a deletion candidate, a linked
one never is; the archivist asks, two different people agree, the deletion removes the object
from the app's real blob store and leaves a permanent record and audit entries. Only
retention.manage may act, never without the CSRF token. The retention settings come from
AdminSettings (hub.toml ``[oversight]``); the ingest daemon finishes, at start-up, a deletion
whose record committed but whose object is still in the store."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from support.admin import admin_app
from support.admin_client import audit_rows, in_process_client
from support.retention import OLD, old_segment, request_id_of, stored_ref

from lerec.hub.db.models import Segment
from lerec.hub.db.oversight_models import SegmentDeletion
from lerec.hub.oversight.settings import OversightSettings


async def test_old_unlinked_segment_is_a_candidate_and_a_linked_one_never_is(app, login,
                                                                            tmp_path):
    free = await old_segment(app, tmp_path)
    linked = await old_segment(app, tmp_path, OLD + dt.timedelta(hours=1))
    recent = await old_segment(app, tmp_path, dt.timedelta(days=10))
    handler = await login("handler_a")
    case = await handler.create_case()
    r = await handler.api("POST", f"/api/v1/cases/{case['id']}/clips", {"segment_id": linked})
    assert r.status_code == 201, r.text

    archivist = await login("archivist")
    page = await archivist.get("/retention")
    assert page.status_code == 200
    assert f'id="cand-{free}"' in page.text
    assert f'id="cand-{linked}"' not in page.text and f'id="cand-{recent}"' not in page.text
    assert "未关联任何案件" in page.text and "184 天" in page.text and "申请删除" in page.text

    r = await archivist.post("/retention/requests", {"segment_id": linked, "reason": "无内容"})
    assert r.status_code == 409
    assert "已关联案件" in r.text and "不得删除" in r.text
    r = await archivist.api("POST", "/api/v1/retention/requests",
                            {"segment_id": recent, "reason": "无内容"})
    assert r.status_code == 409 and "须保存至" in r.json()["detail"], r.text
    r = await archivist.post("/retention/requests", {"segment_id": free, "reason": ""})
    assert r.status_code == 400 and "必须填写说明" in r.text


async def test_request_two_different_approvals_execute_and_record(app, login, tmp_path):
    victim = await old_segment(app, tmp_path)
    keep = await old_segment(app, tmp_path, device="rec-r2")
    ref = await stored_ref(app, victim)
    blob = app.state.store.path_for(ref)
    assert blob.exists()

    archivist = await login("archivist")
    r = await archivist.post("/retention/requests", {"segment_id": victim,
                                                     "reason": "误录，无执法内容"})
    assert r.status_code == 303, r.text
    page = (await archivist.get("/retention")).text
    rid = request_id_of(page, victim)
    assert "执行删除" in page and "还需 2 名其他人员同意" in page
    # a second request for the same segment is refused
    r = await archivist.post("/retention/requests", {"segment_id": victim, "reason": "再次"})
    assert r.status_code == 409 and "已有待审批的删除申请" in r.text

    r = await archivist.post(f"/retention/requests/{rid}/approve", {"note": "同意"})
    assert r.status_code == 303, r.text
    r = await archivist.post(f"/retention/requests/{rid}/approve", {"note": "再同意"})
    assert r.status_code == 409 and "两名不同人员" in r.text
    page = (await archivist.get("/retention")).text
    assert "您已同意该申请，还需 1 名其他人员同意" in page
    assert "暂不能执行删除：还需 1 名其他人员同意" in page
    r = await archivist.post(f"/retention/requests/{rid}/execute")
    assert r.status_code == 409 and "目前有效审批1人" in r.text
    assert blob.exists()

    head = await login("agency_head")
    r = await head.post(f"/retention/requests/{rid}/approve", {})
    assert r.status_code == 303, r.text
    page = (await head.get("/retention")).text
    assert f'action="/retention/requests/{rid}/execute"' in page
    assert "已经 2 名不同人员同意，可以执行删除" in page
    r = await head.post(f"/retention/requests/{rid}/execute")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/retention#deleted-{victim}"

    assert not blob.exists(), "the object left the app's blob store"
    assert app.state.store.path_for(await stored_ref(app, keep)).exists()
    async with app.state.sessions() as s:
        rec = await s.get(SegmentDeletion, victim)
        seg = await s.get(Segment, victim)
    assert (rec.device_id, rec.seq, rec.sha256, rec.why) == (
        "rec-r1", seg.seq, seg.sha256, "误录，无执法内容")
    assert (rec.requested_by, rec.approved_by, rec.deleted_by) == (
        "archivist", "agency_head,archivist", "agency_head")
    assert rec.blob_deleted_at is not None

    page = (await archivist.get("/retention")).text
    row = page[page.index(f'id="deleted-{victim}"'):]
    row = row[:row.index("</tr>")]
    for text in (seg.sha256, "误录，无执法内容", "吴党政办（archivist）", "周镇长（agency_head）",
                 "rec-r1"):
        assert text in row, text
    assert f'id="cand-{victim}"' not in page and f'id="del-req-{rid}"' not in page

    rows = await audit_rows(app)
    deletion = [d for _, t, a, subj, d in rows if t == "deletion"]
    assert len(deletion) == 1 and deletion[0]["why"] == "误录，无执法内容"
    assert list(deletion[0]["approved_by"]) == ["agency_head", "archivist"]
    assert [a for _, t, a, subj, d in rows if t == "deletion"] == ["user:agency_head"]
    approvals = [a for _, t, a, subj, d in rows
                 if t == "approval" and d.get("action") == "deletion_approved"]
    assert approvals == ["user:archivist", "user:agency_head"]
    assert any(d.get("action") == "deletion_requested" and a == "user:archivist"
               for _, t, a, subj, d in rows)


async def test_withdraw_needs_a_reason_and_closes_the_request(app, login, tmp_path):
    seg = await old_segment(app, tmp_path)
    archivist = await login("archivist")
    r = await archivist.api("POST", "/api/v1/retention/requests",
                            {"segment_id": seg, "reason": "无执法内容"})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    r = await archivist.post(f"/retention/requests/{rid}/withdraw", {"reason": ""})
    assert r.status_code == 400
    r = await archivist.post(f"/retention/requests/{rid}/withdraw", {"reason": "仍需保留"})
    assert r.status_code == 303
    page = (await archivist.get("/retention")).text
    assert f'id="del-req-{rid}"' not in page and f'id="cand-{seg}"' in page
    r = await archivist.api("POST", f"/api/v1/retention/requests/{rid}/approve", {})
    assert r.status_code == 409 and "已结束" in r.json()["detail"]


async def test_only_retention_manage_may_act_and_never_without_csrf(app, login, tmp_path):
    seg = await old_segment(app, tmp_path)
    auditor = await login("auditor")
    page = await auditor.get("/retention")
    assert page.status_code == 200 and f'id="cand-{seg}"' in page.text
    assert "您的角色只能查看" in page.text
    r = await auditor.post("/retention/requests", {"segment_id": seg, "reason": "x"})
    assert r.status_code == 403 and "无权" in r.text
    r = await auditor.api("POST", "/api/v1/retention/requests", {"segment_id": seg, "reason": "x"})
    assert r.status_code == 403
    handler = await login("handler_a")
    assert (await handler.get("/retention")).status_code == 403
    assert (await handler.api("GET", "/api/v1/retention")).status_code == 403

    archivist = await login("archivist")
    r = await archivist.post("/retention/requests", {"segment_id": seg, "reason": "x"},
                             csrf=False)
    assert r.status_code == 403 and "CSRF" in r.text
    r = await archivist.api("POST", "/api/v1/retention/requests",
                            {"segment_id": seg, "reason": "x"}, csrf=False)
    assert r.status_code == 403
    assert (await archivist.api("GET", "/api/v1/retention")).json()["requests"] == []
    denied = [d for _, _, _, _, d in await audit_rows(app) if d.get("outcome") == "denied"]
    assert {d["reason"] for d in denied} == {"role", "csrf"}


async def test_json_api_round_trip(app, login, tmp_path):
    seg = await old_segment(app, tmp_path)
    archivist, head = await login("archivist"), await login("agency_head")
    data = (await archivist.api("GET", "/api/v1/retention")).json()
    assert data["settings"] == {"keep_unlinked_days": 184, "required_approvals": 2,
                                "officer_may_approve": False}
    cand = {c["segment_id"]: c for c in data["candidates"]}[seg]
    assert cand["device_id"] == "rec-r1" and cand["length"] > 0 and cand["open_request"] is None

    r = await archivist.api("POST", "/api/v1/retention/requests",
                            {"segment_id": seg, "reason": "测试录像"})
    assert r.status_code == 201, r.text
    req = r.json()
    assert (req["status"], req["action"], req["needed"]) == ("open", "eligible", 2)
    r = await archivist.api("POST", f"/api/v1/retention/requests/{req['id']}/approve", {})
    assert r.status_code == 200 and r.json()["needed"] == 1, r.text
    r = await archivist.api("POST", f"/api/v1/retention/requests/{req['id']}/approve", {})
    assert r.status_code == 409
    r = await head.api("POST", f"/api/v1/retention/requests/{req['id']}/execute")
    assert r.status_code == 409 and "目前有效审批1人" in r.json()["detail"]
    r = await head.api("POST", f"/api/v1/retention/requests/{req['id']}/approve",
                       {"note": "核实无误"})
    assert r.status_code == 200 and r.json()["action"] == "delete", r.text
    assert [a["approver"] for a in r.json()["approvals"]] == ["archivist", "agency_head"]
    r = await head.api("POST", f"/api/v1/retention/requests/{req['id']}/execute")
    assert r.status_code == 200, r.text
    rec = r.json()
    assert (rec["segment_id"], rec["why"], rec["requested_by"], rec["deleted_by"]) == (
        seg, "测试录像", "archivist", "agency_head")
    assert rec["approved_by"] == ["agency_head", "archivist"] and rec["blob_deleted_at"]
    r = await head.api("POST", f"/api/v1/retention/requests/{req['id']}/execute")
    assert r.status_code == 409

    data = (await archivist.api("GET", "/api/v1/retention")).json()
    assert seg not in {c["segment_id"] for c in data["candidates"]}
    assert data["requests"] == []
    assert [d["segment_id"] for d in data["deletions"]] == [seg]
    assert data["deletions"][0]["sha256"] == rec["sha256"]
    r = await archivist.api("POST", "/api/v1/retention/requests/999999/approve", {})
    assert r.status_code == 404 and "删除申请" in r.json()["detail"]


async def test_the_admin_applies_its_configured_retention_period(database_url, tmp_path):
    from support.admin import PASSWORD
    from support.admin_client import Browser

    short = OversightSettings(keep_unlinked_for=dt.timedelta(days=3))
    application = admin_app(database_url, tmp_path / "store", oversight=short)
    async with application.router.lifespan_context(application):
        seg = await old_segment(application, tmp_path, dt.timedelta(days=5))
        b = Browser(in_process_client(application))
        await b.login("archivist", PASSWORD)
        page = (await b.get("/retention")).text
        assert f'id="cand-{seg}"' in page and "保存 3 天" in page
        r = await b.api("POST", "/api/v1/retention/requests", {"segment_id": seg, "reason": "x"})
        assert r.status_code == 201, r.text
        await b.c.aclose()


async def test_daemon_start_up_finishes_a_half_done_deletion(app, login, tmp_path, pki,
                                                             broker, database_url):
    """The record committed, then the process died before the object left the store: the
    ingest daemon removes it when it starts, and uses the configured [oversight] settings."""
    from support.rig import hub_config

    from lerec.hub.config import OversightConfig
    from lerec.hub.daemon.service import HubService
    from lerec.hub.oversight import approve_deletion, execute_deletion, request_deletion

    seg = await old_segment(app, tmp_path)
    blob = app.state.store.path_for(await stored_ref(app, seg))

    class Crash(Exception):
        pass

    class DiesBeforeRemoving:
        async def delete(self, ref: str) -> None:
            raise Crash(ref)

    async with app.state.sessions() as s, s.begin():
        req = await request_deletion(s, seg, "archivist", "误录")
        await approve_deletion(s, req.id, "archivist")
        await approve_deletion(s, req.id, "agency_head")
    try:
        await execute_deletion(app.state.sessions, req.id, DiesBeforeRemoving(), "agency_head")
    except Crash:
        pass
    async with app.state.sessions() as s:
        rec = await s.get(SegmentDeletion, seg)
        assert rec is not None and rec.blob_deleted_at is None
    assert blob.exists()

    cfg = hub_config(pki, broker.port, tmp_path, database_url=database_url,
                     client_id="lerec-hub-retention",
                     oversight=OversightConfig(retention_days=30, upload_working_days=3))
    assert str(blob).startswith(str(cfg.storage_dir))  # the hub's store is the admin's
    async with HubService(cfg) as hub:
        assert hub.oversight.settings.keep_unlinked_for == dt.timedelta(days=30)
        assert hub.oversight.settings.upload_working_days == 3
        assert not blob.exists(), "start-up removed the object of the committed deletion"
    async with app.state.sessions() as s:
        rec = (await s.execute(select(SegmentDeletion).where(
            SegmentDeletion.segment_id == seg).execution_options(populate_existing=True))
        ).scalar_one()
        assert rec.blob_deleted_at is not None
