"""Through the real rig: a recorder uploads segments 0 and 2 of three over mosquitto; the hub
daemon (which runs the oversight hooks after every stored segment) raises one gap alert naming
device and officer, and stores each segment's upload deadline."""

from __future__ import annotations

from lerec.hub.oversight import deadline_of, list_alerts
from support.rig import fake_segment, stored_segments


def test_withheld_segment_raises_a_gap_alert_naming_the_device(rig):
    hub = rig.start_hub()
    assert hub.service is not None
    # The daemon itself runs the oversight hooks (hub/daemon/service.py); nothing injected here.
    store, up = rig.recorder("rec-a")
    rows = [store.seal(fake_segment(store, 20_000 + i), officer_id="officer-7") for i in range(3)]
    assert [r.seq for r in rows] == [0, 1, 2]
    pending = store.pending
    store.pending = lambda: [r for r in pending() if r.seq != 1]  # the recorder keeps seq 1
    with up:
        assert up.wait_idle(30)
    assert [r.seq for r in stored_segments(hub)] == [0, 2]
    hub.call(hub.service.ingest.drain())

    async def check():
        async with hub.service.sessions() as s:
            alerts = await list_alerts(s)
            deadlines = [await deadline_of(s, r.segment_id) for r in (rows[0], rows[2])]
            return alerts, deadlines

    alerts, deadlines = hub.call(check())
    assert [(a.kind, a.device_id, a.first_seq, a.last_seq, a.officers) for a in alerts] == [
        ("missing", "rec-a", 1, 1, ("officer-7",))]
    assert "rec-a" in alerts[0].message_zh and "officer-7" in alerts[0].message_zh
    assert alerts[0].window_start is not None and alerts[0].window_end is not None
    # computed at ingest; near a year the calendar package does not cover yet, explicitly not
    for d in deadlines:
        assert d is not None
        assert d.status == "on_time" or (d.status == "calendar_error" and d.deadline_error)
