"""Tables of the audit log (RFC 9162 Merkle tree stored as complete subtrees).

``audit_entries`` and ``audit_nodes`` are append-only *in the database*: triggers refuse every
UPDATE and DELETE, and refuse an INSERT whose index is not the next one (see migration
0002_audit). ``audit_head`` is the single row appenders lock to serialise appends.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base
from .types import UTCDateTime


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    subjects: Mapped[str] = mapped_column(Text)  # space-separated, for search
    data: Mapped[bytes] = mapped_column(LargeBinary)  # canonical JSON: the Merkle leaf data


class AuditNode(Base):
    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditHead(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    note: Mapped[bytes] = mapped_column(LargeBinary)
