"""保存期满 at its edges: an object a case attachment shares survives its segment's deletion; the
recording officer cannot approve under a login that differs from the officer id; a store that
fails during the deletion leaves the record and a note, not a 500; out-of-range ids and odd
digits are refused as bad input."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import select, update
from support.admin_client import add_segment, audit_rows

from lerec.hub.db.cases_models import User
from lerec.hub.db.models import Segment
from lerec.hub.db.oversight_models import SegmentDeletion

OLD = dt.timedelta(days=200)  # past the default retention period (184 days)


async def _old(app, tmp_path, data: bytes, officer: str = "officer_a", device: str = "rec-e1"):
    return await add_segment(app, tmp_path, officer, dt.datetime.now(dt.UTC) - OLD,
                             device=device, data=data)


async def _approved(login, segment_id: str) -> tuple[object, int]:
    """Requested by the archivist, approved by the archivist and the agency head."""
    archivist = await login("archivist")
    r = await archivist.api("POST", "/api/v1/retention/requests",
                            {"segment_id": segment_id, "reason": "误录"})
    assert r.status_code in (200, 201), r.text
    rid = r.json()["id"]
    for who in (archivist, await login("agency_head")):
        r = await who.api("POST", f"/api/v1/retention/requests/{rid}/approve", {"note": ""})
        assert r.status_code == 200, r.text
    return archivist, rid


async def test_an_object_a_case_attachment_shares_is_kept(app, login, tmp_path):
    data = b"\xff\xd8\xff the same bytes as a photo attached to a case"
    sid = await _old(app, tmp_path, data)
    handler = await login("handler_a")
    cid = (await handler.create_case())["id"]
    r = await handler.c.post(f"/api/v1/cases/{cid}/attachments", headers=handler.headers(),
                             files={"file": ("照片.jpg", data, "image/jpeg")},
                             data={"media_type": "photo"})
    assert r.status_code == 201, r.text
    att = r.json()
    ref = "sha256:" + hashlib.sha256(data).hexdigest()

    archivist, rid = await _approved(login, sid)
    r = await archivist.api("POST", f"/api/v1/retention/requests/{rid}/execute")
    assert r.status_code == 200, r.text
    async with app.state.sessions() as s:
        rec = await s.get(SegmentDeletion, sid)
    assert rec is not None and rec.blob_note == "内容与案件附件相同，存储对象保留"
    assert await app.state.store.exists(ref), "the case attachment's file is still there"
    got = await handler.get(f"/cases/{cid}/attachments/{att['id'][4:]}")  # ("att:<n>")
    assert got.status_code == 200 and got.content == data


async def test_the_recording_officer_cannot_approve_under_another_login(app, login, tmp_path):
    """The archivist is also officer zf-0042 (执法证号), who recorded the segment: the login
    name differs from the officer id, and the approval is still refused."""
    sid = await _old(app, tmp_path, b"recorded by zf-0042", officer="zf-0042", device="rec-e2")
    async with app.state.sessions() as s, s.begin():
        await s.execute(update(User).where(User.name == "archivist").values(officer_id="zf-0042"))
    archivist = await login("archivist")
    r = await archivist.api("POST", "/api/v1/retention/requests",
                            {"segment_id": sid, "reason": "误录"})
    rid = r.json()["id"]
    r = await archivist.api("POST", f"/api/v1/retention/requests/{rid}/approve", {"note": ""})
    assert r.status_code == 409 and "录制该记录的执法人员" in r.json()["detail"], r.text
    page = (await archivist.get("/retention")).text
    assert "您是录制该记录的执法人员，不能审批删除" in page


async def test_a_store_failure_leaves_the_record_and_a_note(app, login, tmp_path, monkeypatch):
    sid = await _old(app, tmp_path, b"the store is down when this one goes", device="rec-e3")
    archivist, rid = await _approved(login, sid)

    async def broken(ref: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(app.state.store, "delete", broken)
    r = await archivist.api("POST", f"/api/v1/retention/requests/{rid}/execute")
    assert r.status_code == 200, r.text
    async with app.state.sessions() as s:
        rec = await s.get(SegmentDeletion, sid)
        ref = (await s.execute(select(Segment.stored_ref).where(
            Segment.segment_id == sid))).scalar_one()
    assert rec.blob_deleted_at is None and "存储对象删除失败" in rec.blob_note
    assert await app.state.store.exists(ref)  # left for the hub's start-up purge


async def test_out_of_range_ids_and_odd_digits_are_bad_input(app, login):
    archivist = await login("archivist")
    for rid in (0, 2**31, 2**63):
        r = await archivist.api("POST", f"/api/v1/retention/requests/{rid}/approve",
                                {"note": ""})
        assert r.status_code == 400, (rid, r.status_code)
        r = await archivist.post(f"/retention/requests/{rid}/withdraw", {"reason": "x"})
        assert r.status_code == 400, (rid, r.status_code)
    page = await archivist.get("/calendar", params={"year": "²⁰²⁷"})
    assert page.status_code == 200
    r = await archivist.post("/calendar/years/declare", {"year": "２０２７"})
    assert r.status_code == 400 and "年度" in r.text


async def test_linking_a_segment_closes_its_open_deletion_request(app, login, tmp_path):
    """A segment that becomes case evidence while a deletion request waits: the request is
    closed by the hub, saying why, instead of waiting for approvals that can lead nowhere."""
    sid = await _old(app, tmp_path, b"linked while its deletion was asked", device="rec-e4")
    archivist = await login("archivist")
    r = await archivist.api("POST", "/api/v1/retention/requests",
                            {"segment_id": sid, "reason": "误录"})
    rid = r.json()["id"]
    handler = await login("handler_a")
    case = await handler.create_case()
    r = await handler.api("POST", f"/api/v1/cases/{case['id']}/clips", {"segment_id": sid})
    assert r.status_code == 201, r.text
    overview = (await archivist.get("/api/v1/retention")).json()
    assert all(q["id"] != rid for q in overview["requests"]), "still listed as open"
    r = await archivist.api("POST", f"/api/v1/retention/requests/{rid}/approve", {"note": ""})
    assert r.status_code == 409 and "已关联案件" in r.json()["detail"], r.text
    rows = await audit_rows(app)
    closed = [(a, d) for _, t, a, subj, d in rows
              if d.get("action") == "deletion_withdrawn" and f"deletion_request:{rid}" in subj]
    assert len(closed) == 1 and closed[0][0] == "hub" and "关联案件" in closed[0][1]["reason"]


async def test_an_unassigned_recording_may_be_approved_by_people_without_an_officer_id(
        app, login, tmp_path):
    """A recorder with no officer bound records "unassigned": nobody recorded it, so an
    approver without an officer id (the archivist) is not "the recording officer"."""
    sid = await _old(app, tmp_path, b"recorded while unassigned", officer="unassigned",
                     device="rec-e5")
    async with app.state.sessions() as s, s.begin():
        await s.execute(update(User).where(User.name == "archivist").values(officer_id=None))
    archivist = await login("archivist")
    r = await archivist.api("POST", "/api/v1/retention/requests",
                            {"segment_id": sid, "reason": "误录"})
    rid = r.json()["id"]
    page = (await archivist.get("/retention")).text
    block = page[page.index(f'id="del-req-{rid}"'):]
    assert "您是录制该记录的执法人员" not in block[:block.index("</article>")]
    assert r.json()["may_approve"] is True
    r = await archivist.api("POST", f"/api/v1/retention/requests/{rid}/approve", {"note": ""})
    assert r.status_code == 200, r.text
