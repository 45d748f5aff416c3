"""Tables of the trust domain: archives (which lock a case), archive numbering, access
requests and their decisions (第二十九条), confidentiality marks on cases and records.

``archives`` rows are permanent: the migration (0006_trust) refuses UPDATE and DELETE, so a
case once archived stays locked; corrections afterwards are new, audited records.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base
from .types import UTCDateTime, utcnow


class Archive(Base):
    """An archived case file: the lock on the case and where its package lives."""

    __tablename__ = "archives"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    archive_no: Mapped[str] = mapped_column(String(128), unique=True)
    archived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_by: Mapped[str] = mapped_column(String(128))
    package_ref: Mapped[str] = mapped_column(String(300))
    package_sha256: Mapped[str] = mapped_column(String(64))  # of tagmanifest-sha256.txt
    checkpoint_size: Mapped[int] = mapped_column(BigInteger)
    audit_idx: Mapped[int] = mapped_column(BigInteger)  # the ARCHIVE event in the audit log
    report_ok: Mapped[bool] = mapped_column(Boolean)


class ArchiveCounter(Base):
    """Last sequence number used per numbering scope (e.g. ``xinxiang|2026|处罚``)."""

    __tablename__ = "archive_counters"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)


class AccessRequest(Base):
    """A request to see records of a case, and what the agency head decided."""

    __tablename__ = "access_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(64), index=True)
    requester: Mapped[str] = mapped_column(String(128), index=True)
    requester_kind: Mapped[str] = mapped_column(String(16))  # party | official
    purpose: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)  # JSON list of item ids, or ["*"]
    requested_until: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), index=True)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    granted_scope: Mapped[str | None] = mapped_column(Text)
    granted_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(Text)


class ConfidentialityMark(Base):
    """Confidentiality classes of a whole case (``item == "*"``) or of one item in it."""

    __tablename__ = "confidentiality_marks"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    item: Mapped[str] = mapped_column(String(200), primary_key=True)
    classes: Mapped[str] = mapped_column(String(200))  # space-separated class names
    owner: Mapped[str] = mapped_column(String(128), default="")  # whose secret / privacy
    marked_by: Mapped[str] = mapped_column(String(128))
    marked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
