"""The sequence numbers the hub knows are absent from a recorder, read in bounded steps.

Used by the 第二十六条 lists (:func:`.timeliness.overdue_segments`, ``at_risk_segments``) and
by the metrics refresh: neither may read a recorder's whole history each time (both run
often, and a recorder adds thousands of segments a year). What is absent is known from the
open (or administrator-resolved) absent-number alerts below the highest stored number, which
the ingest raises as soon as a later number arrives, and from the heartbeat reports above it
(the alerts reaching above it only say whether an administrator handled those numbers).

**Resolved by an administrator.** An administrator may resolve an absent-number alert with a
note (e.g. 记录仪丢失，已书面说明). Its numbers are still absent (the record never arrived, a fact
never dropped from the lists), but they are *handled*: each run carries the
:class:`Resolution` (who, when, the note). A run is split where the alerts naming it differ, so
that every number is marked exactly as its own alert says: a part is handled only if each of
its numbers is in an alert an administrator resolved and in no open one; the rest of the run
(numbers of open alerts, or reported by heartbeats and named by no resolved alert) stays
unresolved. Marking a whole run handled because part of it was would hide numbers nobody
explained; marking it all unresolved would hide an explanation that was given.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, bindparam, false, or_, select, union

from ..db.models import Segment
from ..db.oversight_models import Alert, SegmentDeletion, SeqReport
from ..db.types import utcnow
from .alerts import ABSENT_KINDS, HUB
from .completeness import _bounds, _officer, _variants


#: how long after its resolution a handled run below the highest stored number stays listed
HANDLED_WINDOW = dt.timedelta(days=90)


@dataclasses.dataclass(frozen=True)
class Resolution:
    """An administrator's resolution of the absent-number alert ``alert_id``: ``by`` (as
    recorded on the alert), ``at``, and the note saying why the numbers will not arrive."""

    alert_id: int
    by: str
    at: dt.datetime
    note: str


@dataclasses.dataclass(frozen=True)
class AbsentRun:
    """Numbers ``first``..``last`` (inclusive) absent, their recording ended by ``ended`` at
    the latest, the officers of the recordings around them (may be empty), and the
    administrator's resolution covering every number of the run (None: not handled)."""

    first: int
    last: int
    ended: dt.datetime
    officers: tuple[str, ...] = ()
    resolution: Resolution | None = None


@dataclasses.dataclass(frozen=True)
class _Named:
    """An absent-number alert as :func:`absent_runs` reads it."""

    first: int
    last: int
    officers: frozenset[str]
    resolution: Resolution | None  # None: open


def _split(
    lo: int, hi: int, alerts: Iterable[_Named]
) -> list[tuple[int, int, Resolution | None]]:
    """``[lo, hi]`` cut into parts ``(first, last, resolution)``: ``resolution`` is that of
    the administrator-resolved alerts covering every number of the part (the latest one if
    several do), None where a number is in an open alert or in no resolved one. Adjacent
    parts with the same resolution are joined."""
    inside = [a for a in alerts if a.first <= hi and lo <= a.last]
    cuts = sorted({lo, hi + 1} | {c for a in inside
                                   for c in (max(a.first, lo), min(a.last, hi) + 1)})
    out: list[tuple[int, int, Resolution | None]] = []
    for p, q in itertools.pairwise(cuts):  # each alert covers all of [p, q) or none
        covering = [a for a in inside if a.first <= p and q - 1 <= a.last]
        done = [a.resolution for a in covering if a.resolution is not None]
        res = None if len(done) < len(covering) or not done else \
            max(done, key=lambda r: (r.at, r.alert_id))
        if out and out[-1][2] == res and out[-1][1] == p - 1:
            out[-1] = (out[-1][0], q - 1, res)
        else:
            out.append((p, q - 1, res))
    return out


@functools.cache
def _present_stmt() -> Any:
    dev: Any = bindparam("dev")
    lo: Any = bindparam("lo")
    hi: Any = bindparam("hi")
    return union(
        select(Segment.seq).where(Segment.device_id == dev, Segment.seq.between(lo, hi)),
        select(SegmentDeletion.seq).where(SegmentDeletion.device_id == dev,
                                          SegmentDeletion.seq.between(lo, hi)),
    )


async def present_numbers(session: Any, device_id: str, lo: int, hi: int) -> set[int]:
    """The present numbers of ``[lo, hi]`` (stored, or deleted with approval: as the
    oversight counts them); an index range scan over ``[lo, hi]``."""
    rows = await session.execute(_present_stmt(), {"dev": device_id, "lo": lo, "hi": hi})
    return {r[0] for r in rows}


def holes(lo: int, hi: int, present: Iterable[int]) -> list[tuple[int, int]]:
    """``[lo, hi]`` without the numbers of ``present``, as runs ``(first, last)`` (never
    walks the numbers one by one: a faulty recorder's jump can make a range huge)."""
    out: list[tuple[int, int]] = []
    nxt = lo
    for q in sorted(p for p in set(present) if lo <= p <= hi):
        if q > nxt:
            out.append((nxt, q - 1))
        nxt = q + 1
    if nxt <= hi:
        out.append((nxt, hi))
    return out


def merge(runs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or adjacent runs joined, in order."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(runs):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


async def absent_runs(
    session: Any, device_id: str, device_officer: str | None = None,
    now: dt.datetime | None = None,
) -> list[AbsentRun]:
    """The numbers of ``device_id`` the hub knows are absent, with the bound on their
    recording end that :func:`.timeliness.overdue_segments` uses (module doc there): a number
    below the highest present one ended before the next present number started (its earliest
    manifest's start); a number above it, reported by a heartbeat, before the hub first
    received a heartbeat reporting it. Officers: those the alerts name (the recordings next to
    the hole), for the tail the officer of the highest stored recording, else
    ``device_officer``. Runs are split where an administrator resolved the alert of some of
    their numbers only (module doc): each part says whether it was handled.

    Bounded reads: the highest present number (one index probe), the heartbeat reports above
    it, and the absent-number alerts that are open or were resolved by an administrator (an
    absent number below the highest present one is always in such an alert: ``missing`` is
    raised as soon as a later number is stored, and the hub resolves an alert only once all its
    numbers arrived) below it or reaching above it, with the present numbers inside those
    below it. Below it, a run an administrator handled drops off :data:`HANDLED_WINDOW` after
    its resolution (the alert, its note and the audit entry stay)."""
    _, _, top = await _bounds(session, device_id, None)
    below = false() if top is None else Alert.first_seq < top
    # below the highest number, a run an administrator handled is listed for HANDLED_WINDOW
    # after the resolution (reads stay bounded as resolutions pile up over the years); above
    # it, every resolution counts, or a handled tail reported by heartbeats would be listed
    # as not handled again
    recent = or_(Alert.resolved_at.is_(None),
                 Alert.resolved_at >= (now or utcnow()) - HANDLED_WINDOW)
    alerts = (await session.execute(
        select(Alert.id, Alert.first_seq, Alert.last_seq, Alert.officer_ids, Alert.resolved_at,
               Alert.resolved_by, Alert.resolved_note).where(
            Alert.device_id == device_id, Alert.kind.in_([k.value for k in ABSENT_KINDS]),
            Alert.first_seq.is_not(None), Alert.last_seq.is_not(None),
            or_(Alert.resolved_at.is_(None), Alert.resolved_by != HUB),
            or_(and_(below, recent), Alert.last_seq > (-1 if top is None else top)))
        .order_by(Alert.id)
    )).all()
    named = [_Named(a.first_seq, a.last_seq,
                    frozenset(o for o in (a.officer_ids or "").split(",") if o),
                    None if a.resolved_at is None else
                    Resolution(a.id, a.resolved_by or "", a.resolved_at, a.resolved_note or ""))
             for a in alerts]
    out: list[AbsentRun] = []
    if top is not None:
        absent: list[tuple[int, int]] = []
        for a in named:
            last = min(a.last, top - 1)
            if last >= a.first:
                absent += holes(a.first, last,
                                await present_numbers(session, device_id, a.first, last))
        for lo, hi in merge(absent):
            # Every absent number of a run shares the next present number (if an absent
            # number outside any alert followed, the next present one is still the same).
            _, nxt, _ = await _bounds(session, device_id, hi)
            if nxt is None:
                continue
            starts = [m.start for m in (await _variants(session, device_id, [nxt])).get(nxt, [])]
            if not starts:
                continue
            for p, q, res in _split(lo, hi, named):
                officers = set().union(*(a.officers for a in named
                                         if a.first <= q and p <= a.last))
                out.append(AbsentRun(p, q, min(starts), _officers(officers, device_officer),
                                     res))
    reports = (await session.execute(
        select(SeqReport.last_seq, SeqReport.reported_at).where(
            SeqReport.device_id == device_id,
            SeqReport.last_seq > (-1 if top is None else top))
        .order_by(SeqReport.last_seq)
    )).all()
    if reports:
        last_officer = None
        if top is not None:
            arrived = (await _variants(session, device_id, [top])).get(top, [])
            last_officer = arrived[0].officer_id if arrived else None
        tail_officers = _officers({last_officer} if last_officer else set(), device_officer)
        lo = 0 if top is None else top + 1
        for seq, at in reports:  # each run of the tail: the heartbeat that first reported it
            if seq >= lo:
                out += [AbsentRun(p, q, at, tail_officers, res)
                        for p, q, res in _split(lo, seq, named)]
                lo = seq + 1
    return out


def _officers(named: set[str], device_officer: str | None) -> tuple[str, ...]:
    fallback = _officer(device_officer)
    return tuple(sorted(named)) or ((fallback,) if fallback else ())
