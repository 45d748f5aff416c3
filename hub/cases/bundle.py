"""Everything the case page shows about one case, in ONE database round trip.

The case page is the hot path of the admin service. Instead of a query per collection
(records, attachments, linked clips, members, approvals, stage changes) it asks the database
for each collection as a JSON array in a single SELECT (``json_group_array``/``json_object``
on SQLite, ``json_agg``/``json_build_object`` on PostgreSQL) and returns plain read-only
objects with the same attribute names as the ORM rows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Table,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.cases_models import (
    Approval,
    CaseAttachment,
    CaseMember,
    CaseRecord,
    ClipTranscript,
    StageChange,
)
from ..db.models import Segment
from ..db.oversight_models import SegmentDeadline, SegmentLink

_TIME_COLS = {"created_at", "updated_at", "window_start", "window_end", "made_at",
              "uploaded_at", "at", "start_at", "end_at", "received_at", "deadline"}
_BOOL_COLS = {"important"}

_RECORD = ("id", "kind_id", "version", "fields", "window_start", "window_end", "created_by",
           "created_at", "updated_at")
_ATTACHMENT = ("id", "record_id", "blob_ref", "filename", "content_type", "media_type",
               "length", "method", "made_at", "maker", "proves", "transcript",
               "transcript_source", "uploaded_by", "uploaded_at")
_MEMBER = ("id", "user_id", "role")
_APPROVAL = ("id", "record_id", "user_id", "role", "decision", "opinion", "at")
_CHANGE = ("id", "from_stage", "to_stage", "by_user", "at", "note")
_SEGMENT = ("segment_id", "device_id", "seq", "officer_id", "start_at", "end_at",
            "media_type", "length", "important", "received_at", "stored_ref")


def _time(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    moment = dt.datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _row(obj: dict[str, Any]) -> SimpleNamespace:
    for key in _TIME_COLS.intersection(obj):
        obj[key] = _time(obj[key])
    for key in _BOOL_COLS.intersection(obj):
        obj[key] = bool(obj[key])
    return SimpleNamespace(**obj)


def _agg(dialect: str, table: Table, cols: Sequence[str], where: ColumnElement[bool],
         order: str, extra: Sequence[tuple[str, ColumnElement[Any]]] = (),
         joins: Any = None) -> Any:
    pairs: list[Any] = []
    for c in cols:
        pairs += [literal_column(f"'{c}'"), table.c[c]]
    for name, expr in extra:
        pairs += [literal_column(f"'{name}'"), expr]
    src = joins if joins is not None else table
    if dialect == "postgresql":
        obj = func.json_build_object(*pairs)
        agg = func.coalesce(func.json_agg(obj.op("ORDER BY")(table.c[order])),
                            literal_column("'[]'::json"))
        return select(agg).select_from(src).where(where).scalar_subquery()
    inner = select(func.json_object(*pairs).label("o")).select_from(src).where(where) \
        .order_by(table.c[order]).subquery()
    return select(func.coalesce(func.json_group_array(func.json(inner.c.o)),
                                literal_column("'[]'"))).scalar_subquery()


@lru_cache(maxsize=4)
def _statement(dialect: str) -> Any:
    """The one SELECT, built once per dialect (building it costs more than running it)."""
    case_id = bindparam("case_id", type_=Integer)
    case_key = bindparam("case_key", type_=String)
    link_t, seg_t = SegmentLink.__table__, Segment.__table__
    links_src = link_t.join(seg_t, seg_t.c.segment_id == link_t.c.segment_id) \
        .outerjoin(SegmentDeadline.__table__,
                   SegmentDeadline.__table__.c.segment_id == link_t.c.segment_id) \
        .outerjoin(ClipTranscript.__table__,
                   ClipTranscript.__table__.c.segment_id == link_t.c.segment_id)
    seg_pairs = [(f"seg_{c}", seg_t.c[c]) for c in _SEGMENT]
    return select(
        _agg(dialect, CaseRecord.__table__, _RECORD, CaseRecord.case_id == case_id, "id"),
        _agg(dialect, CaseAttachment.__table__, _ATTACHMENT,
             CaseAttachment.case_id == case_id, "id"),
        _agg(dialect, link_t, ("id", "segment_id", "step_id", "method", "created_by",
                               "created_at"),
             (link_t.c.case_id == case_key) & link_t.c.removed_at.is_(None), "id",
             extra=[*seg_pairs, ("deadline", SegmentDeadline.__table__.c.deadline),
                    ("transcript", ClipTranscript.__table__.c.text)], joins=links_src),
        _agg(dialect, CaseMember.__table__, _MEMBER, CaseMember.case_id == case_id, "id"),
        _agg(dialect, Approval.__table__, _APPROVAL, Approval.case_id == case_id, "id"),
        _agg(dialect, StageChange.__table__, _CHANGE, StageChange.case_id == case_id, "id"),
    )


async def load(session: AsyncSession, case_id: int) -> SimpleNamespace:
    """records, attachments, links (each with .segment, .deadline, .transcript), members,
    approvals and changes of a case."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    row = (await session.execute(_statement(dialect),
                                 {"case_id": case_id, "case_key": str(case_id)})).one()
    parsed = [json.loads(v) if isinstance(v, str) else (v or []) for v in row]
    links = []
    for obj in parsed[2]:
        seg = {c: obj.pop(f"seg_{c}") for c in _SEGMENT}
        link = _row(obj)
        link.segment = _row(seg)
        link.record_id = int(link.step_id) if str(link.step_id).isdigit() else None
        link.how = link.method
        links.append(link)
    return SimpleNamespace(
        records=[_row(o) for o in parsed[0]], attachments=[_row(o) for o in parsed[1]],
        links=links, members=[_row(o) for o in parsed[3]],
        approvals=[_row(o) for o in parsed[4]], changes=[_row(o) for o in parsed[5]],
    )
