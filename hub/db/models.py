"""Tables of the ingest side: enrolled recorders, stored segments, refused messages.

Schema changes go through Alembic (hub/db/migrations); never create tables another way.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .types import UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


class Device(Base):
    """An enrolled recorder: its identity (certificate CN) and manifest signing key."""

    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    signing_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    cert_serial: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), default="")
    officer_id: Mapped[str] = mapped_column(String(64), default="unassigned")
    enrolled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_seq_reported: Mapped[int | None] = mapped_column(BigInteger)
    # the last verified heartbeat (migration 0009_device_status)
    hb_state: Mapped[str | None] = mapped_column(String(16))
    hb_storage: Mapped[str | None] = mapped_column(String(8))
    hb_free_bytes: Mapped[int | None] = mapped_column(BigInteger)
    hb_pending_segments: Mapped[int | None] = mapped_column(Integer)
    hb_pending_bytes: Mapped[int | None] = mapped_column(BigInteger)
    hb_battery_pct: Mapped[int | None] = mapped_column(Integer)
    hb_firmware: Mapped[str | None] = mapped_column(String(64))
    hb_clock_state: Mapped[str | None] = mapped_column(String(16))
    hb_clock_offset_ms: Mapped[int | None] = mapped_column(BigInteger)


class Segment(Base):
    """A verified, stored segment with the exact signed manifest and receipt."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("device_id", "seq", name="uq_segments_device_seq"),)

    segment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.device_id"), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    officer_id: Mapped[str] = mapped_column(String(64), index=True)
    start_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    end_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    media_type: Mapped[str] = mapped_column(String(32))
    length: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    important: Mapped[bool] = mapped_column(Boolean, default=False)
    recovered: Mapped[bool] = mapped_column(Boolean, default=False)
    clock_state: Mapped[str] = mapped_column(String(16))
    clock_offset_ms: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    manifest: Mapped[bytes] = mapped_column(LargeBinary)
    manifest_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    receipt: Mapped[bytes] = mapped_column(LargeBinary)
    stored_ref: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Rejection(Base):
    """Every message the hub refused, with the reason (for operators and metrics)."""

    __tablename__ = "rejections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    device_id: Mapped[str] = mapped_column(String(128))
    segment_id: Mapped[str] = mapped_column(String(128), default="")
    topic: Mapped[str] = mapped_column(String(300))
    code: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
