"""Alerts: raised once (idempotent by ``dedup_key``), resolved automatically when the cause goes
away or by an administrator with a note. Raising and resolving are both in the audit log."""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.entries import EventType
from ..audit.log import lock_head, record_event
from ..db.oversight_models import Alert
from ..db.types import utcnow
from .errors import AlreadyResolved, NoteRequired, NotFound

log = logging.getLogger(__name__)

HUB = "hub"


class AlertKind(enum.StrEnum):
    MISSING = "missing"  # seq never arrived although later ones did
    CHAIN_BROKEN = "chain_broken"  # a manifest does not chain: replaced or forged
    NOT_UPLOADED = "not_uploaded"  # the recorder reported it, it has not arrived (after grace)
    CALENDAR_NOT_COVERED = "calendar_not_covered"  # a deadline cannot be computed


#: Kinds that mean "these sequence numbers are absent"; they cover each other when deduplicating.
ABSENT_KINDS = (AlertKind.MISSING, AlertKind.NOT_UPLOADED)


def principal(name: str) -> str:
    """Audit actor for a person given by user name (``alice`` -> ``user:alice``); the hub
    itself acts as ``hub``."""
    return name if ":" in name or name == HUB else f"user:{name}"


async def raise_alert(
    session: AsyncSession,
    *,
    kind: AlertKind,
    key: str,
    message_zh: str,
    device_id: str | None = None,
    officer_ids: Iterable[str] = (),
    window_start: dt.datetime | None = None,
    window_end: dt.datetime | None = None,
    first_seq: int | None = None,
    last_seq: int | None = None,
    segment_id: str | None = None,
    now: dt.datetime | None = None,
) -> Alert | None:
    """Create the alert unless one with ``key`` exists (open or resolved); None if it did."""
    if await session.scalar(select(Alert.id).where(Alert.dedup_key == key)) is not None:
        return None
    values = dict(
        kind=kind.value, dedup_key=key, device_id=device_id,
        officer_ids=",".join(sorted(set(officer_ids))), window_start=window_start,
        window_end=window_end, first_seq=first_seq, last_seq=last_seq, segment_id=segment_id,
        message_zh=message_zh, created_at=now or utcnow(),
    )
    # INSERT ... ON CONFLICT DO NOTHING: another worker may raise the same alert at the same
    # moment. (Not a SAVEPOINT: on SQLite, a savepoint opened before the transaction's first
    # write starts the transaction itself, and releasing it committed the alert on its own.)
    insert = sqlite_insert if session.bind.dialect.name == "sqlite" else pg_insert
    alert_id = await session.scalar(
        insert(Alert).values(**values).on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(Alert.id))
    if alert_id is None:  # another worker raised it first
        return None
    alert = await session.get(Alert, alert_id)
    assert alert is not None
    subjects = [f"alert:{alert.id}"]
    if device_id:
        subjects.append(f"device:{device_id}")
    if segment_id:
        subjects.append(f"segment:{segment_id}")
    await record_event(session, EventType.GAP_DETECTED, HUB, subjects, {
        "kind": kind.value, "first_seq": first_seq, "last_seq": last_seq,
        "officers": list(alert.officers), "message": message_zh,
    }, at=alert.created_at)
    log.warning("alert %d raised: %s", alert.id, message_zh)
    return alert


async def close_alert(
    session: AsyncSession, alert: Alert, actor: str, note: str, now: dt.datetime | None = None
) -> Alert | None:
    """Mark ``alert`` resolved and log it (``actor`` ``hub`` for automatic resolution).

    Takes the audit head's lock, then the alert's row lock (the one lock order of every
    transaction that appends audit entries: the hub closes several alerts in one), and decides
    on the row as committed, not on the caller's copy: an alert someone resolved meanwhile
    keeps that resolution — the hub then leaves it (returns None), a person is refused
    (:class:`AlreadyResolved`)."""
    await lock_head(session)
    row = (await session.execute(
        select(Alert).where(Alert.id == alert.id).with_for_update()
        .execution_options(populate_existing=True))).scalar_one()
    if row.resolved_at is not None:
        if actor == HUB:
            return None
        raise AlreadyResolved(row.id)
    row.resolved_at = now or utcnow()
    row.resolved_by = actor
    row.resolved_note = note
    await session.flush()
    subjects = [f"alert:{row.id}"] + ([f"device:{row.device_id}"] if row.device_id else [])
    await record_event(session, EventType.RECORD_CHANGED, principal(actor), subjects, {
        "action": "alert_resolved", "kind": row.kind, "note": note,
    }, at=row.resolved_at)
    log.info("alert %d resolved by %s: %s", row.id, actor, note)
    return row


async def resolve_alert(
    session: AsyncSession, alert_id: int, actor: str, note: str, now: dt.datetime | None = None
) -> Alert:
    """An administrator resolves an alert, with a note saying why (e.g. 设备损坏，该段未能录制).

    The alert stays in the table and is never raised again for the same sequence numbers;
    the resolution is an audit entry."""
    if not note.strip():
        raise NoteRequired("处理告警")
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise NotFound("告警", alert_id)
    closed = await close_alert(session, alert, actor, note.strip(), now)
    assert closed is not None  # (a person: refused above if resolved meanwhile)
    return closed


async def resolved_alerts(session: AsyncSession, limit: int = 50) -> list[Alert]:
    """The most recently resolved alerts (by the hub or by a person), newest first."""
    return list((await session.execute(
        select(Alert).where(Alert.resolved_at.is_not(None))
        .order_by(Alert.resolved_at.desc(), Alert.id.desc()).limit(limit))).scalars())


async def list_alerts(
    session: AsyncSession,
    *,
    open_only: bool = True,
    device_id: str | None = None,
    kinds: Sequence[AlertKind] | None = None,
    limit: int = 500,
) -> list[Alert]:
    """Alerts, newest first, for the admin UI."""
    q = select(Alert)
    if open_only:
        q = q.where(Alert.resolved_at.is_(None))
    if device_id is not None:
        q = q.where(Alert.device_id == device_id)
    if kinds:
        q = q.where(Alert.kind.in_([k.value for k in kinds]))
    return list((await session.execute(q.order_by(Alert.id.desc()).limit(limit))).scalars())
