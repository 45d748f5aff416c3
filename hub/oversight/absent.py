"""The sequence numbers the hub knows are absent from a recorder, read in bounded steps.

Used by the 第二十六条 lists (:func:`.timeliness.overdue_segments`, ``at_risk_segments``) and
by the metrics refresh: neither may read a recorder's whole history each time (both run
often, and a recorder adds thousands of segments a year). What is absent is known from the
open (or administrator-resolved) absent-number alerts below the highest stored number, which
the ingest raises as soon as a later number arrives, and from the heartbeat reports above it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, or_, select, union

from ..db.models import Segment
from ..db.oversight_models import Alert, SegmentDeletion, SeqReport
from .alerts import ABSENT_KINDS, HUB
from .completeness import _bounds, _officer, _variants


@dataclasses.dataclass(frozen=True)
class AbsentRun:
    """Numbers ``first``..``last`` (inclusive) absent, their recording ended by ``ended`` at
    the latest, and the officers of the recordings around them (may be empty)."""

    first: int
    last: int
    ended: dt.datetime
    officers: tuple[str, ...] = ()


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
    session: Any, device_id: str, device_officer: str | None = None
) -> list[AbsentRun]:
    """The numbers of ``device_id`` the hub knows are absent, with the bound on their
    recording end that :func:`.timeliness.overdue_segments` uses (module doc there): a number
    below the highest present one ended before the next present number started (its earliest
    manifest's start); a number above it, reported by a heartbeat, before the hub first
    received a heartbeat reporting it. Officers: those the alerts name (the recordings next to
    the hole), for the tail the officer of the highest stored recording, else
    ``device_officer``.

    Bounded reads: the highest present number (one index probe), the heartbeat reports above
    it, and the absent-number alerts that are open or were resolved by an administrator (an
    absent number below the highest present one is always in such an alert: ``missing`` is
    raised as soon as a later number is stored, and the hub resolves an alert only once all its
    numbers arrived), with the present numbers inside them."""
    _, _, top = await _bounds(session, device_id, None)
    out: list[AbsentRun] = []
    if top is not None:
        alerts = (await session.execute(
            select(Alert.first_seq, Alert.last_seq, Alert.officer_ids).where(
                Alert.device_id == device_id, Alert.kind.in_([k.value for k in ABSENT_KINDS]),
                Alert.first_seq.is_not(None), Alert.first_seq < top,
                or_(Alert.resolved_at.is_(None), Alert.resolved_by != HUB))
        )).all()
        absent: list[tuple[int, int]] = []
        named: list[tuple[int, int, set[str]]] = []
        for first, last, officer_ids in alerts:
            last = min(last, top - 1)
            if last >= first:
                absent += holes(first, last,
                                await present_numbers(session, device_id, first, last))
                named.append((first, last, {o for o in (officer_ids or "").split(",") if o}))
        for lo, hi in merge(absent):
            # Every absent number of a run shares the next present number (if an absent
            # number outside any alert followed, the next present one is still the same).
            _, nxt, _ = await _bounds(session, device_id, hi)
            if nxt is None:
                continue
            starts = [m.start for m in (await _variants(session, device_id, [nxt])).get(nxt, [])]
            if starts:
                officers = set().union(*(o for a, b, o in named if a <= hi and lo <= b))
                out.append(AbsentRun(lo, hi, min(starts), _officers(officers, device_officer)))
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
                out.append(AbsentRun(lo, seq, at, tail_officers))
                lo = seq + 1
    return out


def _officers(named: set[str], device_officer: str | None) -> tuple[str, ...]:
    fallback = _officer(device_officer)
    return tuple(sorted(named)) or ((fallback,) if fallback else ())
