"""The per-segment and per-heartbeat checks read only what can have changed (neighbours, the
tail above the highest number, the alerts concerned), yet raise and resolve exactly what the
full recomputation from the device's whole history (:func:`check_device`) does.

* equivalence: seeded random stories (arrival out of order, lost numbers, replaced and
  unchained manifests, a second manifest for one number, deletion records with and without
  their row, heartbeats with and without the hook, hooks that never ran, the scan, the clock,
  an administrator resolving alerts)
  run twice, on two databases: once the old way (``check_device`` after every segment and
  heartbeat, ``scan_gaps(full=True)``) and once through the hooks; the alerts must be equal
  after every step, and a full recomputation at the end must find nothing to add;
* bounded work: with 3,000 segments of history, storing one more issues the same statements
  and fetches the same rows as with 30.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import random
from collections.abc import Iterator
from typing import Any

from lerec.hub.db.models import Device, Segment
from lerec.hub.db.oversight_models import (
    Alert,
    DeletionRequest,
    SegmentDeadline,
    SegmentDeletion,
    SeqReport,
)
from lerec.hub.oversight import (
    OversightSettings,
    check_device,
    on_heartbeat,
    on_segment_stored,
    resolve_alert,
    scan_gaps,
)
from lerec.hub.oversight.completeness import record_report
from lerec.hub.oversight.timeliness import record_deadline
from lerec.protocol import UNASSIGNED
from sqlalchemy import delete, event, select

Db = Any  # conftest.Db
SETTINGS = OversightSettings(not_uploaded_grace=dt.timedelta(minutes=30))
BASE = dt.datetime(2024, 5, 6, 0, 0, tzinfo=dt.UTC)  # 08:00 in Beijing


# -- equivalence ---------------------------------------------------------------------------


@dataclasses.dataclass
class Side:
    """One database driven either the old way (``full``) or through the hooks."""

    db: Db
    full: bool

    async def store(self, device_id: str, seq: int, now: dt.datetime, hook: bool,
                    **kw: Any) -> list[str] | None:
        row = await self.db.segment(device_id, seq, BASE + dt.timedelta(minutes=10 * seq),
                                    received=now, **kw)
        if not hook:
            return None
        async with self.db.sessions() as s, s.begin():
            if self.full:
                await record_deadline(s, row, now, SETTINGS)
                alerts = await check_device(s, device_id, now, SETTINGS)
            else:
                alerts = (await on_segment_stored(s, row, now=now, settings=SETTINGS)).alerts
        return [a.dedup_key for a in alerts]

    async def heartbeat(self, device_id: str, last_seq: int, now: dt.datetime) -> list[str]:
        async with self.db.sessions() as s, s.begin():
            (await s.get(Device, device_id)).last_seq_reported = last_seq if last_seq >= 0 \
                else None
            if self.full:
                await record_report(s, device_id, last_seq, now)
                alerts = await check_device(s, device_id, now, SETTINGS)
            else:
                alerts = await on_heartbeat(s, device_id, last_seq, now, SETTINGS)
        return [a.dedup_key for a in alerts]

    async def unheard_heartbeat(self, device_id: str, last_seq: int) -> None:
        """The daemon stored ``last_seq_reported`` but the oversight hook did not run."""
        async with self.db.sessions() as s, s.begin():
            (await s.get(Device, device_id)).last_seq_reported = last_seq if last_seq >= 0 \
                else None

    async def rebind(self, device_id: str, officer_id: str) -> None:
        async with self.db.sessions() as s, s.begin():
            (await s.get(Device, device_id)).officer_id = officer_id

    async def scan(self, now: dt.datetime) -> list[str]:
        async with self.db.sessions() as s, s.begin():
            alerts = await scan_gaps(s, now, SETTINGS, full=self.full)
        return [a.dedup_key for a in alerts]

    async def delete(self, segment_id: str, request_for: str, now: dt.datetime,
                     drop_row: bool) -> None:
        """A deletion record for ``segment_id``; ``drop_row``: its row is gone too (then the
        request names another segment, which the foreign keys require)."""
        async with self.db.sessions() as s, s.begin():
            seg = await s.get(Segment, segment_id)
            req = DeletionRequest(segment_id=request_for, requested_by="alice", reason="到期",
                                  requested_at=now, status="deleted", closed_at=now)
            s.add(req)
            await s.flush()
            s.add(SegmentDeletion(
                segment_id=seg.segment_id, request_id=req.id, device_id=seg.device_id,
                seq=seg.seq, officer_id=seg.officer_id, start_at=seg.start_at,
                end_at=seg.end_at, sha256=seg.sha256, stored_ref=seg.stored_ref,
                prev_hash=seg.prev_hash, manifest=seg.manifest,
                manifest_hash=seg.manifest_hash, why="到期", requested_by="alice",
                approved_by="bob,carol", deleted_by="hub", deleted_at=now,
            ))
            if drop_row:
                await s.flush()
                await s.execute(delete(SegmentDeadline).where(
                    SegmentDeadline.segment_id == segment_id))
                await s.execute(delete(Segment).where(Segment.segment_id == segment_id))

    async def resolve(self, pick: float, now: dt.datetime) -> None:
        """An administrator resolves one of the open alerts (the same one on both sides)."""
        async with self.db.sessions() as s, s.begin():
            open_ = (await s.execute(select(Alert).where(Alert.resolved_at.is_(None))
                                     .order_by(Alert.dedup_key))).scalars().all()
            if open_:
                await resolve_alert(s, open_[int(pick * len(open_))].id, "alice", "设备故障", now)

    async def alerts(self) -> list[tuple[Any, ...]]:
        async with self.db.sessions() as s:
            rows = (await s.execute(select(Alert))).scalars().all()
        return sorted(
            (a.dedup_key, a.kind, a.device_id, a.officer_ids, a.window_start, a.window_end,
             a.first_seq, a.last_seq, a.segment_id, a.message_zh, a.created_at, a.resolved_at,
             a.resolved_by, a.resolved_note)
            for a in rows
        )


@dataclasses.dataclass
class Story:
    """What a random story has done so far to one device (the same on both sides)."""

    device_id: str
    size: int
    rows: dict[int, str] = dataclasses.field(default_factory=dict)  # seq -> segment id
    ids: set[str] = dataclasses.field(default_factory=set)  # every segment id ever stored
    records: set[str] = dataclasses.field(default_factory=set)  # segment ids with a deletion
    requested: set[str] = dataclasses.field(default_factory=set)  # named by a request

    def variant(self, rng: random.Random, seq: int) -> dict[str, bool]:
        """Mostly the recorder's own manifest; sometimes a replaced or unchained one (never a
        segment id used before: a dropped row's id stays in its deletion record)."""
        options = [{}, {"forged": True}, {"bad_prev": True}, {"forged": True, "bad_prev": True}]
        weights = [8, 2, 1, 1] if seq else [3, 1, 2, 1]  # seq 0: also chains from genesis
        free = [(o, w) for o, w in zip(options, weights, strict=True)
                if self.segment_id(seq, **o) not in self.ids]
        return rng.choices([o for o, _ in free], [w for _, w in free])[0] if free else {}

    def segment_id(self, seq: int, forged: bool = False, bad_prev: bool = False) -> str:
        return f"{self.device_id}-{seq}{'-x' if forged else ''}{'-b' if bad_prev else ''}"


async def run_story(seed: int, sides: tuple[Side, Side], kinds: set[str]) -> None:
    rng = random.Random(seed)
    story = Story(f"rec-{seed}", size=rng.randint(8, 30))
    officer = "officer-1"
    for side in sides:
        await side.db.device(story.device_id, officer)
    now = BASE + dt.timedelta(hours=1)

    async def both(op: str, *args: Any, **kw: Any) -> None:
        results = [await getattr(side, op)(*args, **kw) for side in sides]
        assert results[0] == results[1], (seed, op, args, kw)

    async def compare(step: int) -> None:
        full, inc = [await side.alerts() for side in sides]
        assert inc == full, (seed, step)
        kinds.update(a[1] + (":resolved" if a[11] else "") for a in full)
        kinds.update("chain_broken:one number" for a in full
                     if a[1] == "chain_broken" and a[6] == a[7])
        kinds.update("by an administrator" for a in full if a[12] == "alice")

    for step in range(rng.randint(30, 70)):
        now += dt.timedelta(minutes=rng.choice([0, 1, 5, 10, 20, 35, 90]))
        r = rng.random()
        free = [q for q in range(story.size) if q not in story.rows]
        if r < 0.5 and free:
            missed = rng.random() < 0.12
            for _ in range(rng.randint(1, 3) if missed else 1):
                free = [q for q in range(story.size) if q not in story.rows]
                if not free:
                    break
                # mostly in order, sometimes out of order (important segments first)
                seq = free[0] if rng.random() < 0.55 else rng.choice(free)
                kw = story.variant(rng, seq)
                sid = story.segment_id(seq, **kw)
                story.rows[seq] = sid
                story.ids.add(sid)
                await both("store", story.device_id, seq, now, not missed, **kw,
                           officer_id=rng.choice([officer, officer, "officer-9", UNASSIGNED]))
            if missed:  # the hook never ran: the next scan catches up
                now += dt.timedelta(minutes=rng.choice([0, 5, 40]))
                await both("scan", now)
        elif r < 0.68:
            top = max(story.rows, default=-1)
            last = rng.randint(max(-1, top - 3), story.size + 2)
            await both("heartbeat", story.device_id, last, now)
        elif r < 0.72:
            top = max(story.rows, default=-1)
            await both("unheard_heartbeat", story.device_id, rng.randint(top, story.size + 2))
        elif r < 0.82:
            await both("scan", now)
        elif r < 0.85:
            officer = rng.choice(["officer-1", "officer-2", UNASSIGNED])
            await both("rebind", story.device_id, officer)
        elif r < 0.89:
            await both("resolve", rng.random(), now)
        elif r < 0.97:
            # a deletion record: the row kept (retention), or gone with its manifest kept
            kept = [q for q, sid in story.rows.items() if sid not in story.records]
            if not kept:
                continue
            seq = rng.choice(kept)
            sid = story.rows[seq]
            drop = sid not in story.requested and len(story.rows) > 1 and rng.random() < 0.5
            request_for = rng.choice([x for x in story.rows.values() if x != sid]) if drop \
                else sid
            story.records.add(sid)
            story.requested.add(request_for)
            if drop:
                del story.rows[seq]  # the number is free for another manifest
            await both("delete", sid, request_for, now, drop)
        await compare(step)

    # the end: the hooks' result is a fixed point of the full recomputation
    now += dt.timedelta(hours=2)
    await both("scan", now)
    before = await sides[1].alerts()
    assert await sides[1].scan(now) == []
    async with sides[1].db.sessions() as s, s.begin():
        assert await scan_gaps(s, now, SETTINGS, full=True) == []
    assert await sides[1].alerts() == before


async def test_hooks_raise_and_resolve_what_the_full_recomputation_does(db, other_db):
    sides = (Side(db, full=True), Side(other_db, full=False))
    kinds: set[str] = set()
    for seed in range(16):
        await run_story(seed, sides, kinds)
    # the stories did exercise every kind of alert and the resolution of absent numbers
    assert {"missing", "missing:resolved", "chain_broken", "chain_broken:one number",
            "not_uploaded", "not_uploaded:resolved", "by an administrator"} <= kinds, kinds


async def test_scan_resolves_an_alert_that_racing_hooks_left_open(db):
    """Two workers storing neighbouring segments at once can each miss the other's row (or
    alert); an absent-number alert may then stay open although its numbers arrived. The
    periodic scan resolves it, as the full recomputation does."""
    await db.device("rec-r", "officer-7")
    for seq in range(3):
        row = await db.segment("rec-r", seq, BASE + dt.timedelta(minutes=10 * seq))
        async with db.sessions() as s, s.begin():
            await on_segment_stored(s, row, now=row.received_at, settings=SETTINGS)
    async with db.sessions() as s, s.begin():
        s.add(Alert(kind="missing", dedup_key="absent:rec-r:1-1", device_id="rec-r",
                    first_seq=1, last_seq=1, message_zh="x", created_at=BASE))
    async with db.sessions() as s, s.begin():
        assert await scan_gaps(s, BASE + dt.timedelta(days=1), SETTINGS) == []
    async with db.sessions() as s:
        (alert,) = (await s.execute(select(Alert))).scalars().all()
    assert (alert.resolved_by, alert.resolved_note) == ("hub", "缺失的记录均已上传")


# -- bounded work --------------------------------------------------------------------------


@dataclasses.dataclass
class Count:
    statements: int = 0  # outside the audit log
    rows: int = 0  # fetched, outside the audit log
    audit: int = 0  # statements on the audit log (its hash tree grows with the whole log)

    @property
    def total(self) -> int:
        return self.statements + self.audit


@contextlib.contextmanager
def counting(engine: Any) -> Iterator[Count]:
    """Statements sent and rows fetched on ``engine`` meanwhile. The async drivers' cursor
    adapters fetch a result's rows into ``_rows`` when executing; that is what is counted."""
    count = Count()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "audit_" in statement:
            count.audit += 1
        else:
            count.statements += 1

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        rows = getattr(cursor, "_rows", None)
        assert rows is not None, "cannot count rows on this driver"
        if "audit_" not in statement:
            count.rows += len(rows)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    try:
        yield count
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
        event.remove(engine.sync_engine, "after_cursor_execute", after)


async def history(db: Db, device_id: str, n: int, hole: int) -> None:
    """``n`` checked segments (all but ``hole``, whose open alert exists) with deadlines, one
    heartbeat report per segment, a deletion record (row kept) for every fifth and a resolved
    absent-number alert for every tenth; a last report of ``n + 4`` long due."""
    await db.device(device_id, "officer-7")
    chain = db.chain(device_id, n)
    async with db.sessions() as s, s.begin():
        for seq in range(n):
            start = BASE + dt.timedelta(minutes=10 * seq)
            s.add(SeqReport(device_id=device_id, last_seq=seq, reported_at=start))
            if seq % 10 == 3:
                s.add(Alert(kind="missing", dedup_key=f"absent:{device_id}:{seq}-{seq}",
                            device_id=device_id, first_seq=seq, last_seq=seq, message_zh="x",
                            created_at=start, resolved_at=start, resolved_by="hub",
                            resolved_note="x"))
            if seq == hole:
                continue
            manifest, prev = chain.manifests[seq]
            s.add(Segment(
                segment_id=f"{device_id}-{seq}", device_id=device_id, seq=seq,
                officer_id="officer-7", start_at=start, end_at=start + dt.timedelta(minutes=5),
                media_type="video/mp4", length=1, sha256="0" * 64, important=False,
                recovered=False, clock_state="synced", clock_offset_ms=0, prev_hash=prev,
                manifest=manifest, manifest_hash=hashlib.sha256(manifest).digest(),
                receipt=b"r", stored_ref="ref", received_at=start + dt.timedelta(minutes=6),
            ))
        s.add(Alert(kind="missing", dedup_key=f"absent:{device_id}:{hole}-{hole}",
                    device_id=device_id, first_seq=hole, last_seq=hole, message_zh="x",
                    created_at=BASE))
        s.add(SeqReport(device_id=device_id, last_seq=n + 4, reported_at=BASE))
        await s.flush()
        for seq in range(n):
            if seq == hole:
                continue
            start = BASE + dt.timedelta(minutes=10 * seq)
            s.add(SegmentDeadline(segment_id=f"{device_id}-{seq}", ended_at=start,
                                  uploaded_at=start, deadline=start, status="on_time",
                                  computed_at=start))
            if seq % 5 == 0:
                req = DeletionRequest(segment_id=f"{device_id}-{seq}", requested_by="alice",
                                      reason="x", requested_at=start, status="deleted")
                s.add(req)
                await s.flush()
                seg = await s.get(Segment, f"{device_id}-{seq}")
                s.add(SegmentDeletion(
                    segment_id=seg.segment_id, request_id=req.id, device_id=device_id,
                    seq=seq, officer_id="officer-7", start_at=seg.start_at, end_at=seg.end_at,
                    sha256=seg.sha256, stored_ref="ref", prev_hash=seg.prev_hash,
                    manifest=seg.manifest, manifest_hash=seg.manifest_hash, why="x",
                    requested_by="alice", approved_by="bob,carol", deleted_by="hub",
                    deleted_at=start,
                ))


async def hooked(db: Db, device_id: str, seq: int) -> tuple[Count, list[Alert]]:
    row = await db.segment(device_id, seq, BASE + dt.timedelta(minutes=10 * seq),
                           received=BASE + dt.timedelta(days=1))
    with counting(db.engine) as count:
        async with db.sessions() as s, s.begin():
            out = await on_segment_stored(s, row, now=row.received_at, settings=SETTINGS)
    return count, out.alerts


async def test_a_stored_segment_costs_the_same_after_3000_segments_as_after_30(db):
    await history(db, "rec-long", 3000, hole=1500)
    await history(db, "rec-short", 30, hole=15)

    # the next segment at the top: its not-uploaded tail is raised
    long_top, raised = await hooked(db, "rec-long", 3000)
    assert [(a.kind, a.first_seq, a.last_seq) for a in raised] == [("not_uploaded", 3001, 3004)]
    short_top, raised = await hooked(db, "rec-short", 30)
    assert [(a.kind, a.first_seq, a.last_seq) for a in raised] == [("not_uploaded", 31, 34)]
    assert (long_top.statements, long_top.rows) == (short_top.statements, short_top.rows)
    assert long_top.rows <= 20 and long_top.total <= 25, long_top

    # the lost segment in the middle arrives late: its alert resolves
    long_fill, raised = await hooked(db, "rec-long", 1500)
    assert raised == []
    short_fill, _ = await hooked(db, "rec-short", 15)
    assert (long_fill.statements, long_fill.rows) == (short_fill.statements, short_fill.rows)
    assert long_fill.rows <= 20 and long_fill.total <= 25, long_fill
    async with db.sessions() as s:
        open_ = (await s.execute(select(Alert.dedup_key).where(
            Alert.resolved_at.is_(None)))).scalars().all()
    assert sorted(open_) == ["absent:rec-long:3001-3004", "absent:rec-short:31-34"]

    # a heartbeat reads the tail only
    counts = []
    for device_id, last in (("rec-long", 3010), ("rec-short", 40)):
        with counting(db.engine) as count:
            async with db.sessions() as s, s.begin():
                await on_heartbeat(s, device_id, last, BASE + dt.timedelta(days=2), SETTINGS)
        counts.append(count)
    assert counts[0] == counts[1] and counts[0].rows <= 10, counts

    # the periodic scan reads per device its tail, and the open alerts
    with counting(db.engine) as scan:
        async with db.sessions() as s, s.begin():
            raised = await scan_gaps(s, BASE + dt.timedelta(days=3), SETTINGS)
    assert [(a.device_id, a.first_seq, a.last_seq) for a in raised] == [
        ("rec-long", 3005, 3010), ("rec-short", 35, 40)]
    assert scan.rows <= 40, scan
    # nothing left for a full recomputation, which reads the whole history (as every stored
    # segment did before: check_device)
    with counting(db.engine) as full:
        async with db.sessions() as s, s.begin():
            assert await scan_gaps(s, BASE + dt.timedelta(days=3), SETTINGS, full=True) == []
    assert full.rows > 2 * 3000, full
