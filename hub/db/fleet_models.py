"""Tables of the fleet: recorder certificates, officer assignments, signed device configs.

The ``devices`` row (models.py) stays the current state of a recorder; these tables keep the
history an auditor asks for: which certificate a recorder held and when it was revoked, which
officer carried it when, and every DeviceConfig the hub signed for it (exact wire bytes).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base
from .types import UTCDateTime, utcnow


class DeviceCertificate(Base):
    """A TLS client certificate issued to (or registered for) a recorder."""

    __tablename__ = "device_certificates"

    serial: Mapped[str] = mapped_column(String(64), primary_key=True)  # lower-case hex
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.device_id"), index=True)
    not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    pem: Mapped[str] = mapped_column(Text)


class OfficerAssignment(Base):
    """One period during which an officer carried a recorder (open while ``ended_at`` is null)."""

    __tablename__ = "officer_assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.device_id"), index=True)
    officer_id: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(128))


class DeviceConfigRecord(Base):
    """A DeviceConfig the hub signed for a recorder, as published (retained)."""

    __tablename__ = "device_configs"
    __table_args__ = (UniqueConstraint("device_id", "config_seq", name="uq_device_configs_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.device_id"), index=True)
    config_seq: Mapped[int] = mapped_column(BigInteger)
    officer_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))  # assign | unassign | time_sync
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    wire: Mapped[bytes] = mapped_column(LargeBinary)
