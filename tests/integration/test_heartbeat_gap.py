"""A recorder's signed heartbeats report segments that never reach the hub: the running daemon
raises a ``not_uploaded`` gap alert naming device, officer and time window (第二十六条), and
resolves it when they arrive.

Real parts only: the recorder's clip store (sealing, Ed25519-signed heartbeats) and uploader,
mosquitto with the deploy/ TLS+ACL config, the hub daemon with SQLite and its oversight hooks.
"""

from __future__ import annotations

import datetime as dt
import time

from lerec.hub.audit import log as audit
from lerec.hub.db import Device
from lerec.hub.db.oversight_models import Alert, SeqReport
from lerec.hub.db.types import utcnow
from lerec.hub.oversight import OversightSettings
from lerec.hub.policy._time import local_text
from sqlalchemy import select
from support.rig import fake_segment, make_uploader, stored_segments
from support.withhold import heartbeat_of, make_holding_store

OFFICER = "zf-0007"
GRACE = dt.timedelta(seconds=1)


def _alerts(hub) -> list[Alert]:
    async def q():
        async with hub.service.sessions() as s:
            return list((await s.execute(select(Alert).order_by(Alert.id))).scalars())

    return hub.call(q())


def _reports(hub, device_id: str) -> list[SeqReport]:
    async def q():
        async with hub.service.sessions() as s:
            return list((await s.execute(select(SeqReport).where(
                SeqReport.device_id == device_id).order_by(SeqReport.last_seq))).scalars())

    return hub.call(q())


def _gap_events(hub, alert_id: int) -> list[str]:
    async def q():
        async with hub.service.sessions() as s:
            return [e.type.value for _, e in await audit.entries(s, subject=f"alert:{alert_id}")]

    return hub.call(q())


def _last_seen(hub, device_id: str) -> dt.datetime | None:
    async def q():
        async with hub.service.sessions() as s:
            return (await s.get(Device, device_id)).last_seen_at

    return hub.call(q())


def _heartbeat_after(hub, device_id: str, after: dt.datetime) -> dt.datetime:
    """Wait until the hub handled a heartbeat of ``device_id`` that arrived after ``after``
    (``devices.last_seen_at``); its arrival time."""
    deadline = time.monotonic() + 30
    while True:
        seen = _last_seen(hub, device_id)
        if seen is not None and seen > after:
            return seen
        assert time.monotonic() < deadline, f"no heartbeat of {device_id} after {after}"
        time.sleep(0.1)


def _recorder(rig, device_id: str):
    store = make_holding_store(rig.pki, device_id, rig.root / device_id)
    up = make_uploader(rig.pki, store, rig.port, heartbeat=heartbeat_of(store, OFFICER),
                       heartbeat_seconds=0.3)
    rig.uploaders.append(up)
    return store, up


def test_heartbeat_beyond_arrivals_raises_not_uploaded_alert_through_the_daemon(rig):
    hub = rig.start_hub()

    # rec-a sealed 0, 1, 2 but uploads only 0; its heartbeats say last_seq = 2.
    store, up = _recorder(rig, "rec-a")
    for _ in range(3):
        store.seal(fake_segment(store, 60_000), officer_id=OFFICER)
    store.hold([1, 2])
    # rec-b uploads everything it reports: no alert.
    store_b, up_b = _recorder(rig, "rec-b")
    store_b.seal(fake_segment(store_b, 60_000), officer_id=OFFICER)

    with up, up_b:
        assert up.wait_idle(30) and up_b.wait_idle(30)
        # The daemon's oversight settings (read at every check): the grace period of a
        # reported segment is one second instead of two hours. Set only now that every
        # segment the recorders offer was receipted: set before, an upload slower than a
        # second on a loaded machine would raise a not-uploaded alert of its own.
        hub.service.oversight.settings = OversightSettings(not_uploaded_grace=GRACE)
        short_since = utcnow()
        deadline = time.monotonic() + 30
        while not _alerts(hub) and time.monotonic() < deadline:
            time.sleep(0.1)
        (seg0,) = [r for r in stored_segments(hub) if r.device_id == "rec-a"]
        assert seg0.seq == 0
        (alert,) = _alerts(hub)
        assert (alert.kind, alert.device_id, alert.first_seq, alert.last_seq) == (
            "not_uploaded", "rec-a", 1, 2)
        assert alert.officers == (OFFICER,)
        assert alert.resolved_at is None
        # The window: from the end of the last segment that arrived to the heartbeat that
        # first reported the numbers; raised only after the grace period.
        first_report = next(r for r in _reports(hub, "rec-a") if r.last_seq == 2)
        assert alert.window_start == seg0.end_at
        assert alert.window_end == first_report.reported_at
        assert alert.created_at >= first_report.reported_at + GRACE
        for text in ("rec-a", "1–2", OFFICER, "设备已录制但尚未上传",
                     local_text(alert.window_start), local_text(alert.window_end)):
            assert text in alert.message_zh, (text, alert.message_zh)
        assert _gap_events(hub, alert.id) == ["gap_detected"]
        # rec-b's heartbeats (last_seq 0, stored) are checked past the grace period too, and
        # raise nothing: wait for a heartbeat of rec-b that arrived with the short grace in
        # force and its report past it, then for the next one (a recorder's messages are
        # handled one after the other, so the first one's check has committed by then).
        deadline = time.monotonic() + 30
        while not _reports(hub, "rec-b") and time.monotonic() < deadline:
            time.sleep(0.1)
        (b_report,) = _reports(hub, "rec-b")
        assert b_report.last_seq == 0
        checked = _heartbeat_after(hub, "rec-b", max(short_since, b_report.reported_at + GRACE))
        _heartbeat_after(hub, "rec-b", checked)
        assert [a for a in _alerts(hub) if a.device_id == "rec-b"] == []

        # The recorder uploads what it held: the hub resolves the alert itself.
        store.release()
        assert up.wait_idle(30)
        deadline = time.monotonic() + 30
        while _alerts(hub)[0].resolved_at is None and time.monotonic() < deadline:
            time.sleep(0.1)
    (done,) = _alerts(hub)
    assert done.resolved_at is not None and done.resolved_by == "hub"
    assert [r.seq for r in stored_segments(hub) if r.device_id == "rec-a"] == [0, 1, 2]
    assert _gap_events(hub, alert.id) == ["gap_detected", "record_changed"]
