"""Completeness: sequence gaps, replaced segments, reported-but-not-uploaded, resolution."""

from __future__ import annotations

import datetime as dt

import pytest
from lerec.hub.audit import log as audit
from lerec.hub.db.models import Device
from lerec.hub.db.oversight_models import Alert
from lerec.hub.oversight import (
    AlertKind,
    AlreadyResolved,
    NoteRequired,
    OversightSettings,
    list_alerts,
    on_heartbeat,
    on_segment_stored,
    resolve_alert,
    scan_gaps,
)
from sqlalchemy import func, select


async def store(db, device_id, seq, start, **kw):
    row = await db.segment(device_id, seq, start, **kw)
    async with db.sessions() as s, s.begin():
        out = await on_segment_stored(s, row, now=row.received_at)
    return row, out


async def test_gap_named_when_seq_3_follows_1_and_resolved_when_2_arrives(db, at):
    await db.device("rec-a", "officer-7")
    await store(db, "rec-a", 0, at("2024-05-06", "09:00"))
    s1, _ = await store(db, "rec-a", 1, at("2024-05-06", "09:10"))
    s3, out = await store(db, "rec-a", 3, at("2024-05-06", "09:30"))
    assert [(a.kind, a.first_seq, a.last_seq) for a in out.alerts] == [("missing", 2, 2)]
    alert = out.alerts[0]
    assert alert.device_id == "rec-a" and alert.officers == ("officer-7",)
    assert (alert.window_start, alert.window_end) == (s1.end_at, s3.start_at)
    assert "rec-a" in alert.message_zh and "officer-7" in alert.message_zh
    assert "2024-05-06 09:15" in alert.message_zh and "2024-05-06 09:30" in alert.message_zh

    # raised once: checking again (scan, heartbeat) adds nothing
    async with db.sessions() as s, s.begin():
        assert await scan_gaps(s, at("2024-05-06", "12:00")) == []
        assert await on_heartbeat(s, "rec-a", 3, at("2024-05-06", "12:00")) == []
    async with db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Alert)) == 1
        events = await audit.entries(s, subject=f"alert:{alert.id}")
        assert [e.type.value for _, e in events] == ["gap_detected"]

    await store(db, "rec-a", 2, at("2024-05-06", "09:20"))
    async with db.sessions() as s:
        (done,) = (await s.execute(select(Alert))).scalars().all()
        assert done.resolved_at is not None and done.resolved_by == "hub"
        assert await list_alerts(s) == []
        events = await audit.entries(s, subject=f"alert:{alert.id}")
        assert [e.type.value for _, e in events] == ["gap_detected", "record_changed"]


async def test_replaced_segment_breaks_the_chain(db, at):
    await db.device("rec-b", "officer-2")
    await store(db, "rec-b", 0, at("2024-05-06", "09:00"))
    _, out = await store(db, "rec-b", 1, at("2024-05-06", "09:10"), forged=True)
    assert out.alerts == []  # chains to 0 correctly: only its successor can reveal it
    _, out = await store(db, "rec-b", 2, at("2024-05-06", "09:20"))
    assert [(a.kind, a.first_seq, a.last_seq) for a in out.alerts] == [("chain_broken", 1, 2)]
    assert "哈希链断裂" in out.alerts[0].message_zh
    assert out.alerts[0].officers == ("officer-2",)
    async with db.sessions() as s, s.begin():
        assert await scan_gaps(s, at("2024-05-07")) == []  # not raised twice


async def test_reported_but_not_uploaded_alerts_only_after_grace(db, at):
    settings = OversightSettings(not_uploaded_grace=dt.timedelta(minutes=30))
    await db.device("rec-c", "officer-3")
    await store(db, "rec-c", 0, at("2024-05-06", "09:00"))
    beat = at("2024-05-06", "10:00")
    async with db.sessions() as s, s.begin():
        assert await on_heartbeat(s, "rec-c", 2, beat, settings) == []  # in transit
        assert await on_heartbeat(s, "rec-c", 2, beat + dt.timedelta(minutes=29), settings) == []
        assert await scan_gaps(s, beat + dt.timedelta(minutes=29), settings) == []
    async with db.sessions() as s, s.begin():
        raised = await scan_gaps(s, beat + dt.timedelta(minutes=31), settings)
    assert [(a.kind, a.first_seq, a.last_seq) for a in raised] == [("not_uploaded", 1, 2)]
    assert raised[0].officers == ("officer-3",) and raised[0].window_end == beat
    assert "尚未上传" in raised[0].message_zh

    # a later report starts its own grace period; the first alert is not repeated
    async with db.sessions() as s, s.begin():
        late = beat + dt.timedelta(hours=1)
        assert await on_heartbeat(s, "rec-c", 4, late, settings) == []
        raised = await on_heartbeat(s, "rec-c", 4, late + dt.timedelta(minutes=31), settings)
    assert [(a.first_seq, a.last_seq) for a in raised] == [(3, 4)]

    # uploads resolve them (also when they now lie between arrived segments)
    for seq in (1, 2, 3, 4):
        await store(db, "rec-c", seq, at("2024-05-06", "09:05") + dt.timedelta(minutes=seq))
    async with db.sessions() as s:
        assert await list_alerts(s) == []
        assert len(await list_alerts(s, open_only=False)) == 2


async def test_heartbeat_only_device_with_nothing_uploaded(db, at):
    settings = OversightSettings(not_uploaded_grace=dt.timedelta(minutes=10))
    await db.device("rec-d", "officer-4")
    async with db.sessions() as s, s.begin():
        await on_heartbeat(s, "rec-d", 0, at("2024-05-06", "10:00"), settings)
        raised = await scan_gaps(s, at("2024-05-06", "10:11"), settings)
    assert [(a.kind, a.device_id, a.officers) for a in raised] == [
        ("not_uploaded", "rec-d", ("officer-4",))]


async def test_scan_takes_over_last_seq_when_the_heartbeat_hook_was_not_called(db, at):
    settings = OversightSettings(not_uploaded_grace=dt.timedelta(minutes=10))
    await db.device("rec-e", "officer-5")
    async with db.sessions() as s, s.begin():
        (await s.get(Device, "rec-e")).last_seq_reported = 1  # set by the daemon alone
        assert await scan_gaps(s, at("2024-05-06", "10:00"), settings) == []
        raised = await scan_gaps(s, at("2024-05-06", "10:11"), settings)
    assert [(a.kind, a.first_seq, a.last_seq) for a in raised] == [("not_uploaded", 0, 1)]


async def test_admin_resolves_with_a_note_audited_and_never_reraised(db, at):
    await db.device("rec-a")
    await store(db, "rec-a", 0, at("2024-05-06", "09:00"))
    _, out = await store(db, "rec-a", 2, at("2024-05-06", "09:20"))
    (alert,) = out.alerts
    async with db.sessions() as s, s.begin():
        with pytest.raises(NoteRequired):
            await resolve_alert(s, alert.id, "alice", "  ")
        await resolve_alert(s, alert.id, "alice", "设备故障，该段未能录制", at("2024-05-07"))
    async with db.sessions() as s, s.begin():
        with pytest.raises(AlreadyResolved):
            await resolve_alert(s, alert.id, "bob", "again")
    async with db.sessions() as s, s.begin():
        assert await scan_gaps(s, at("2024-05-08")) == []
        (a,) = await list_alerts(s, open_only=False, kinds=[AlertKind.MISSING])
        assert (a.resolved_by, a.resolved_note) == ("alice", "设备故障，该段未能录制")
        events = await audit.entries(s, subject=f"alert:{alert.id}")
        assert events[-1][1].actor == "user:alice"
        assert events[-1][1].details["note"] == "设备故障，该段未能录制"
