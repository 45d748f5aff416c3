"""Completeness of each recorder's segments (第四条 全面、可追溯; 第二十六条 不得自行保管).

Every recorder numbers its segments 0, 1, 2, ... and chains their manifests by hash
(``prev_hash``; the first one chains from 32 zero bytes). The hub checks, per device:

* on arrival of a segment (:func:`on_segment_stored`, called by the ingest daemon),
* on each heartbeat (:func:`on_heartbeat`: the recorder's ``last_seq``), and
* periodically (:func:`scan_gaps`), which also catches up on anything a hook missed,

and raises an alert (see :mod:`.alerts`) naming device, officer(s), time window and sequence
numbers for

* ``missing`` — a number absent while later ones arrived: raised at once (the uploader sends
  important segments first, so such an alert may resolve itself within minutes);
* ``chain_broken`` — a manifest that does not chain to its predecessor: a segment was
  replaced. Only an administrator resolves it;
* ``not_uploaded`` — numbers a heartbeat reported that have not arrived after
  ``settings.not_uploaded_grace``, counted from the first heartbeat that reported them, so a
  segment still in transit is not a gap.

An absent-number alert (``missing``/``not_uploaded``) resolves itself when every number in it
has arrived. A segment deleted under retention keeps its ``segments`` row (and its manifest is
copied into ``segment_deletions``), so an approved deletion never looks like a gap.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence

from lerec.protocol import UNASSIGNED, ZERO_HASH
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Device, Segment
from ..db.oversight_models import Alert, SegmentDeletion, SeqReport
from ..db.types import utcnow
from ..policy.gaps import ArrivedManifest, Gap, GapKind, find_gaps
from .alerts import ABSENT_KINDS, HUB, AlertKind, close_alert, raise_alert
from .settings import DEFAULT_SETTINGS, OversightSettings

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DeviceState:
    """What the hub knows about one recorder's sequence: arrivals and heartbeat reports."""

    device_id: str
    officer_id: str | None  # current binding of the recorder, None when unassigned
    arrived: tuple[ArrivedManifest, ...]
    present: tuple[int, ...]  # sorted seqs that arrived (or were deleted with approval)
    reports: tuple[tuple[int, dt.datetime], ...]  # (last_seq, first reported at), ascending

    @property
    def reported_last(self) -> int | None:
        return self.reports[-1][0] if self.reports else None

    def first_reported(self, seq: int) -> dt.datetime | None:
        """When a heartbeat first reported ``seq`` (None: never reported)."""
        i = bisect.bisect_left([r[0] for r in self.reports], seq)
        return self.reports[i][1] if i < len(self.reports) else None

    def count_present(self, lo: int, hi: int) -> int:
        return bisect.bisect_right(self.present, hi) - bisect.bisect_left(self.present, lo)

    def gaps(self) -> tuple[Gap, ...]:
        return find_gaps(self.device_id, self.arrived, self.reported_last, first_seq=0,
                         genesis_hash=ZERO_HASH)


def _officer(officer_id: str | None) -> str | None:
    return None if not officer_id or officer_id == UNASSIGNED else officer_id


async def load_device_state(session: AsyncSession, device_id: str) -> DeviceState:
    dev = await session.get(Device, device_id)
    rows = (await session.execute(
        select(Segment.segment_id, Segment.seq, Segment.prev_hash, Segment.manifest_hash,
               Segment.start_at, Segment.end_at, Segment.officer_id)
        .where(Segment.device_id == device_id)
    )).all()
    arrived = [
        ArrivedManifest(r.seq, bytes(r.prev_hash), bytes(r.manifest_hash), r.start_at, r.end_at,
                        _officer(r.officer_id))
        for r in rows
    ]
    ids = {r.segment_id for r in rows}
    for d in (await session.execute(
        select(SegmentDeletion).where(SegmentDeletion.device_id == device_id)
    )).scalars():
        if d.segment_id not in ids:  # the row itself is gone: the kept manifest explains it
            arrived.append(ArrivedManifest(d.seq, bytes(d.prev_hash), bytes(d.manifest_hash),
                                           d.start_at, d.end_at, _officer(d.officer_id)))
    reports = (await session.execute(
        select(SeqReport.last_seq, SeqReport.reported_at)
        .where(SeqReport.device_id == device_id).order_by(SeqReport.last_seq)
    )).all()
    return DeviceState(
        device_id=device_id,
        officer_id=_officer(dev.officer_id) if dev is not None else None,
        arrived=tuple(arrived),
        present=tuple(sorted({m.seq for m in arrived})),
        reports=tuple((r.last_seq, r.reported_at) for r in reports),
    )


async def record_report(
    session: AsyncSession, device_id: str, last_seq: int, now: dt.datetime
) -> bool:
    """Remember that ``device_id`` reported ``last_seq`` at ``now`` if it is a new maximum."""
    if last_seq < 0:
        return False
    top = await session.scalar(
        select(func.max(SeqReport.last_seq)).where(SeqReport.device_id == device_id)
    )
    if top is not None and last_seq <= top:
        return False
    session.add(SeqReport(device_id=device_id, last_seq=last_seq, reported_at=now))
    await session.flush()
    return True


def _uncovered(lo: int, hi: int, covered: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sub-ranges of ``[lo, hi]`` not inside any range of ``covered``."""
    parts = [(lo, hi)]
    for c_lo, c_hi in covered:
        nxt: list[tuple[int, int]] = []
        for p_lo, p_hi in parts:
            if c_hi < p_lo or c_lo > p_hi:
                nxt.append((p_lo, p_hi))
                continue
            if p_lo < c_lo:
                nxt.append((p_lo, c_lo - 1))
            if c_hi < p_hi:
                nxt.append((c_hi + 1, p_hi))
        parts = nxt
    return parts


async def check_device(
    session: AsyncSession,
    device_id: str,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> list[Alert]:
    """Compare what arrived from ``device_id`` with its chain and its heartbeats; raise new
    alerts and resolve absent-number alerts whose segments have all arrived. Returns the alerts
    raised now."""
    now = now or utcnow()
    state = await load_device_state(session, device_id)
    existing = list((await session.execute(
        select(Alert).where(Alert.device_id == device_id,
                            Alert.kind.in_([k.value for k in ABSENT_KINDS]))
    )).scalars())
    covered = [(a.first_seq, a.last_seq) for a in existing
               if a.first_seq is not None and a.last_seq is not None]
    raised: list[Alert] = []
    for gap in state.gaps():
        if gap.kind is GapKind.CHAIN_BROKEN:
            alert = await _raise_gap(session, gap, f"chain:{device_id}:{gap.first_seq}-"
                                     f"{gap.last_seq}", now)
            raised += [alert] if alert else []
            continue
        if gap.kind is GapKind.NOT_UPLOADED:
            gap = _past_grace(state, gap, now, settings)  # type: ignore[assignment]
            if gap is None:
                continue
        if not gap.officer_ids and state.officer_id:
            gap = dataclasses.replace(gap, officer_ids=(state.officer_id,))
        for lo, hi in _uncovered(gap.first_seq, gap.last_seq, covered):
            part = dataclasses.replace(gap, first_seq=lo, last_seq=hi)
            alert = await _raise_gap(session, part, f"absent:{device_id}:{lo}-{hi}", now)
            covered.append((lo, hi))
            raised += [alert] if alert else []
    for a in existing:
        if a.resolved_at is None and a.first_seq is not None and a.last_seq is not None and \
                state.count_present(a.first_seq, a.last_seq) == a.last_seq - a.first_seq + 1:
            await close_alert(session, a, HUB, "缺失的记录均已上传", now)
    return raised


def _past_grace(
    state: DeviceState, gap: Gap, now: dt.datetime, settings: OversightSettings
) -> Gap | None:
    """The part of a not-uploaded gap whose grace period is over, or None."""
    due = [seq for seq, at in state.reports if at + settings.not_uploaded_grace <= now]
    if not due:
        return None
    hi = min(max(due), gap.last_seq)
    if hi < gap.first_seq:
        return None
    return dataclasses.replace(gap, last_seq=hi, window_end=state.first_reported(hi))


async def _raise_gap(session: AsyncSession, gap: Gap, key: str, now: dt.datetime) -> Alert | None:
    return await raise_alert(
        session, kind=AlertKind(gap.kind.value), key=key, message_zh=gap.message_zh,
        device_id=gap.device_id, officer_ids=gap.officer_ids, window_start=gap.window_start,
        window_end=gap.window_end, first_seq=gap.first_seq, last_seq=gap.last_seq, now=now,
    )


async def on_heartbeat(
    session: AsyncSession,
    device_id: str,
    last_seq: int,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> list[Alert]:
    """A verified heartbeat said ``device_id`` has produced segments up to ``last_seq``
    (-1: none yet). Records when each new number was first reported (the grace period and the
    deadline of segments still on the recorder count from then) and checks the device.
    Call it inside the heartbeat's transaction; returns the alerts raised."""
    now = now or utcnow()
    await record_report(session, device_id, last_seq, now)
    return await check_device(session, device_id, now, settings)


async def scan_gaps(
    session: AsyncSession,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> list[Alert]:
    """Check every recorder (run it every few minutes and at start-up). Raises the
    ``not_uploaded`` alerts whose grace period ran out since the last heartbeat, takes over
    ``devices.last_seq_reported`` when the heartbeat hook was not called, and computes
    upload deadlines a missed ``on_segment_stored`` did not. Returns the alerts raised."""
    from .timeliness import backfill_deadlines

    now = now or utcnow()
    raised = await backfill_deadlines(session, now, settings)
    devices = {d.device_id: d for d in (await session.execute(select(Device))).scalars()}
    ids = set(devices) | set((await session.execute(select(Segment.device_id).distinct())).scalars())
    for device_id in sorted(ids):
        dev = devices.get(device_id)
        if dev is not None and dev.last_seq_reported is not None:
            await record_report(session, device_id, dev.last_seq_reported, now)
        raised += await check_device(session, device_id, now, settings)
    return raised
