"""Attachments: documents, photos, audio and video stored in the blob store by content hash,
each carrying the 第二十七条 metadata (制作方法、制作时间、制作人、证明对象); audio carries its
transcript (文字记录), optionally drafted by a registered :mod:`.transcribe` plug-in."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.entries import EventType
from ..audit.log import record_event
from ..db.cases_models import Case, CaseAttachment
from ..db.types import utcnow
from ..rules import Rulebook
from . import transcribe
from .errors import InvalidInput, InvalidTransition
from .service import Actor, get_record, refresh_findings

MAX_ATTACHMENT_BYTES = 512 * 1024 * 1024
_SAFE_TYPES = {
    "application/pdf", "image/jpeg", "image/png", "image/webp", "audio/mpeg", "audio/mp4",
    "audio/wav", "audio/x-wav", "audio/ogg", "audio/webm", "video/mp4", "video/webm",
    "text/plain", "application/msword", "application/zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


def media_names(rb: Rulebook) -> dict[str, str]:
    return {m: name for method in rb.record_methods.values() for m, name in method.kinds.items()}


async def spool(chunks: AsyncIterator[bytes], staging: Path,
                limit: int = MAX_ATTACHMENT_BYTES) -> tuple[Path, str, int]:
    """Write an upload to the store's staging folder, hashing as it goes."""
    staging.mkdir(parents=True, exist_ok=True)
    path = staging / f"upload-{uuid.uuid4().hex}"
    h, n = hashlib.sha256(), 0
    f = await asyncio.to_thread(path.open, "wb")
    try:
        with f:
            async for chunk in chunks:
                n += len(chunk)
                if n > limit:
                    raise InvalidInput(f"附件过大：最大 {limit // (1024 * 1024)} MB。")
                h.update(chunk)
                await asyncio.to_thread(f.write, chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, h.hexdigest(), n


async def add_attachment(
    session: AsyncSession, rb: Rulebook, store: Any, actor: Actor, case: Case, *,
    path: Path, sha256_hex: str, length: int, filename: str, content_type: str,
    media_type: str, record_id: int | None = None, method: str = "",
    made_at: dt.datetime | None = None, maker: str = "", proves: str = "",
    transcript: str | None = None,
) -> CaseAttachment:
    """Store a spooled file (consumed) and register it with its 第二十七条 metadata."""
    try:
        if case.archived_at is not None:
            raise InvalidTransition("案件已归档，案卷已锁定，不能再增加附件。")
        names = media_names(rb)
        if media_type not in names:
            raise InvalidInput("请选择附件的记录形式：" + "、".join(names.values()) + "。")
        if length == 0:
            raise InvalidInput("附件为空文件，请重新选择。")
        filename = os.path.basename((filename or "").replace("\\", "/"))[:200] or "附件"
        content_type = (content_type or "application/octet-stream").split(";")[0].strip()[:100]
        if content_type not in _SAFE_TYPES:
            content_type = "application/octet-stream"
        for label, value, limit in (("制作方法", method, 200), ("制作人", maker, 100),
                                    ("证明对象", proves, 2000)):
            if len(value or "") > limit:
                raise InvalidInput(f"「{label}」最多 {limit} 字。")
        if transcript is not None and len(transcript) > rb.limits.longtext_max:
            raise InvalidInput(f"文字记录最多 {rb.limits.longtext_max} 字。")
        if record_id is not None:
            await get_record(session, case, record_id)
        ref = await store.put_file(path, sha256_hex, length)
    finally:
        Path(path).unlink(missing_ok=True)
    att = CaseAttachment(
        case_id=case.id, record_id=record_id, blob_ref=ref, filename=filename,
        content_type=content_type, media_type=media_type, length=length,
        method=(method or "").strip(), made_at=made_at, maker=(maker or "").strip(),
        proves=(proves or "").strip(), transcript=(transcript or None),
        transcript_source="manual" if transcript else None, uploaded_by=actor.user_id,
        uploaded_at=utcnow(),
    )
    session.add(att)
    await session.flush()
    await record_event(session, EventType.RECORD_CREATED, actor.audit,
                       [f"case:{case.id}", f"attachment:{att.id}"],
                       {"what": "attachment", "sha256": sha256_hex, "media": media_type,
                        "length": length, "record": record_id})
    case.updated_at = utcnow()
    await refresh_findings(session, rb, case)
    return att


async def set_transcript(session: AsyncSession, rb: Rulebook, actor: Actor, case: Case,
                         att: CaseAttachment, text: str, source: str = "manual") -> None:
    if case.archived_at is not None:
        raise InvalidTransition("案件已归档，案卷已锁定。")
    if len(text) > rb.limits.longtext_max:
        raise InvalidInput(f"文字记录最多 {rb.limits.longtext_max} 字。")
    att.transcript = text.strip() or None
    att.transcript_source = source if att.transcript else None
    await record_event(session, EventType.RECORD_CHANGED, actor.audit,
                       [f"case:{case.id}", f"attachment:{att.id}"],
                       {"what": "transcript", "source": source, "length": len(text)})
    await refresh_findings(session, rb, case)


async def draft_transcript(store: Any, att: CaseAttachment, name: str) -> str:
    """Ask a registered transcriber for a draft (a person checks it before saving)."""
    engine = transcribe.get(name)
    if engine is None:
        raise InvalidInput(f"未配置语音识别「{name}」。")
    data = b"".join([c async for c in store.read_range(att.blob_ref)])
    return await engine.transcribe(data, att.content_type)
