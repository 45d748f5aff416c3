"""The fleet page shows what each recorder said in its last heartbeat (card, clock, uploads
waiting on the card), stored on the device row by the ingest."""

from __future__ import annotations

from lerec.hub.db import Device
from lerec.hub.db.types import utcnow


async def _devices(app) -> None:
    async with app.state.sessions() as s, s.begin():
        s.add(Device(device_id="rec-full", signing_key=bytes(32), officer_id="zf-0001",
                     last_seen_at=utcnow(), hb_state="stopped_full", hb_storage="full",
                     hb_free_bytes=10_000_000, hb_pending_segments=7,
                     hb_pending_bytes=420_000_000, hb_battery_pct=35, hb_firmware="lerec/1.0",
                     hb_clock_state="unsynced", hb_clock_offset_ms=612_000))
        s.add(Device(device_id="rec-new", signing_key=bytes(32)))


async def test_fleet_page_shows_last_heartbeat(app, login):
    await _devices(app)
    b = await login("unit_head")
    r = await b.get("/fleet")
    assert r.status_code == 200, r.text
    row = r.text[r.text.index("rec-full"):r.text.index("rec-new")]
    for text in ("存储已满，已停止", "已满", "未校时，时间不可信", "+612.0 秒", "卡内待上传 7 段",
                 "420.0 MB", "电量 35%", "lerec/1.0"):
        assert text in row, text
    assert "尚无心跳" in r.text[r.text.index("rec-new"):]


async def test_fleet_api_carries_the_heartbeat(app, login):
    await _devices(app)
    b = await login("auditor")
    r = await b.get("/api/v1/fleet")
    assert r.status_code == 200, r.text
    by_id = {d["device_id"]: d for d in r.json()}
    assert by_id["rec-full"]["heartbeat"] == {
        "state": "stopped_full", "storage": "full", "free_bytes": 10_000_000,
        "pending_segments": 7, "pending_bytes": 420_000_000, "clock_state": "unsynced",
        "clock_offset_ms": 612_000, "battery_pct": 35, "firmware": "lerec/1.0"}
    assert by_id["rec-new"]["heartbeat"] is None
