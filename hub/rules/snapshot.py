"""A case as the compliance checker sees it: plain frozen data, no database.

Whoever builds a snapshot (the admin service) resolves everything beforehand: the clips linked
to the case, their upload deadlines (from the working-day calendar), the case facts. Naive
datetimes are read as China Standard Time (UTC+8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Attachment:
    """An electronic record attached to a written record (photo, audio, video, document).

    ``metadata`` holds the 第二十七条 items by the ids of the rulebook's
    ``electronic_records.metadata`` (Xinxiang: method, made_at, maker, proves)."""

    attachment_id: str
    media_type: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    transcript_present: bool = False


@dataclass(frozen=True)
class Record:
    """One written record of a case: its kind, submitted fields, attachments, linked clips."""

    record_id: str
    kind_id: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    attachments: tuple[Attachment, ...] = ()
    clip_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Clip:
    """A recorder segment linked to the case. ``media_kind`` is a rulebook medium id
    (video, audio ...); ``upload_deadline`` is precomputed (第二十六条, working days)."""

    segment_id: str
    media_kind: str
    recorded_end: datetime | None = None
    uploaded_at: datetime | None = None
    upload_deadline: datetime | None = None
    transcript_present: bool = False


@dataclass(frozen=True)
class CaseSnapshot:
    """The state of one case at one moment.

    ``stage`` is the stage the case is in now (a stage id of the rulebook): every stage before
    it counts as completed. ``archived_at`` set means every stage is completed. ``not_started``
    means the agency decided not to start a procedure (第七条第二款, 第八条第二款): then only the
    start stage counts, and its notice record is required. ``facts`` are rulebook fact ids that
    make conditional records and fields required. ``archive_deadline`` overrides the
    rulebook's archive deadline where a law sets another one (第二十八条).
    """

    case_id: str
    enforcement_type: str
    start_mode: str
    stage: str
    started_at: datetime | None = None
    records: tuple[Record, ...] = ()
    clips: tuple[Clip, ...] = ()
    facts: frozenset[str] = frozenset()
    not_started: bool = False
    execution_ended_at: datetime | None = None
    archived_at: datetime | None = None
    archive_deadline: datetime | None = None
