"""Tables of oversight: completeness alerts, upload deadlines, the working-day calendar, links
between segments and case steps, and retention (deletion requests, approvals, deletions).

Schema: migrations ``0004_oversight``, ``0008_oversight_seq`` and ``0010_oversight_holds``
(their own Alembic branch ``oversight``). Cases are owned by another domain and referenced by
string ids (``case_id``, ``step_id``) without foreign keys.
Nothing here is ever deleted: alerts are resolved, links are marked removed, a deleted
segment keeps its ``segments`` row and gets a ``segment_deletions`` record.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base
from .types import UTCDateTime, utcnow


class Alert(Base):
    """Something an administrator must look at: a gap in a recorder's sequence, a broken hash
    chain, segments reported but not uploaded, or a deadline the calendar cannot compute.

    ``dedup_key`` makes raising idempotent (also across several hub workers)."""

    __tablename__ = "oversight_alerts"
    __table_args__ = (
        Index("ix_oversight_alerts_device_kind", "device_id", "kind"),
        Index("ix_oversight_alerts_device_last_seq", "device_id", "last_seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    device_id: Mapped[str | None] = mapped_column(String(64))
    officer_ids: Mapped[str] = mapped_column(String(400), default="")  # comma-separated
    window_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_seq: Mapped[int | None] = mapped_column(BigInteger)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)  # inclusive
    segment_id: Mapped[str | None] = mapped_column(String(64))
    message_zh: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolved_note: Mapped[str | None] = mapped_column(Text)

    @property
    def officers(self) -> tuple[str, ...]:
        return tuple(o for o in self.officer_ids.split(",") if o)

    @property
    def open(self) -> bool:
        return self.resolved_at is None


class SeqReport(Base):
    """Each increase of a recorder's heartbeat ``last_seq``, with when the hub first saw it:
    the grace period and the deadline of segments still on the recorder count from here."""

    __tablename__ = "oversight_seq_reports"
    __table_args__ = (UniqueConstraint("device_id", "last_seq", name="uq_seq_reports"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class SegmentDeadline(Base):
    """The 第二十六条 upload deadline of one stored segment, computed at ingest."""

    __tablename__ = "segment_deadlines"

    segment_id: Mapped[str] = mapped_column(
        ForeignKey("segments.segment_id"), primary_key=True
    )
    ended_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # on_time|late|calendar_error
    deadline_error: Mapped[str | None] = mapped_column(Text)  # Chinese, for the administrator
    error_year: Mapped[int | None] = mapped_column(Integer, index=True)
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalendarOverride(Base):
    """An administrator's decision about one day (holiday, 调休 working weekend, closure)."""

    __tablename__ = "calendar_overrides"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    working: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(128))
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalendarYear(Base):
    """A year the administrator declares entered completely (see hub.policy.workdays)."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    set_by: Mapped[str] = mapped_column(String(128))
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SegmentLink(Base):
    """A segment used as evidence of a case step. Never deleted; removal is marked."""

    __tablename__ = "segment_links"
    __table_args__ = (
        CheckConstraint("method IN ('auto', 'manual')", name="ck_segment_links_method"),
        Index(
            "uq_segment_links_active", "segment_id", "case_id", "step_id", unique=True,
            sqlite_where=text("removed_at IS NULL"), postgresql_where=text("removed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    segment_id: Mapped[str] = mapped_column(ForeignKey("segments.segment_id"), index=True)
    case_id: Mapped[str] = mapped_column(String(128), index=True)
    step_id: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(8))  # auto | manual
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    removed_by: Mapped[str | None] = mapped_column(String(128))
    removed_reason: Mapped[str | None] = mapped_column(Text)

    @property
    def active(self) -> bool:
        return self.removed_at is None


class DeletionRequest(Base):
    """Someone asks to delete an unlinked segment after its retention period."""

    __tablename__ = "deletion_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    segment_id: Mapped[str] = mapped_column(ForeignKey("segments.segment_id"), index=True)
    requested_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|deleted|withdrawn
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class DeletionApproval(Base):
    __tablename__ = "deletion_approvals"
    __table_args__ = (UniqueConstraint("request_id", "approver", name="uq_deletion_approver"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("deletion_requests.id"), index=True)
    approver: Mapped[str] = mapped_column(String(128))
    approved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")


class SegmentHold(Base):
    """A hold (保全) on a segment: while active, retention never deletes it — a party's 查阅
    request (第二十九条), a complaint, a review or a lawsuit that may need the recording.
    Never deleted; a release is marked, with who and why."""

    __tablename__ = "segment_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    segment_id: Mapped[str] = mapped_column(ForeignKey("segments.segment_id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(128))
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(String(128))
    release_reason: Mapped[str | None] = mapped_column(Text)

    @property
    def active(self) -> bool:
        return self.released_at is None


class SegmentDeletion(Base):
    """What was deleted, why and by whose approval. The manifest is kept, so the hash chain
    still explains the hole; ``blob_deleted_at`` is set once the object left the store."""

    __tablename__ = "segment_deletions"
    __table_args__ = (Index("ix_segment_deletions_device_seq", "device_id", "seq"),)

    segment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("deletion_requests.id"))
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    officer_id: Mapped[str] = mapped_column(String(64))
    start_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_ref: Mapped[str] = mapped_column(String(128))
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    manifest: Mapped[bytes] = mapped_column(LargeBinary)
    manifest_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    why: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(128))
    approved_by: Mapped[str] = mapped_column(String(400))  # comma-separated, sorted
    deleted_by: Mapped[str] = mapped_column(String(128))
    deleted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    blob_deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    blob_note: Mapped[str] = mapped_column(Text, default="")

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(a for a in self.approved_by.split(",") if a)
