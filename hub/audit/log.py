"""The audit log in the database: append events, read heads and proofs, sign checkpoints.

Appends happen inside the caller's transaction, so an event is logged exactly when the change
it describes commits. The first statement of an append increments ``audit_head.size``, which
takes the write lock (SQLite) or the row lock (PostgreSQL): appends are serialised and indices
are contiguous. The tree is stored as complete subtrees (see :mod:`.compact`), so appending
writes about two rows and every root and proof costs O(log n) lookups.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ..db.audit_models import AuditCheckpoint, AuditEntry, AuditHead, AuditNode
from ..db.types import utcnow
from .checkpoint import Checkpoint, sign_checkpoint
from .compact import CompactRange, peak_positions
from .entries import AuditEvent, EventType, JSONValue, decode_event
from .merkle import EMPTY_ROOT, TreeHead, consistency_proof, hash_leaf, inclusion_proof
from .note import SignerKey

log = logging.getLogger(__name__)

#: Default checkpoint origin; deployments set their own (it names the log, not a URL fetch).
DEFAULT_ORIGIN = "lerec.local/audit"


async def record_event(
    session: AsyncSession,
    event_type: EventType | str,
    actor: str,
    subjects: Sequence[str] = (),
    details: Mapping[str, JSONValue] | None = None,
    at: dt.datetime | None = None,
) -> int:
    """Append one event in the caller's transaction; return its index in the log.

    ``subjects`` are typed ids without spaces, e.g. ``segment:<id>``, ``case:<id>``,
    ``device:<id>``, ``user:<name>``; ``actor`` is who did it (``user:<name>``, ``device:<id>``,
    ``hub``)."""
    return (await record_events(session, [(event_type, actor, subjects, details, at)]))[0]


#: one event for :func:`record_events`: (type, actor, subjects, details, at)
EventSpec = tuple[EventType | str, str, Sequence[str], Mapping[str, JSONValue] | None,
                  dt.datetime | None]


async def record_events(session: AsyncSession, specs: Sequence[EventSpec]) -> list[int]:
    """Append several events, in order, in the caller's transaction; return their indices.

    Four statements whatever the count (bump the head, read the peaks, insert the entries,
    insert the completed nodes) instead of four per event: the ingest logs two events per
    stored segment."""
    events = []
    for event_type, actor, subjects, details, at in specs:
        if any(" " in s for s in subjects):
            raise ValueError("audit subjects are ids and may not contain spaces")
        events.append(AuditEvent(
            type=EventType(event_type), actor=actor, time=at or utcnow(),
            subjects=tuple(subjects), details=dict(details or {}),
        ))
    if not events:
        return []
    head = AuditHead.__table__.c  # Core statements: no ORM bulk machinery per append
    end = (
        await session.execute(
            update(AuditHead.__table__).where(head.id == 1)
            .values(size=head.size + len(events)).returning(head.size)
        )
    ).scalar_one()
    first = end - len(events)
    tree = CompactRange(first, await _peaks(session, first))
    entries, nodes = [], []
    for i, event in enumerate(events):
        data = event.encode()
        entries.append({"idx": first + i, "at": event.time, "type": event.type.value,
                        "actor": event.actor, "subjects": " ".join(event.subjects),
                        "data": data})
        nodes.extend({"level": n.level, "idx": n.index, "hash": n.hash}
                     for n in tree.append(hash_leaf(data)))
    await session.execute(insert(AuditEntry.__table__), entries)
    await session.execute(insert(AuditNode.__table__), nodes)
    return list(range(first, end))


@functools.cache
def _peaks_stmt(count: int) -> Any:
    """The stored subtrees at ``count`` (level, index) positions, as a statement built once
    per count (there are at most 64): building it per append cost more than running it."""
    node = AuditNode.__table__.c
    return select(node.level, node.idx, node.hash).where(or_(*(
        and_(node.level == bindparam(f"l{i}"), node.idx == bindparam(f"i{i}"))
        for i in range(count))))


async def _peaks(session: AsyncSession, size: int) -> list[bytes]:
    positions = peak_positions(size)
    if not positions:
        return []
    params: dict[str, int] = {}
    for i, (lv, ix) in enumerate(positions):
        params[f"l{i}"], params[f"i{i}"] = lv, ix
    rows = (await session.execute(_peaks_stmt(len(positions)), params)).all()
    found = {(r.level, r.idx): r.hash for r in rows}
    missing = [p for p in positions if p not in found]
    if missing:
        raise RuntimeError(f"audit tree is missing stored subtrees {missing}; run lerec-verify log")
    return [found[p] for p in positions]


class _SyncStore:
    """A :class:`SubtreeStore` over a synchronous session (used through ``run_sync``)."""

    def __init__(self, session: Session, size: int) -> None:
        self.session = session
        self._size = size

    def size(self) -> int:
        return self._size

    def subtree_hash(self, level: int, index: int) -> bytes:
        h = self.session.execute(
            select(AuditNode.hash).where(AuditNode.level == level, AuditNode.idx == index)
        ).scalar_one_or_none()
        if h is None:
            raise KeyError((level, index))
        return bytes(h)

    def leaf_hash(self, index: int) -> bytes:
        return self.subtree_hash(0, index)

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        rows = self.session.execute(
            select(AuditNode.hash).where(AuditNode.level == 0, AuditNode.idx >= start,
                                         AuditNode.idx < end).order_by(AuditNode.idx)
        ).scalars()
        return [bytes(h) for h in rows]


async def size(session: AsyncSession) -> int:
    return int((await session.execute(select(AuditHead.size).where(AuditHead.id == 1))).scalar_one())


async def lock_head(session: AsyncSession) -> None:
    """Take the lock every append takes (the ``audit_head`` row, ``FOR UPDATE``; SQLite's
    single writer needs none) now, before a row lock of the caller's: a transaction that
    locks a row and then appends would otherwise deadlock on PostgreSQL with one that appended
    first and then locks the same row. Lock order: the audit head, then anything else."""
    await session.execute(select(AuditHead.id).where(AuditHead.id == 1).with_for_update())


async def head(session: AsyncSession, tree_size: int | None = None) -> TreeHead:
    n = await size(session) if tree_size is None else tree_size
    if n == 0:
        return TreeHead(0, EMPTY_ROOT)
    return TreeHead(n, CompactRange(n, await _peaks(session, n)).root())


async def prove_inclusion(session: AsyncSession, index: int, tree_size: int) -> list[bytes]:
    return await session.run_sync(
        lambda s: inclusion_proof(_SyncStore(s, tree_size), index, tree_size)
    )


async def prove_consistency(session: AsyncSession, first: int, second: int) -> list[bytes]:
    return await session.run_sync(
        lambda s: consistency_proof(_SyncStore(s, second), first, second)
    )


async def entries(
    session: AsyncSession, *, subject: str | None = None, start: int = 0, limit: int = 1000
) -> list[tuple[int, AuditEvent]]:
    q = select(AuditEntry.idx, AuditEntry.data).where(AuditEntry.idx >= start)
    if subject is not None:
        # subjects are space-separated ids without spaces; match whole words
        q = q.where((" " + AuditEntry.subjects + " ").contains(f" {subject} "))
    rows = (await session.execute(q.order_by(AuditEntry.idx).limit(limit))).all()
    return [(r.idx, decode_event(bytes(r.data))) for r in rows]


def signer_from_key(key: Ed25519PrivateKey, name: str) -> SignerKey:
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return SignerKey.from_seed(name, seed)


async def make_checkpoint(
    session: AsyncSession, key: Ed25519PrivateKey, origin: str = DEFAULT_ORIGIN
) -> bytes:
    """Sign the current tree head as a C2SP checkpoint and keep it (idempotent per size)."""
    th = await head(session)
    existing = await session.get(AuditCheckpoint, th.size)
    if existing is not None:
        return bytes(existing.note)
    note = sign_checkpoint(Checkpoint.from_head(origin, th), signer_from_key(key, origin))
    session.add(AuditCheckpoint(size=th.size, at=utcnow(), note=note))
    await session.flush()
    log.info("audit checkpoint at size %d", th.size)
    return note


async def latest_checkpoint(session: AsyncSession) -> bytes | None:
    row = (
        await session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc()).limit(1))
    ).scalar_one_or_none()
    return None if row is None else bytes(row.note)


def details_of(event: AuditEvent) -> dict[str, Any]:
    return dict(event.details)
