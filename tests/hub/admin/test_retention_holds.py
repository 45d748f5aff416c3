"""保全 (holds) on the 保存期满 page: a recording a party asked to see (第二十九条), or that a
complaint or a lawsuit may need, is held; while held it is no deletion candidate, no deletion
may be requested, and an open request is closed. Releasing needs a reason and makes it a
candidate again. Every hold and release is an audit entry; only retention.manage may act,
never without the CSRF token."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from support.admin_client import audit_rows
from support.retention import old_segment, request_id_of

from lerec.hub.db.oversight_models import DeletionRequest, SegmentHold
from lerec.hub.oversight.errors import DeletionRefused
from lerec.hub.oversight.retention import approve_deletion, execute_deletion, request_deletion


def hold_id_of(page: str, segment_id: str) -> int:
    import re

    m = re.search(r'id="hold-(\d+)" data-segment="' + re.escape(segment_id), page)
    assert m, page[:3000]
    return int(m.group(1))


async def test_a_hold_closes_the_request_keeps_the_recording_until_released(app, login,
                                                                           tmp_path):
    seg = await old_segment(app, tmp_path)
    other = await old_segment(app, tmp_path, device="rec-r2")
    archivist, head = await login("archivist"), await login("agency_head")
    r = await archivist.post("/retention/requests", {"segment_id": seg, "reason": "误录"})
    assert r.status_code == 303
    rid = request_id_of((await archivist.get("/retention")).text, seg)
    assert (await archivist.post(f"/retention/requests/{rid}/approve", {})).status_code == 303

    r = await head.post("/retention/holds", {"segment_id": seg, "reason": ""})
    assert r.status_code == 400 and "必须填写说明" in r.text
    r = await head.post("/retention/holds", {"segment_id": seg,
                                             "reason": "当事人张三申请查阅（第二十九条）"})
    assert r.status_code == 303, r.text
    page = (await head.get("/retention")).text
    hid = hold_id_of(page, seg)
    assert r.headers["location"] == f"/retention#hold-{hid}"
    row = page[page.index(f'id="hold-{hid}"'):]
    row = row[:row.index("</tr>")]
    for text in ("rec-r1", "当事人张三申请查阅（第二十九条）", "周镇长（agency_head）", "解除保全"):
        assert text in row, text
    assert f'id="cand-{seg}"' not in page, "a held recording is no deletion candidate"
    assert f'id="cand-{other}"' in page
    assert f'id="del-req-{rid}"' not in page, "the open request was closed by the hold"
    async with app.state.sessions() as s:
        req = await s.get(DeletionRequest, rid)
    assert req.status == "withdrawn" and req.closed_at is not None

    # while held: no request, no approval of the closed one, no second hold by the same person
    r = await archivist.post("/retention/requests", {"segment_id": seg, "reason": "误录"})
    assert r.status_code == 409 and "保全" in r.text
    r = await head.post(f"/retention/requests/{rid}/approve", {})
    assert r.status_code == 409 and f"记录已保全（保全 #{hid}" in r.text, r.text
    assert "该删除申请已关闭" in r.text
    r = await head.post("/retention/holds", {"segment_id": seg, "reason": "再次"})
    assert r.status_code == 409 and "无需重复保全" in r.text

    # a second person's hold of their own: both must be released
    r = await archivist.api("POST", "/api/v1/retention/holds",
                            {"segment_id": seg, "reason": "行政复议申请"})
    assert r.status_code == 201, r.text
    second = r.json()["id"]
    r = await head.post(f"/retention/holds/{hid}/release", {"reason": ""})
    assert r.status_code == 400
    r = await head.post(f"/retention/holds/{hid}/release", {"reason": "查阅已完成"})
    assert r.status_code == 303
    r = await head.post(f"/retention/holds/{hid}/release", {"reason": "again"})
    assert r.status_code == 409 and "已于此前解除" in r.text
    page = (await head.get("/retention")).text
    assert f'id="cand-{seg}"' not in page, "still held by the second hold"
    r = await archivist.api("POST", f"/api/v1/retention/holds/{second}/release",
                            {"reason": "复议已终结"})
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    assert r.json()["release_reason"] == "复议已终结"
    page = (await head.get("/retention")).text
    assert f'id="cand-{seg}"' in page, "released: a candidate again"
    assert f'id="released-hold-{hid}"' in page and "查阅已完成" in page
    r = await archivist.post("/retention/requests", {"segment_id": seg, "reason": "误录"})
    assert r.status_code == 303

    rows = await audit_rows(app)
    actions = [(a, d.get("action"), d.get("reason")) for _, t, a, subj, d in rows
               if f"segment:{seg}" in subj and d.get("action", "").startswith(("hold",
                                                                               "deletion_w"))]
    assert actions == [
        ("user:agency_head", "hold_placed", "当事人张三申请查阅（第二十九条）"),
        ("user:agency_head", "deletion_withdrawn",
         f"记录已保全（保全 #{hid}）：当事人张三申请查阅（第二十九条）"),
        ("user:archivist", "hold_placed", "行政复议申请"),
        ("user:agency_head", "hold_released", "查阅已完成"),
        ("user:archivist", "hold_released", "复议已终结"),
    ]


async def test_any_recording_can_be_held_but_not_a_deleted_or_unknown_one(app, login,
                                                                          tmp_path):
    recent = await old_segment(app, tmp_path, dt.timedelta(days=3))
    archivist = await login("archivist")
    r = await archivist.api("POST", "/api/v1/retention/holds",
                            {"segment_id": recent, "reason": "投诉处理中"})
    assert r.status_code == 201, r.text
    hold = r.json()
    assert (hold["segment_id"], hold["device_id"], hold["placed_by"], hold["active"]) == (
        recent, "rec-r1", "archivist", True)
    data = (await archivist.api("GET", "/api/v1/retention")).json()
    assert [h["id"] for h in data["holds"]] == [hold["id"]] and data["released_holds"] == []

    r = await archivist.api("POST", "/api/v1/retention/holds",
                            {"segment_id": "no-such-segment", "reason": "x"})
    assert r.status_code == 404 and "未找到记录" in r.json()["detail"]
    r = await archivist.api("POST", "/api/v1/retention/holds/999999/release", {"reason": "x"})
    assert r.status_code == 404 and "保全" in r.json()["detail"]
    r = await archivist.api("POST", "/api/v1/retention/holds", {"segment_id": recent})
    assert r.status_code == 400

    gone = await old_segment(app, tmp_path, device="rec-r3")
    head = await login("agency_head")
    rid = (await archivist.api("POST", "/api/v1/retention/requests",
                               {"segment_id": gone, "reason": "误录"})).json()["id"]
    for who in (archivist, head):
        r = await who.api("POST", f"/api/v1/retention/requests/{rid}/approve", {})
        assert r.status_code == 200, r.text
    assert (await head.api("POST", f"/api/v1/retention/requests/{rid}/execute")).status_code \
        == 200
    r = await head.api("POST", "/api/v1/retention/holds", {"segment_id": gone, "reason": "x"})
    assert r.status_code == 409 and "已按保存期限删除" in r.json()["detail"]


async def test_only_retention_manage_may_hold_and_never_without_csrf(app, login, tmp_path):
    seg = await old_segment(app, tmp_path)
    auditor = await login("auditor")
    r = await auditor.post("/retention/holds", {"segment_id": seg, "reason": "x"})
    assert r.status_code == 403
    r = await auditor.api("POST", "/api/v1/retention/holds", {"segment_id": seg, "reason": "x"})
    assert r.status_code == 403
    archivist = await login("archivist")
    r = await archivist.post("/retention/holds", {"segment_id": seg, "reason": "x"}, csrf=False)
    assert r.status_code == 403 and "CSRF" in r.text
    hid = (await archivist.api("POST", "/api/v1/retention/holds",
                               {"segment_id": seg, "reason": "x"})).json()["id"]
    r = await auditor.post(f"/retention/holds/{hid}/release", {"reason": "x"})
    assert r.status_code == 403
    r = await archivist.post(f"/retention/holds/{hid}/release", {"reason": "x"}, csrf=False)
    assert r.status_code == 403
    page = (await auditor.get("/retention")).text
    assert f'id="hold-{hid}"' in page and 'action="/retention/holds/' not in page
    async with app.state.sessions() as s:
        assert (await s.get(SegmentHold, hid)).released_at is None


async def test_execution_checks_the_hold_under_the_segment_lock(app, tmp_path):
    """A hold row that appears after two approvals (by another path than place_hold, which
    would also close the request) still stops the deletion: execute_deletion decides with
    the holds table under the segment's lock."""
    seg = await old_segment(app, tmp_path)
    sessions = app.state.sessions
    async with sessions() as s:
        req = await request_deletion(s, seg, "archivist", "误录")
        await approve_deletion(s, req.id, "archivist", "")
        await approve_deletion(s, req.id, "agency_head", "")
        s.add(SegmentHold(segment_id=seg, reason="诉讼", placed_by="legal",
                          placed_at=dt.datetime.now(dt.UTC)))
        await s.commit()
    with pytest.raises(DeletionRefused, match="保全"):
        await execute_deletion(sessions, req.id, app.state.store, "agency_head")
    async with sessions() as s:
        assert (await s.execute(select(DeletionRequest.status))).scalar_one() == "open"
