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

**What a check reads.** A recorder makes about 500 segments a day and the hub keeps all their
manifests, so the checks after a segment and after a heartbeat never read a device's history:

* :func:`check_segment` (after a stored segment) reads the segment's neighbours among the
  present numbers (the highest below it and the lowest above it, with their manifests for the
  chain), the device's highest number, its heartbeat reports above that number, and the
  absent-number alerts that overlap the ranges concerned: a fixed number of indexed queries;
* :func:`check_tail` (after a heartbeat) reads the highest number and the reports above it;
* :func:`scan_gaps` runs :func:`check_segment` for every stored segment whose hook never
  completed (it has no ``segment_deadlines`` row: ``on_segment_stored`` writes that row in the
  same transaction as the check), :func:`check_tail` for every device, and resolves the open
  absent-number alerts whose numbers have all arrived.

They raise and resolve what :func:`check_device` (the full recomputation from
:class:`DeviceState`, still run by ``scan_gaps(full=True)``) would: every gap and broken link
is a property of two neighbouring present numbers, of the lowest one (from genesis), of the
variants of one number, or of the highest one and the reports (the tail). Present numbers are
only ever added (a deleted segment keeps its row, or its manifest in ``segment_deletions``), so
two numbers first become neighbours when the later of them is stored, and the check of that
segment (its row is committed before its check reads) sees both. Only the tail depends on the
clock (grace period) and on heartbeats, and every check reads it; an absent-number alert can
only become complete when a number inside it arrives.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import functools
import hashlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from lerec.protocol import UNASSIGNED, ZERO_HASH, SegmentManifest
from sqlalchemy import (
    Select,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    union,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Device, Segment
from ..db.oversight_models import Alert, SegmentDeletion, SeqReport
from ..db.types import from_ms, utcnow
from ..policy._time import local_text
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


def _manifest(r: Any) -> ArrivedManifest:
    return ArrivedManifest(r.seq, bytes(r.prev_hash), bytes(r.manifest_hash), r.start_at,
                           r.end_at, _officer(r.officer_id))


async def load_device_state(session: AsyncSession, device_id: str) -> DeviceState:
    """Everything about ``device_id`` (its whole history): for :func:`check_device` and reports."""
    dev = await session.get(Device, device_id)
    rows = (await session.execute(
        select(Segment.segment_id, Segment.seq, Segment.prev_hash, Segment.manifest_hash,
               Segment.start_at, Segment.end_at, Segment.officer_id)
        .where(Segment.device_id == device_id)
    )).all()
    arrived = [_manifest(r) for r in rows]
    ids = {r.segment_id for r in rows}
    for d in (await session.execute(
        select(SegmentDeletion).where(SegmentDeletion.device_id == device_id)
    )).scalars():
        if d.segment_id not in ids:  # the row itself is gone: the kept manifest explains it
            arrived.append(_manifest(d))
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


def _gap_order(gap: Gap) -> tuple[int, int, str]:
    return gap.first_seq, gap.last_seq, gap.kind.value


async def _raise_gaps(
    session: AsyncSession,
    device_id: str,
    gaps: Iterable[Gap],
    existing: Iterable[Alert],
    officer_id: str | None,
    now: dt.datetime,
) -> list[Alert]:
    """Raise ``gaps`` (a not-uploaded one already cut to its grace period): a broken chain once
    per key; an absent range only where no absent-number alert of ``existing`` (open or
    resolved: an administrator's resolution is final) covers it, naming the device's officer
    ``officer_id`` when no neighbouring segment names one."""
    covered = [(a.first_seq, a.last_seq) for a in existing
               if a.first_seq is not None and a.last_seq is not None]
    raised: list[Alert] = []
    for gap in sorted(gaps, key=_gap_order):
        if gap.kind is GapKind.CHAIN_BROKEN:
            alert = await _raise_gap(session, gap, f"chain:{device_id}:{gap.first_seq}-"
                                     f"{gap.last_seq}", now)
            raised += [alert] if alert else []
            continue
        if not gap.officer_ids and officer_id:
            gap = dataclasses.replace(gap, officer_ids=(officer_id,))
        for lo, hi in _uncovered(gap.first_seq, gap.last_seq, covered):
            part = dataclasses.replace(gap, first_seq=lo, last_seq=hi)
            alert = await _raise_gap(session, part, f"absent:{device_id}:{lo}-{hi}", now)
            covered.append((lo, hi))
            raised += [alert] if alert else []
    return raised


async def check_device(
    session: AsyncSession,
    device_id: str,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> list[Alert]:
    """Compare everything that arrived from ``device_id`` with its chain and its heartbeats;
    raise new alerts and resolve absent-number alerts whose segments have all arrived. Returns
    the alerts raised now. Reads the device's whole history: the hooks use
    :func:`check_segment` and :func:`check_tail`, which read only what can have changed."""
    now = now or utcnow()
    state = await load_device_state(session, device_id)
    existing = list((await session.execute(
        select(Alert).where(Alert.device_id == device_id, Alert.kind.in_(_ABSENT))
    )).scalars())
    gaps: list[Gap] = []
    for gap in state.gaps():
        if gap.kind is GapKind.NOT_UPLOADED:
            gap = _past_grace(state, gap, now, settings)  # type: ignore[assignment]
            if gap is None:
                continue
        gaps.append(gap)
    raised = await _raise_gaps(session, device_id, gaps, existing, state.officer_id, now)
    for a in existing:
        if a.resolved_at is None and a.first_seq is not None and a.last_seq is not None and \
                state.count_present(a.first_seq, a.last_seq) == a.last_seq - a.first_seq + 1:
            await close_alert(session, a, HUB, _RESOLVED_NOTE, now)
    return raised


def _grace_cut(gap: Gap, due: int | None) -> int | None:
    """The last number of a not-uploaded gap whose grace period is over, given ``due``, the
    highest reported number whose grace period is over (None: none)."""
    if due is None:
        return None
    hi = min(due, gap.last_seq)
    return None if hi < gap.first_seq else hi


def _past_grace(
    state: DeviceState, gap: Gap, now: dt.datetime, settings: OversightSettings
) -> Gap | None:
    """The part of a not-uploaded gap whose grace period is over, or None."""
    due = [seq for seq, at in state.reports if at + settings.not_uploaded_grace <= now]
    hi = _grace_cut(gap, max(due) if due else None)
    if hi is None:
        return None
    return dataclasses.replace(gap, last_seq=hi, window_end=state.first_reported(hi))


async def _raise_gap(session: AsyncSession, gap: Gap, key: str, now: dt.datetime) -> Alert | None:
    return await raise_alert(
        session, kind=AlertKind(gap.kind.value), key=key, message_zh=gap.message_zh,
        device_id=gap.device_id, officer_ids=gap.officer_ids, window_start=gap.window_start,
        window_end=gap.window_end, first_seq=gap.first_seq, last_seq=gap.last_seq, now=now,
    )


_ABSENT = [k.value for k in ABSENT_KINDS]
_RESOLVED_NOTE = "缺失的记录均已上传"


# -- incremental checks: a fixed number of indexed queries, whatever the device's history ------


# The statements below are built once, with bound parameters: building a statement of
# several subqueries and deriving its cache key cost about three times as much CPU as running
# it, and these run for every stored segment.


@functools.cache
def _bounds_stmt(around: bool) -> Select[Any]:
    dev, seq = bindparam("dev"), bindparam("seq")

    def probe(seq_col: Any, dev_col: Any, *cond: Any, up: bool = False) -> Any:
        return (select(seq_col).where(dev_col == dev, *cond)
                .order_by(seq_col if up else seq_col.desc()).limit(1).scalar_subquery())

    cols = []
    for seq_col, dev_col in ((Segment.seq, Segment.device_id),
                             (SegmentDeletion.seq, SegmentDeletion.device_id)):
        cols.append(probe(seq_col, dev_col))
        if around:
            cols += [probe(seq_col, dev_col, seq_col < seq),
                     probe(seq_col, dev_col, seq_col > seq, up=True)]
    return select(*cols)


async def _bounds(
    session: AsyncSession, device_id: str, seq: int | None
) -> tuple[int | None, int | None, int | None]:
    """Among the present numbers of ``device_id`` (stored segments and kept manifests of
    deleted ones): the highest below ``seq``, the lowest above it, and the highest of all.
    One statement; each part is one probe of a ``(device_id, seq)`` index."""
    params: dict[str, Any] = {"dev": device_id}
    if seq is not None:
        params["seq"] = seq
    row = (await session.execute(_bounds_stmt(seq is not None), params)).one()

    def pick(values: Iterable[int | None], fn: Any) -> int | None:
        present = [v for v in values if v is not None]
        return fn(present) if present else None

    if seq is None:
        return None, None, pick(row, max)
    top_s, below_s, above_s, top_d, below_d, above_d = row
    return pick((below_s, below_d), max), pick((above_s, above_d), min), pick((top_s, top_d), max)


_VARIANT_COLS = ("seq", "prev_hash", "manifest_hash", "start_at", "end_at", "officer_id")


@functools.cache
def _variants_stmt() -> Any:
    dev, seqs = bindparam("dev"), bindparam("seqs", expanding=True)
    return union_all(
        select(literal(0).label("src"), *(getattr(Segment, c) for c in _VARIANT_COLS))
        .where(Segment.device_id == dev, Segment.seq.in_(seqs)),
        select(literal(1).label("src"), *(getattr(SegmentDeletion, c) for c in _VARIANT_COLS))
        .where(SegmentDeletion.device_id == dev, SegmentDeletion.seq.in_(seqs),
               ~exists().where(Segment.segment_id == SegmentDeletion.segment_id,
                               Segment.device_id == dev)),
    )


async def _variants(
    session: AsyncSession, device_id: str, seqs: Iterable[int]
) -> dict[int, list[ArrivedManifest]]:
    """The manifests that arrived for each of ``seqs``: the stored segment, then any kept
    manifest of a deleted segment whose row is gone (as :func:`load_device_state`)."""
    wanted = sorted(set(seqs))
    if not wanted:
        return {}
    rows = (await session.execute(_variants_stmt(), {"dev": device_id, "seqs": wanted})).all()
    out: dict[int, list[ArrivedManifest]] = {}
    for r in sorted(rows, key=lambda r: r.src):  # stable: segments first, as the full load
        out.setdefault(r.seq, []).append(_manifest(r))
    return out


@functools.cache
def _count_present_stmt() -> Select[Any]:
    dev, lo, hi = bindparam("dev"), bindparam("lo"), bindparam("hi")
    both = union(
        select(Segment.seq).where(Segment.device_id == dev, Segment.seq.between(lo, hi)),
        select(SegmentDeletion.seq).where(SegmentDeletion.device_id == dev,
                                          SegmentDeletion.seq.between(lo, hi)),
    ).subquery()
    return select(func.count()).select_from(both)


async def _count_present(session: AsyncSession, device_id: str, lo: int, hi: int) -> int:
    """How many numbers of ``[lo, hi]`` are present (an index range scan over ``[lo, hi]``)."""
    return int(await session.scalar(_count_present_stmt(),
                                    {"dev": device_id, "lo": lo, "hi": hi}) or 0)


async def _overlapping_alerts(
    session: AsyncSession, device_id: str, ranges: Sequence[tuple[int, int]]
) -> list[Alert]:
    """The absent-number alerts of ``device_id`` (open or resolved) overlapping any of
    ``ranges``: the only ones that can cover a gap in them or be completed by a number in them.
    (Built per call: the ranges are far apart in a long history, so one span would read every
    alert between them.)"""
    if not ranges:
        return []
    return list((await session.execute(select(Alert).where(
        Alert.device_id == device_id,
        Alert.last_seq >= min(lo for lo, _ in ranges),  # a range of (device_id, last_seq)
        or_(*(and_(Alert.last_seq >= lo, Alert.first_seq <= hi) for lo, hi in ranges)),
        Alert.kind.in_(_ABSENT),
    ).order_by(Alert.id))).scalars())


@functools.cache
def _reports_stmt() -> Select[Any]:
    dev = bindparam("dev")
    last_q = (select(SeqReport.last_seq).where(SeqReport.device_id == dev)
              .order_by(SeqReport.last_seq.desc()).limit(1).scalar_subquery())
    # The highest report whose grace period is over matters only if it is above ``top``.
    due_q = (select(SeqReport.last_seq).where(
        SeqReport.device_id == dev, SeqReport.last_seq >= bindparam("first"),
        SeqReport.reported_at <= bindparam("cutoff"),
    ).order_by(SeqReport.last_seq.desc()).limit(1).scalar_subquery())
    return select(last_q, due_q)


@functools.cache
def _first_report_stmt() -> Select[Any]:
    return (select(SeqReport.reported_at)
            .where(SeqReport.device_id == bindparam("dev"), SeqReport.last_seq >= bindparam("hi"))
            .order_by(SeqReport.last_seq).limit(1))


async def _tail_gap(
    session: AsyncSession,
    device_id: str,
    top: int | None,
    top_variants: Sequence[ArrivedManifest],
    now: dt.datetime,
    settings: OversightSettings,
) -> Gap | None:
    """The not-uploaded gap above the highest present number ``top`` (manifests
    ``top_variants``), cut to its grace period, as :func:`check_device` computes it; None if
    there is none or its grace period is not over. Reads only the reports above ``top``."""
    first = 0 if top is None else top + 1
    reported_last, due = (await session.execute(_reports_stmt(), {
        "dev": device_id, "first": first, "cutoff": now - settings.not_uploaded_grace,
    })).one()
    if reported_last is None or reported_last < first or due is None:
        return None
    (gap,) = [g for g in find_gaps(device_id, top_variants, reported_last, first_seq=first
                                   if top is None else top)
              if g.kind is GapKind.NOT_UPLOADED]
    hi = _grace_cut(gap, due)
    if hi is None:
        return None
    first_reported = await session.scalar(_first_report_stmt(), {"dev": device_id, "hi": hi})
    return dataclasses.replace(gap, last_seq=hi, window_end=first_reported)


def _involves(gap: Gap, seq: int) -> bool:
    """Whether ``gap`` (of a neighbourhood of ``seq``) exists because ``seq`` is present."""
    if gap.kind is GapKind.CHAIN_BROKEN:
        return gap.first_seq <= seq <= gap.last_seq
    return gap.last_seq == seq - 1 or gap.first_seq == seq + 1


async def _device_officer(
    session: AsyncSession, device_id: str, gaps: Sequence[Gap]
) -> str | None:
    """The recorder's officer, read only when an absent gap names no officer."""
    if not any(g.kind is not GapKind.CHAIN_BROKEN and not g.officer_ids for g in gaps):
        return None
    dev = await session.get(Device, device_id)
    return _officer(dev.officer_id) if dev is not None else None


async def check_segment(
    session: AsyncSession,
    device_id: str,
    seq: int,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> list[Alert]:
    """Check ``device_id`` after its segment ``seq`` was stored: what :func:`check_device`
    would raise and resolve, reading only the neighbourhood of ``seq`` (gaps and links to the
    nearest present numbers below and above, a replaced manifest for ``seq``, the not-uploaded
    tail) and the absent-number alerts that contain ``seq``. Returns the alerts raised."""
    now = now or utcnow()
    below, above, top = await _bounds(session, device_id, seq)
    variants = await _variants(session, device_id,
                               [q for q in (below, seq, above, top) if q is not None])
    near = [m for q in (below, seq, above) if q is not None for m in variants.get(q, ())]
    # The numbers from ``below`` up, with genesis only when ``seq`` is the lowest present one.
    gaps = [g for g in find_gaps(device_id, near, first_seq=0 if below is None else below,
                                 genesis_hash=ZERO_HASH if below is None else None)
            if _involves(g, seq)]
    tail = await _tail_gap(session, device_id, top, variants.get(top, []) if top is not None
                           else [], now, settings)
    gaps += [tail] if tail is not None else []
    ranges = [(g.first_seq, g.last_seq) for g in gaps if g.kind is not GapKind.CHAIN_BROKEN]
    # Those that can cover an absent gap here, and those ``seq`` can complete.
    existing = await _overlapping_alerts(session, device_id, ranges + [(seq, seq)])
    raised = await _raise_gaps(session, device_id, gaps, existing,
                               await _device_officer(session, device_id, gaps), now)
    for a in existing:
        if a.resolved_at is None and a.first_seq is not None and a.last_seq is not None and \
                a.first_seq <= seq <= a.last_seq and \
                not _hole_next_to(seq, below, above, a.first_seq, a.last_seq) and \
                await _count_present(session, device_id, a.first_seq, a.last_seq) == \
                a.last_seq - a.first_seq + 1:
            await close_alert(session, a, HUB, _RESOLVED_NOTE, now)
    return raised


def _hole_next_to(seq: int, below: int | None, above: int | None, lo: int, hi: int) -> bool:
    """Whether ``[lo, hi]`` (containing ``seq``) has an absent number next to ``seq``: then it
    is not complete and need not be counted."""
    left = lo < seq if below is None else max(below + 1, lo) <= seq - 1
    right = hi > seq if above is None else seq + 1 <= min(above - 1, hi)
    return left or right


async def check_tail(
    session: AsyncSession,
    device_id: str,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> list[Alert]:
    """Check the numbers ``device_id`` reported above its highest present one (after a
    heartbeat, and periodically for the grace period): what :func:`check_device` would raise
    when nothing arrived since the last check. Returns the alerts raised."""
    now = now or utcnow()
    _, _, top = await _bounds(session, device_id, None)
    variants = await _variants(session, device_id, [top]) if top is not None else {}
    gap = await _tail_gap(session, device_id, top, variants.get(top, []) if top is not None
                          else [], now, settings)
    if gap is None:
        return []
    existing = await _overlapping_alerts(session, device_id, [(gap.first_seq, gap.last_seq)])
    return await _raise_gaps(session, device_id, [gap], existing,
                             await _device_officer(session, device_id, [gap]), now)


async def on_heartbeat(
    session: AsyncSession,
    device_id: str,
    last_seq: int,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> list[Alert]:
    """A verified heartbeat said ``device_id`` has produced segments up to ``last_seq``
    (-1: none yet). Records when each new number was first reported (the grace period and the
    deadline of segments still on the recorder count from then) and checks the numbers above
    the highest arrived one. Call it inside the heartbeat's transaction; returns the alerts
    raised."""
    now = now or utcnow()
    await record_report(session, device_id, last_seq, now)
    return await check_tail(session, device_id, now, settings)


async def _resolve_complete(session: AsyncSession, now: dt.datetime) -> None:
    """Resolve every open absent-number alert whose numbers have all arrived (reads the open
    alerts only, and counts over their ranges)."""
    for a in list((await session.execute(select(Alert).where(
        Alert.resolved_at.is_(None), Alert.kind.in_(_ABSENT), Alert.device_id.is_not(None),
        Alert.first_seq.is_not(None), Alert.last_seq.is_not(None),
    ).order_by(Alert.id))).scalars()):
        assert a.device_id is not None and a.first_seq is not None and a.last_seq is not None
        if await _count_present(session, a.device_id, a.first_seq, a.last_seq) == \
                a.last_seq - a.first_seq + 1:
            await close_alert(session, a, HUB, _RESOLVED_NOTE, now)


async def scan_gaps(
    session: AsyncSession,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
    *,
    full: bool = False,
) -> list[Alert]:
    """Check every recorder (run it every few minutes and at start-up). Takes over
    ``devices.last_seq_reported`` when the heartbeat hook was not called, checks and gives an
    upload deadline to every stored segment whose ``on_segment_stored`` never completed,
    raises the ``not_uploaded`` alerts whose grace period ran out since the last heartbeat,
    and resolves absent-number alerts whose segments have all arrived. Returns the alerts
    raised: deadline (calendar) alerts first, then by device and sequence number.

    Reads per device its highest number and the reports above it, and the open alerts; of
    the stored segments only those without a deadline row are fetched (one anti-join of
    ``segments`` and ``segment_deadlines`` in the database). ``full=True`` recomputes every
    device from its whole history with :func:`check_device` instead (the previous behaviour,
    kept as a cross-check of the incremental one; it reads every segment)."""
    from .timeliness import backfill_deadlines, unchecked_segments

    now = now or utcnow()
    if full:
        return await _scan_full(session, now, settings)
    devices = list((await session.execute(select(Device).order_by(Device.device_id))).scalars())
    for dev in devices:  # before any check, so every check sees the same reports
        if dev.last_seq_reported is not None:
            await record_report(session, dev.device_id, dev.last_seq_reported, now)
    missed = await unchecked_segments(session)
    raised = await backfill_deadlines(session, now, settings, missed)
    found: dict[str, list[Alert]] = {}
    for seg in missed:  # by device and number
        found.setdefault(seg.device_id, []).extend(
            await check_segment(session, seg.device_id, seg.seq, now, settings))
    for dev in devices:
        found.setdefault(dev.device_id, []).extend(
            await check_tail(session, dev.device_id, now, settings))
    await _resolve_complete(session, now)
    for device_id in sorted(found):
        raised += sorted(found[device_id],
                         key=lambda a: (a.first_seq or 0, a.last_seq or 0, a.kind))
    return raised


async def _scan_full(
    session: AsyncSession, now: dt.datetime, settings: OversightSettings
) -> list[Alert]:
    from .timeliness import backfill_deadlines

    raised = await backfill_deadlines(session, now, settings)
    devices = {d.device_id: d for d in (await session.execute(select(Device))).scalars()}
    ids = set(devices) | set((await session.execute(select(Segment.device_id).distinct())).scalars())
    for device_id in sorted(ids):
        dev = devices.get(device_id)
        if dev is not None and dev.last_seq_reported is not None:
            await record_report(session, device_id, dev.last_seq_reported, now)
        raised += await check_device(session, device_id, now, settings)
    return raised


async def report_replaced(
    session: AsyncSession,
    manifest: SegmentManifest,
    stored: Segment,
    now: dt.datetime | None = None,
) -> Alert | None:
    """A recorder signed a second, different segment under a sequence number (or segment id)
    that is already stored: the ingest refuses it, and this raises a ``chain_broken`` alert
    naming the device, the officers and the time windows of both (a replaced record: 第二十六条
    forbids officers keeping or altering recordings). Once per distinct manifest: the same
    refused manifest sent again raises nothing new. None if it was raised before."""
    digest = hashlib.sha256(manifest.sha256 + manifest.segment_id.encode()).hexdigest()[:16]
    new_start, new_end = from_ms(manifest.start_ms), from_ms(manifest.end_ms)
    officers = sorted({o for o in (_officer(manifest.officer_id), _officer(stored.officer_id))
                       if o})
    same_seq = stored.device_id == manifest.device_id and stored.seq == manifest.seq
    what = (f"序号 {manifest.seq} 的音像记录已于 {local_text(stored.received_at)} 存储"
            if same_seq else f"记录编号 {manifest.segment_id} 已被设备 {stored.device_id} "
            f"序号 {stored.seq} 的记录使用")
    message = (
        f"设备 {manifest.device_id}：{what}，又收到该设备签名的另一条内容不同的记录"
        f"（序号 {manifest.seq}，时间 {local_text(new_start)} 至 {local_text(new_end)}），"
        f"已拒收。已存储记录的时间 {local_text(stored.start_at)} 至 "
        f"{local_text(stored.end_at)}；相关执法人员：{'、'.join(officers) or '未知'}。"
        "记录可能被替换或伪造，请核查该设备及其使用人员"
    )
    return await raise_alert(
        session, kind=AlertKind.CHAIN_BROKEN,
        key=f"replaced:{manifest.device_id}:{manifest.seq}:{digest}", message_zh=message,
        device_id=manifest.device_id, officer_ids=officers,
        window_start=min(new_start, stored.start_at), window_end=max(new_end, stored.end_at),
        first_seq=manifest.seq, last_seq=manifest.seq, segment_id=stored.segment_id, now=now,
    )
