"""第二十八条 from the case side: turn a case in the database into a :class:`CaseFile` and hand
it to :mod:`lerec.hub.archive`, which builds the self-verifying BagIt package (records, the
original signed segments with manifests and receipts, transcripts, audit entries with
inclusion proofs and the checkpoint they prove against, the 四性检测 report) and locks it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..archive.model import Attachment, CaseFile, LinkedSegment, Transcript
from ..archive.numbering import Numbering
from ..archive.progress import COLLECT, Progress, ProgressCallback
from ..archive.service import ArchiveResult, build_archive
from ..audit import log as audit
from ..db.audit_models import AuditEntry
from ..db.cases_models import Case, CaseAttachment, CaseRecord
from ..rules import Rulebook
from . import links_adapter


async def case_file(session: AsyncSession, rb: Rulebook, case: Case) -> CaseFile:
    """Everything of one case that goes into its archive package."""
    records = (await session.execute(
        select(CaseRecord).where(CaseRecord.case_id == case.id).order_by(CaseRecord.id)
    )).scalars().all()
    linked = await links_adapter.linked_segments(session, case.id)
    attachments = (await session.execute(
        select(CaseAttachment).where(CaseAttachment.case_id == case.id)
        .order_by(CaseAttachment.id))).scalars().all()
    subject = f"case:{case.id}"
    indices = (await session.execute(
        select(AuditEntry.idx).where((" " + AuditEntry.subjects + " ").contains(f" {subject} "))
        .order_by(AuditEntry.idx))).scalars().all()
    etype = rb.enforcement_types.get(case.enforcement_type)
    return CaseFile(
        case_id=str(case.id),
        metadata={
            "title": case.title, "case_no": case.case_no, "party": case.party,
            "case_type": etype.name if etype is not None else case.enforcement_type,
            "enforcement_type": case.enforcement_type, "start_mode": case.start_mode,
            "stage": case.stage, "not_started": case.not_started,
            "created_at": case.created_at.isoformat(), "rulebook": rb.metadata.document_number,
        },
        records=[{
            "id": str(r.id), "kind": r.kind_id, "kind_name": rb.kind(r.kind_id).name
            if rb.has_kind(r.kind_id) else r.kind_id, "version": r.version,
            "fields": json.loads(r.fields), "created_at": r.created_at.isoformat(),
            "updated_at": r.updated_at.isoformat(),
        } for r in records],
        execution_ended_at=case.execution_ended_at or case.archived_at or case.updated_at,
        attachments=[Attachment(name=f"{a.id}-{Path(a.filename).name}",
                                media_type=a.content_type, stored_ref=a.blob_ref,
                                description=a.media_type) for a in attachments],
        segments=[LinkedSegment(segment_id=seg.segment_id, manifest=bytes(seg.manifest),
                                receipt=bytes(seg.receipt), stored_ref=seg.stored_ref,
                                record_id=str(link.record_id or ""))
                  for link, seg, _deadline, _text in linked],
        transcripts=[Transcript(segment_id=seg.segment_id, text=text, produced_by="承办人")
                     for _link, seg, _deadline, text in linked if text],
        audit_indices=list(indices),
    )


async def archive_package(
    sessions: Any, store: Any, rb: Rulebook, case_id: int, *, hub_key: Ed25519PrivateKey,
    archived_by: str, archive_root: Path, numbering: Numbering | None = None,
    origin: str = audit.DEFAULT_ORIGIN, on_progress: ProgressCallback | None = None,
) -> ArchiveResult:
    """Build and store the package of an archived case (call after ``archive_case``).
    ``on_progress``: phases and media bytes (:mod:`lerec.hub.archive.progress`)."""
    if on_progress is not None:
        on_progress(Progress(COLLECT))
    async with sessions() as s:
        case = await s.get(Case, case_id)
        if case is None:
            raise LookupError(f"case {case_id} does not exist")
        cf = await case_file(s, rb, case)
    kw: dict[str, Any] = {"numbering": numbering} if numbering is not None else {}
    return await build_archive(sessions, store, cf, hub_key=hub_key, archived_by=archived_by,
                               archive_root=archive_root, origin=origin,
                               on_progress=on_progress, **kw)
