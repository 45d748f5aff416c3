"""Tables of the admin service: users and their web sessions, cases, records with their
history, attachments (第二十七条 metadata) and the interim clip links.

Schema changes go through Alembic (migrations ``0005_cases`` and ``0007_parties``, branch
``cases``).

- A record is never overwritten silently: ``case_records`` holds the current fields and a
  version number, ``case_record_versions`` every version ever submitted (who, when, why).
- Clip links live in hub/oversight's ``segment_links`` (step id = record id);
  ``clip_transcripts`` holds the 第二十七条 transcript of audio segments.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base
from .types import UTCDateTime, utcnow


class User(Base):
    """A person who uses the admin service. ``role`` is a rulebook role id; ``officer_id`` is
    the id recorders write into manifests (the officer binding), usually the user name."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32), index=True)
    officer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: 涉密资格: may see (and approve requests for) items marked 国家秘密 (第二十九条, R3)
    cleared_state_secret: Mapped[bool] = mapped_column(Boolean, default=False)
    #: JSON list of the person ids this user is or represents (the owners of 商业秘密 and
    #: 个人隐私 markings they may see); used for party (当事人) accounts
    persons: Mapped[str] = mapped_column(Text, default="[]")


class CaseParty(Base):
    """A party's (当事人) user account linked to a case it is party to (第二十九条). The link
    alone shows nothing of the case: every item needs an approved access request."""

    __tablename__ = "case_parties"
    __table_args__ = (UniqueConstraint("case_id", "user_id", name="uq_case_parties"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    linked_by: Mapped[str] = mapped_column(String(128))
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebSession(Base):
    """A server-side session. ``id`` is the SHA-256 of the cookie value (the cookie itself is
    never stored); ``user_id`` is None for the pre-login session that carries the login
    form's CSRF token. A login always creates a new row (the id rotates)."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class Case(Base):
    """One administrative enforcement case (or a decision not to start one)."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_no: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    party: Mapped[str] = mapped_column(String(200), default="")
    enforcement_type: Mapped[str] = mapped_column(String(32), index=True)
    start_mode: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str] = mapped_column(String(32), index=True)
    not_started: Mapped[bool] = mapped_column(Boolean, default=False)
    facts: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of rulebook fact ids
    handler_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    execution_ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    archived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    archive_deadline: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # compliance summary, refreshed whenever the case changes (and by the periodic refresh)
    finding_errors: Mapped[int] = mapped_column(Integer, default=0, index=True)
    finding_warnings: Mapped[int] = mapped_column(Integer, default=0)
    findings_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CaseMember(Base):
    """Who works on a case: the handler (承办人) and the officers (执法人员)."""

    __tablename__ = "case_members"
    __table_args__ = (UniqueConstraint("case_id", "user_id", name="uq_case_members"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))


class StageChange(Base):
    """Every stage transition (and the decision not to start) with who and why."""

    __tablename__ = "case_stage_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    from_stage: Mapped[str] = mapped_column(String(32))
    to_stage: Mapped[str] = mapped_column(String(32))
    by_user: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")


class CaseRecord(Base):
    """One written record of a case (a record kind of the rulebook): its current version.
    ``window_start``/``window_end`` is the time of the step (for clip linking)."""

    __tablename__ = "case_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    fields: Mapped[str] = mapped_column(Text)  # JSON object, the current version
    window_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    window_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseRecordVersion(Base):
    """Every version of every record, append-only (no silent overwrite)."""

    __tablename__ = "case_record_versions"
    __table_args__ = (UniqueConstraint("record_id", "version", name="uq_record_versions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("case_records.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    fields: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")


class Approval(Base):
    """An opinion of a 负责人 / 法制审核人员 on a record (approve or return)."""

    __tablename__ = "case_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    record_id: Mapped[int | None] = mapped_column(ForeignKey("case_records.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))  # approve / return
    opinion: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseAttachment(Base):
    """A document, photo, audio or video attached to a case (content-addressed in the blob
    store) with the 第二十七条 metadata; audio carries a transcript."""

    __tablename__ = "case_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    record_id: Mapped[int | None] = mapped_column(ForeignKey("case_records.id"), index=True)
    blob_ref: Mapped[str] = mapped_column(String(80))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    media_type: Mapped[str] = mapped_column(String(32))  # a rulebook medium id
    length: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(200), default="")
    made_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    maker: Mapped[str] = mapped_column(String(100), default="")
    proves: Mapped[str] = mapped_column(Text, default="")
    transcript: Mapped[str | None] = mapped_column(Text)
    transcript_source: Mapped[str | None] = mapped_column(String(64))
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClipTranscript(Base):
    """第二十七条: the transcript (文字记录) of an audio segment from a recorder."""

    __tablename__ = "clip_transcripts"

    segment_id: Mapped[str] = mapped_column(ForeignKey("segments.segment_id"), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(64), default="manual")
    by_actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
