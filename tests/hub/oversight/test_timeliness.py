"""Timeliness: upload deadlines with 调休, the override table in the DB, overdue/at-risk."""

from __future__ import annotations

import datetime as dt

import pytest
from lerec.hub.audit import log as audit
from lerec.hub.db.oversight_models import Alert
from lerec.hub.metrics import HubMetrics, refresh_fleet_gauges
from lerec.hub.oversight import (
    DeadlineItem,
    at_risk_segments,
    deadline_of,
    declare_year,
    late_segments,
    list_alerts,
    load_calendar,
    on_heartbeat,
    on_segment_stored,
    overdue_segments,
    remove_override,
    resolve_alert,
    scan_gaps,
    set_override,
)
from lerec.hub.oversight.absent import Resolution, _Named, _split
from lerec.hub.oversight.timeliness import absent_items
from lerec.hub.policy import CalendarConfigError
from sqlalchemy import select

UTC = dt.UTC


async def store(db, device_id, seq, start, **kw):
    row = await db.segment(device_id, seq, start, **kw)
    async with db.sessions() as s, s.begin():
        await on_segment_stored(s, row, now=row.received_at)
    return row


async def test_deadline_counts_working_days_with_tiaoxiu(db, at):
    await db.device("rec-a")
    # Fri 2024-09-27 evening: Sat 28 rest, Sun 29 is a 调休 working day, Mon 30 the second.
    fri = await store(db, "rec-a", 0, at("2024-09-27", "20:00"))
    # Mon 2024-09-30 evening: 1–7 Oct National Day, then Tue 8 and Wed 9 Oct.
    mon = await store(db, "rec-a", 1, at("2024-09-30", "21:00"),
                      received=at("2024-10-10", "09:00"))
    async with db.sessions() as s:
        d0 = await deadline_of(s, fri.segment_id)
        d1 = await deadline_of(s, mon.segment_id)
    assert d0.deadline == at("2024-10-01", "00:00") and d0.status == "on_time"
    assert d1.deadline == at("2024-10-10", "00:00") and d1.status == "late"
    assert d0.deadline_error is None
    async with db.sessions() as s:
        (late,) = await late_segments(s)
    assert (late.segment_id, late.status, late.recording_end) == (mon.segment_id, "late",
                                                                  mon.end_at)


async def test_uncovered_year_is_an_explicit_error_until_the_administrator_enters_it(db, at):
    await db.device("rec-a", "officer-9")
    seg = await store(db, "rec-a", 0, at("2027-03-10", "15:00"))
    seg2 = await store(db, "rec-a", 1, at("2027-03-11", "15:00"))
    async with db.sessions() as s:
        d = await deadline_of(s, seg.segment_id)
        assert d.deadline is None and d.status == "calendar_error"
        assert "2027年" in d.deadline_error and "工作日历" in d.deadline_error
        (alert,) = await list_alerts(s)  # one alert per uncovered year, not per segment
        assert alert.kind == "calendar_not_covered" and alert.device_id == "rec-a"
        assert "2027" in alert.message_zh and "officer-9" in alert.message_zh

    # Declaring 2027 without its holidays is refused, with a message for the administrator.
    async with db.sessions() as s:
        with pytest.raises(CalendarConfigError, match="2027"):
            async with s.begin():
                await declare_year(s, 2027, "alice")
    async with db.sessions() as s, s.begin():
        await set_override(s, dt.date(2027, 2, 8), False, "春节", "alice")
        await set_override(s, dt.date(2027, 3, 12), False, "镇防汛停止办公", "alice")
        await declare_year(s, 2027, "alice", now=at("2027-03-13"))
    async with db.sessions() as s:
        d = await deadline_of(s, seg.segment_id)
        d2 = await deadline_of(s, seg2.segment_id)
        # Wed 10 Mar: Thu 11 working, Fri 12 closed by the override, Mon 15 the second day.
        assert d.deadline == at("2027-03-16", "00:00") and d.deadline_error is None
        assert d2.deadline == at("2027-03-17", "00:00")
        assert await list_alerts(s) == []
        (closed,) = (await s.execute(select(Alert))).scalars().all()
        assert closed.resolved_by == "hub"
        events = await audit.entries(s, subject="config:calendar")
        assert [e.details["action"] for _, e in events] == [
            "calendar_override_set", "calendar_override_set", "calendar_year_declared"]
        assert events[0][1].actor == "user:alice"
        cal = await load_calendar(s)
        assert not cal.is_workday(dt.date(2027, 3, 12))

    # Removing the closure moves the deadline back, audited.
    async with db.sessions() as s, s.begin():
        await remove_override(s, dt.date(2027, 3, 12), "录入错误", "bob")
    async with db.sessions() as s:
        assert (await deadline_of(s, seg.segment_id)).deadline == at("2027-03-13", "00:00")


async def test_overdue_and_at_risk_for_segments_still_on_the_recorder(db, at):
    await db.device("rec-a", "officer-7")
    await db.device("rec-b", "officer-8")
    await store(db, "rec-a", 0, at("2024-05-06", "09:00"))
    await store(db, "rec-a", 2, at("2024-05-06", "09:20"))  # seq 1 ended before 09:20
    await store(db, "rec-b", 0, at("2024-05-08", "09:00"))
    async with db.sessions() as s, s.begin():
        await on_heartbeat(s, "rec-b", 2, at("2024-05-08", "18:00"))  # seqs 1-2 on the recorder

    # Mon 6 May: deadline end of Wed 8 May; Wed 8 May: end of Fri 10 May.
    now = at("2024-05-09", "12:00")
    async with db.sessions() as s:
        overdue = await overdue_segments(s, now)
        risky = await at_risk_segments(s, now, within=dt.timedelta(hours=48))
    assert overdue == [DeadlineItem(
        device_id="rec-a", first_seq=1, last_seq=1, officer_ids=("officer-7",),
        recording_end=at("2024-05-06", "09:20"), recording_end_known=False,
        deadline=at("2024-05-09", "00:00"), status="overdue")]
    assert [(i.device_id, i.first_seq, i.last_seq, i.officer_ids, i.deadline, i.status)
            for i in risky] == [
        ("rec-b", 1, 2, ("officer-8",), at("2024-05-11", "00:00"), "at_risk")]
    async with db.sessions() as s:
        assert await at_risk_segments(s, now, within=dt.timedelta(hours=12)) == []
        later = await overdue_segments(s, at("2024-05-11", "00:01"))
    assert [(i.device_id, i.first_seq) for i in later] == [("rec-a", 1), ("rec-b", 1)]


async def test_runs_an_administrator_resolved_stay_listed_marked_handled(db, at):
    """An administrator resolves the absent-number alerts of records that will never arrive
    (记录仪丢失): their numbers stay on the overdue list — they never arrived — marked handled
    with who, when and why; a run only partly covered is split, the rest stays unresolved; the
    overdue gauge counts only the unresolved numbers."""
    await db.device("rec-a", "officer-7")
    await store(db, "rec-a", 0, at("2024-05-06", "09:00"))
    async with db.sessions() as s, s.begin():
        await on_heartbeat(s, "rec-a", 2, at("2024-05-06", "12:00"))  # 1-2 on the recorder
        await scan_gaps(s, at("2024-05-07", "12:00"))  # not_uploaded 1-2
    await store(db, "rec-a", 4, at("2024-05-06", "09:40"),
                received=at("2024-05-07", "13:00"))  # missing 3 (1-2 already named)
    async with db.sessions() as s, s.begin():
        await on_heartbeat(s, "rec-a", 9, at("2024-05-07", "14:00"))
        await scan_gaps(s, at("2024-05-08", "12:00"))  # not_uploaded 5-9
    await store(db, "rec-a", 6, at("2024-05-06", "10:00"), received=at("2024-05-08", "13:00"))
    async with db.sessions() as s:
        alerts = {(a.first_seq, a.last_seq): a for a in await list_alerts(s)}
    assert sorted(alerts) == [(1, 2), (3, 3), (5, 9)]
    now = at("2024-05-10", "12:00")

    def rows(items):
        return [(i.first_seq, i.last_seq, i.recording_end, i.status,
                 i.resolution and (i.resolution.alert_id, i.resolution.by, i.resolution.at,
                                   i.resolution.note)) for i in items]

    async def gauges():
        metrics = HubMetrics()
        await refresh_fleet_gauges(metrics, db.sessions, now)
        get = metrics.registry.get_sample_value
        return (get("lerec_overdue_segments", {}), get("lerec_deadline_unknown_segments", {}),
                get("lerec_overdue_resolved_segments", {}))

    async with db.sessions() as s:
        before = await overdue_segments(s, now)
    assert not any(i.handled for i in before)
    assert [(i.first_seq, i.last_seq) for i in before] == [(1, 3), (5, 5), (7, 9)]
    assert await gauges() == (7, 0, 0)

    async with db.sessions() as s, s.begin():
        await resolve_alert(s, alerts[(1, 2)].id, "alice", "记录仪丢失，已书面说明",
                            at("2024-05-08", "15:00"))
        await resolve_alert(s, alerts[(5, 9)].id, "bob", "存储卡损坏，记录无法恢复",
                            at("2024-05-08", "16:00"))
    lost = (alerts[(1, 2)].id, "alice", at("2024-05-08", "15:00"), "记录仪丢失，已书面说明")
    broken = (alerts[(5, 9)].id, "bob", at("2024-05-08", "16:00"), "存储卡损坏，记录无法恢复")
    async with db.sessions() as s:
        after = await overdue_segments(s, now)
    # 1-3 ended before 4 started (Mon 6 May: deadline end of Wed 8); 3 is in an open alert
    # only, so the run is split; 5 ended before 6 started; 7-9 before the heartbeat that
    # reported them (Tue 7 May: deadline end of Thu 9), their alert straddling stored 6.
    assert rows(after) == [
        (1, 2, at("2024-05-06", "09:40"), "overdue", lost),
        (3, 3, at("2024-05-06", "09:40"), "overdue", None),
        (5, 5, at("2024-05-06", "10:00"), "overdue", broken),
        (7, 9, at("2024-05-07", "14:00"), "overdue", broken),
    ]
    assert [i.handled for i in after] == [True, False, True, True]
    assert await gauges() == (1, 0, 6)

    # One of the records declared lost turns up after all: it leaves the list, the numbers
    # around it stay handled.
    await store(db, "rec-a", 8, at("2024-05-06", "10:20"), received=at("2024-05-10", "11:00"))
    async with db.sessions() as s:
        assert [(i.first_seq, i.last_seq, i.resolution and i.resolution.by)
                for i in await overdue_segments(s, now)] == [
            (1, 2, "alice"), (3, 3, None), (5, 5, "bob"), (7, 7, "bob"), (9, 9, "bob")]
    assert await gauges() == (1, 0, 5)


def test_a_part_in_an_open_alert_is_not_handled_and_the_latest_resolution_wins(at):
    """Absent-number alerts do not overlap (a new one is raised only where none covers), but
    if two ever did: a number in an open alert is unresolved whatever else covers it, and of
    two resolutions the latest is shown."""
    early = Resolution(1, "alice", at("2024-05-08"), "设备故障")
    late = Resolution(2, "bob", at("2024-05-09"), "记录仪丢失")
    named = [_Named(1, 4, frozenset(), early), _Named(3, 6, frozenset(), late),
             _Named(6, 7, frozenset(), None)]
    assert _split(0, 9, named) == [(0, 0, None), (1, 2, early), (3, 5, late), (6, 9, None)]
    assert _split(2, 2, named) == [(2, 2, early)]


async def test_a_handled_run_drops_off_the_lists_90_days_after_its_resolution(db, at):
    """Handled runs below the highest stored number are listed for HANDLED_WINDOW after the
    resolution, then no longer read (the alert and its note stay); a handled tail above it
    stays handled, never listed as unresolved again."""
    from lerec.hub.oversight.absent import HANDLED_WINDOW

    await db.device("rec-h", "officer-7")
    await store(db, "rec-h", 0, at("2024-05-06", "09:00"))
    await store(db, "rec-h", 3, at("2024-05-06", "09:30"))  # missing 1-2
    async with db.sessions() as s, s.begin():
        await on_heartbeat(s, "rec-h", 5, at("2024-05-06", "12:00"))  # 4-5 on the recorder
        await scan_gaps(s, at("2024-05-07", "12:00"))
    resolved = at("2024-05-08", "12:00")
    async with db.sessions() as s, s.begin():
        alerts = await list_alerts(s)
        assert sorted((a.first_seq, a.last_seq) for a in alerts) == [(1, 2), (4, 5)]
        for a in alerts:
            await resolve_alert(s, a.id, "alice", "记录仪丢失", resolved)

    async def listed(now):
        async with db.sessions() as s:
            return sorted((i.first_seq, i.last_seq, i.handled)
                          for i in await absent_items(s, now))

    assert await listed(resolved + dt.timedelta(days=30)) == [(1, 2, True), (4, 5, True)]
    later = resolved + HANDLED_WINDOW + dt.timedelta(days=1)
    assert await listed(later) == [(4, 5, True)], \
        "the tail stays handled; the old hole below the highest number is no longer read"
