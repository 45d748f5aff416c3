"""What the cases side hands to the archive: plain data, no database rows.

The cases engineer fills a :class:`CaseFile` from their tables and calls
:func:`lerec.hub.archive.build_archive`. Everything here is copied into the package as-is
(records as JSON), except that segment media are read from the blob store by reference.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LinkedSegment:
    """A recorded segment linked to the case: exactly what the hub stored."""

    segment_id: str
    manifest: bytes  # the device-signed manifest, exact wire bytes (Segment.manifest)
    receipt: bytes  # the hub-signed receipt, exact wire bytes (Segment.receipt)
    stored_ref: str  # content reference in the blob store (Segment.stored_ref)
    record_id: str = ""  # the case record / step it documents, if any


@dataclass(frozen=True)
class Transcript:
    """第二十七条: the text of what a sound recording says."""

    segment_id: str
    text: str
    produced_by: str
    produced_at: dt.datetime | None = None
    method: str = "人工听写 manual"


@dataclass(frozen=True)
class Attachment:
    """A document of the case (scan, photo, signed notice). Bytes or a blob-store reference."""

    name: str  # file name inside the package (no folders)
    media_type: str
    data: bytes | None = None
    stored_ref: str | None = None
    description: str = ""


@dataclass
class CaseFile:
    """One case, ready to archive. ``metadata`` should carry at least ``title``,
    ``case_type`` (e.g. 行政处罚) and ``org``; ``records`` are the case's written records
    (第六条–第二十五条), each a JSON-able dict with at least ``id`` and ``kind``."""

    case_id: str
    metadata: dict[str, Any]
    records: list[dict[str, Any]]
    execution_ended_at: dt.date | dt.datetime
    attachments: list[Attachment] = field(default_factory=list)
    segments: list[LinkedSegment] = field(default_factory=list)
    transcripts: list[Transcript] = field(default_factory=list)
    audit_indices: list[int] = field(default_factory=list)
    confidentiality: list[str] = field(default_factory=list)  # classes of the whole case
