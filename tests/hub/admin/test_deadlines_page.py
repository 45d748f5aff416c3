"""The 第二十六条 lists on the 预警 page and in the API: recordings still on a recorder past their
upload deadline, those with little time left, and those stored after their deadline."""

from __future__ import annotations

import datetime as dt
import hashlib

from lerec.hub.db import Device, Segment
from lerec.hub.db.types import utcnow
from lerec.hub.oversight import (
    list_alerts,
    on_heartbeat,
    on_segment_stored,
    resolve_alert,
    scan_gaps,
)
from lerec.protocol import ZERO_HASH

CHINA = dt.timezone(dt.timedelta(hours=8))


def _segment(device_id: str, seq: int, end: dt.datetime, received: dt.datetime) -> Segment:
    manifest = f"manifest {device_id} {seq}".encode()
    return Segment(
        segment_id=f"{device_id}-{seq}", device_id=device_id, seq=seq, officer_id="zf-0001",
        start_at=end - dt.timedelta(minutes=5), end_at=end, media_type="video/mp4", length=1,
        sha256="00" * 32, important=False, recovered=False, clock_state="synced",
        clock_offset_ms=0, prev_hash=ZERO_HASH, manifest=manifest,
        manifest_hash=hashlib.sha256(manifest).digest(), receipt=b"r", stored_ref="sha256:x",
        received_at=received)


async def _story(app) -> None:
    now = utcnow()
    long_ago = now - dt.timedelta(days=20)
    async with app.state.sessions() as s, s.begin():
        for dev, officer in (("rec-old", "zf-0001"), ("rec-new", "zf-0002"),
                             ("rec-late", "zf-0003")):
            s.add(Device(device_id=dev, signing_key=bytes(32), officer_id=officer,
                         enrolled_at=long_ago - dt.timedelta(days=1)))
    async with app.state.sessions() as s, s.begin():
        # rec-old: seq 0 arrived; seqs 1-2 reported 20 days ago and never uploaded (overdue)
        s.add(_segment("rec-old", 0, long_ago, long_ago + dt.timedelta(minutes=1)))
        # rec-late: seq 0 ended 20 days ago, stored only now (after its deadline)
        s.add(_segment("rec-late", 0, long_ago, now))
    async with app.state.sessions() as s, s.begin():
        for sid in ("rec-old-0", "rec-late-0"):
            row = await s.get(Segment, sid)
            await on_segment_stored(s, row, now=row.received_at)
        await on_heartbeat(s, "rec-old", 2, long_ago + dt.timedelta(minutes=10))
        # rec-new: seqs 0-1 reported an hour ago: still within their deadline
        await on_heartbeat(s, "rec-new", 1, now - dt.timedelta(hours=1))
    async with app.state.sessions() as s, s.begin():
        await scan_gaps(s)  # (the daemon's scanner) rec-old's 1-2: reported, never uploaded


async def test_deadline_lists_on_the_alerts_page_and_api(app, login):
    await _story(app)
    b = await login("unit_head")
    r = await b.get("/alerts")
    assert r.status_code == 200, r.text
    panel = r.text[r.text.index('id="upload-deadlines"'):r.text.index("执法记录仪完整性")]
    overdue = panel[panel.index("已逾期未上传（"):panel.index("即将逾期（")]
    assert "rec-old" in overdue and "1–2" in overdue and "zf-0001" in overdue
    late = panel[panel.index("逾期上传（"):]
    assert "rec-late" in late and "逾期上传" in late
    assert "rec-old" not in late and "rec-late" not in overdue

    api = await b.get("/api/v1/deadlines")
    assert api.status_code == 200, api.text
    body = api.json()
    assert [(i["device_id"], i["first_seq"], i["last_seq"], i["status"])
            for i in body["overdue"]] == [("rec-old", 1, 2, "overdue")]
    assert [(i["device_id"], i["status"], i["uploaded"]) for i in body["late"]] == [
        ("rec-late", "late", True)]
    assert all(i["deadline"] for i in body["overdue"] + body["late"])
    # rec-new's numbers were reported an hour ago: either comfortably in time or at risk,
    # never overdue
    assert all(i["device_id"] != "rec-new" for i in body["overdue"])
    alerts = await b.get("/api/v1/alerts")
    assert alerts.status_code == 200
    assert [(a["device_id"], a["kind"]) for a in alerts.json()
            if a["device_id"] == "rec-old"] == [("rec-old", "not_uploaded")]


async def test_deadline_lists_need_alerts_permission(app, login):
    b = await login("officer_a")
    assert (await b.get("/api/v1/deadlines")).status_code == 403


async def test_a_run_an_administrator_resolved_stays_listed_as_handled(app, login):
    """The administrator resolves rec-old's not-uploaded alert (记录仪丢失): seqs 1-2 never
    arrived, so they stay under 已逾期未上传, shown apart as 已处理 with who, when and the
    note; the API gives the same resolution fields."""
    await _story(app)
    async with app.state.sessions() as s:
        (alert,) = [a for a in await list_alerts(s) if a.device_id == "rec-old"]
    resolved_at = utcnow().replace(microsecond=0)
    async with app.state.sessions() as s, s.begin():
        await resolve_alert(s, alert.id, "unit_head", "记录仪丢失，已书面说明<b>", resolved_at)
    b = await login("unit_head")
    r = await b.get("/alerts")
    assert r.status_code == 200, r.text
    panel = r.text[r.text.index('id="upload-deadlines"'):r.text.index("执法记录仪完整性")]
    overdue = panel[panel.index("已逾期未上传（"):panel.index("即将逾期（")]
    assert overdue.startswith("已逾期未上传（0）") and "另有 1 项已处理" in overdue
    assert "没有未处理的逾期未上传音像记录" in overdue
    handled = overdue[overdue.index("已处理（1）"):]
    assert "rec-old" in handled and "1–2" in handled and "zf-0001" in handled
    assert "处理人：刘科长（unit_head）" in handled and "说明：记录仪丢失，已书面说明&lt;b&gt;" in handled
    assert "处理时间：" + resolved_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") in handled

    body = (await b.get("/api/v1/deadlines")).json()
    (item,) = body["overdue"]
    assert (item["device_id"], item["first_seq"], item["last_seq"], item["status"]) == (
        "rec-old", 1, 2, "overdue")
    assert (item["handled"], item["resolution_alert_id"], item["resolved_by"],
            item["resolution_note"]) == (True, alert.id, "unit_head", "记录仪丢失，已书面说明<b>")
    assert dt.datetime.fromisoformat(item["resolved_at"]) == resolved_at
    (late,) = body["late"]
    assert (late["handled"], late["resolved_by"], late["resolved_at"]) == (False, None, None)
    # the alert is no longer open
    assert all(a["device_id"] != "rec-old" for a in (await b.get("/api/v1/alerts")).json())


async def test_an_alert_is_resolved_on_the_page_with_a_note_and_audited(app, login):
    """处理: a unit head closes rec-old's not-uploaded alert from the 预警 page with a note;
    the alert leaves the open list, shows under 最近已处理的告警 with who and why, its numbers
    stay listed as handled, and the resolution is an audit entry. Without a note, twice, or
    without the CSRF token it is refused."""
    from support.admin_client import audit_rows

    await _story(app)
    b = await login("unit_head")
    page = (await b.get("/alerts")).text
    async with app.state.sessions() as s:
        (alert,) = [a for a in await list_alerts(s) if a.device_id == "rec-old"]
    row = page[page.index(f'id="alert-{alert.id}"'):]
    row = row[:row.index("</tr>")]
    assert "未上传" in row and f'action="/alerts/{alert.id}/resolve"' in row
    fleet = (await b.get("/fleet")).text
    row = fleet[fleet.index("<b>rec-old</b>"):]
    cell = row[row.index('<td class="overdue">'):row.index("</tr>")]
    assert '<span class="badge err">1</span>' in cell and "已处理" not in cell, cell

    r = await b.post(f"/alerts/{alert.id}/resolve", {"note": ""})
    assert r.status_code == 400 and "必须填写说明" in r.text
    r = await b.post(f"/alerts/{alert.id}/resolve", {"note": "记录仪丢失"}, csrf=False)
    assert r.status_code == 403
    r = await b.post(f"/alerts/{alert.id}/resolve", {"note": "记录仪丢失，已书面说明"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/alerts#resolved-alert-{alert.id}"
    r = await b.post(f"/alerts/{alert.id}/resolve", {"note": "again"})
    assert r.status_code == 400 and "已处理" in r.text

    fleet = (await b.get("/fleet")).text
    row = fleet[fleet.index("<b>rec-old</b>"):]
    cell = row[row.index('<td class="overdue">'):row.index("</tr>")]
    assert '<span class="badge ok">0</span>' in cell and "另有 1 项已处理" in cell, cell
    page = (await b.get("/alerts")).text
    assert f'id="alert-{alert.id}"' not in page
    done = page[page.index(f'id="resolved-alert-{alert.id}"'):]
    done = done[:done.index("</tr>")]
    assert "刘科长（unit_head）" in done and "说明：记录仪丢失，已书面说明" in done
    overdue = page[page.index("已逾期未上传（"):page.index("即将逾期（")]
    assert "另有 1 项已处理" in overdue
    resolved = (await b.get("/api/v1/alerts/resolved")).json()
    assert [(a["id"], a["resolved_by"], a["resolved_note"], a["resolved_automatically"])
            for a in resolved if a["id"] == alert.id] == [
        (alert.id, "unit_head", "记录仪丢失，已书面说明", False)]
    entries = [(actor, d.get("note")) for _, t, actor, subj, d in await audit_rows(app)
               if d.get("action") == "alert_resolved" and f"alert:{alert.id}" in subj]
    assert entries == [("user:unit_head", "记录仪丢失，已书面说明")]


async def test_resolving_alerts_needs_alerts_manage(app, login):
    await _story(app)
    async with app.state.sessions() as s:
        (alert,) = [a for a in await list_alerts(s) if a.device_id == "rec-old"]
    for name in ("handler_a", "auditor"):  # they read the alerts, they do not close them
        b = await login(name)
        page = (await b.get("/alerts")).text
        assert f'id="alert-{alert.id}"' in page and "/resolve" not in page
        assert (await b.post(f"/alerts/{alert.id}/resolve", {"note": "x"})).status_code == 403
        r = await b.api("POST", f"/api/v1/alerts/{alert.id}/resolve", {"note": "x"})
        assert r.status_code == 403
    head = await login("agency_head")
    r = await head.api("POST", f"/api/v1/alerts/{alert.id}/resolve", {})
    assert r.status_code == 400
    r = await head.api("POST", "/api/v1/alerts/999999/resolve", {"note": "x"})
    assert r.status_code == 404 and "告警" in r.json()["detail"]
    r = await head.api("POST", f"/api/v1/alerts/{alert.id}/resolve", {"note": "设备损坏"})
    assert r.status_code == 200, r.text
    assert (r.json()["resolved_by"], r.json()["resolved_note"]) == ("agency_head", "设备损坏")
    async with app.state.sessions() as s:
        assert all(a.id != alert.id for a in await list_alerts(s))
