"""Exporting a clip to someone with an approved request (第二十九条): access check,
watermark naming the requester, C2PA content credentials, and the audit entry recording the
credentials' verification result (a C2PA signature without a trusted timestamp stops
validating when the signer certificate expires; the log keeps what it said at export)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..access.rules import Principal
from ..access.service import AccessError, check_access
from ..archive.blobs import local_files
from ..audit.entries import EventType
from ..audit.log import record_event
from ..db.models import Segment
from ..db.types import utcnow
from ..storage import BlobStore
from .c2pa_sign import C2paResult, read_mp4, sign_mp4
from .certs import C2paSignerFiles
from .watermark import watermark_video

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sha256: str
    c2pa: C2paResult
    watermark: tuple[str, ...]
    audit_idx: int


def _produce(src: Path, out: Path, lines: list[str], signer: C2paSignerFiles,
             export: dict[str, Any], font_path: str | None) -> tuple[C2paResult, tuple[str, ...]]:
    with tempfile.TemporaryDirectory() as tmp:
        marked = Path(tmp) / "watermarked.mp4"
        wm = watermark_video(src, marked, lines, font_path=font_path)
        export = dict(export, watermark=list(wm.lines), frames=wm.frames)
        sign_mp4(marked, out, signer, title=out.name, export=export)
    return read_mp4(out, signer.ca.read_text()), wm.lines


async def export_clip(
    sessions: Any,
    store: BlobStore,
    user: Principal,
    requester_name: str,
    case_id: str,
    segment_id: str,
    out: Path,
    *,
    signer: C2paSignerFiles,
    now: dt.datetime | None = None,
    font_path: str | None = None,
    case_label: str | None = None,
) -> ExportResult:
    """Export ``segment_id`` of ``case_id`` for ``user`` to ``out`` (MP4). Raises
    :class:`AccessError` (and logs the refused attempt) without an approved request.
    ``case_label``: how the watermark names the case (e.g. its case number; default the id)."""
    now = now or utcnow()
    item = f"segment:{segment_id}"
    async with sessions() as s, s.begin():
        decision = await check_access(s, user, case_id, item, now, action="export", log=False)
        if not decision:
            await record_event(s, EventType.EXPORT, user.user, [f"case:{case_id}", item],
                               {"item": item, "allowed": False, "code": decision.code}, at=now)
    if not decision:
        raise AccessError(decision.code, decision.reason)
    async with sessions() as s:
        seg = await s.get(Segment, segment_id)
    if seg is None:
        raise AccessError("not_found", f"no stored segment {segment_id}")
    local = now.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
    lines = [f"{requester_name} {user.user}", f"导出 {local} 仅限 {case_label or case_id}"]
    export = {"requester": requester_name, "user": user.user, "case_id": case_id,
              **({"case_label": case_label} if case_label else {}),
              "segment_id": segment_id, "source_sha256": seg.sha256,
              "source_manifest_hash": bytes(seg.manifest_hash).hex(),
              "exported_at": now.isoformat(), "access_request": decision.grant}
    with tempfile.TemporaryDirectory() as scratch:
        src = (await local_files(store, [seg.stored_ref], Path(scratch)))(seg.stored_ref)
        result, shown = await asyncio.to_thread(_produce, src, Path(out), lines, signer, export,
                                                font_path)
    digest = await asyncio.to_thread(lambda: hashlib.sha256(Path(out).read_bytes()).hexdigest())
    async with sessions() as s, s.begin():
        idx = await record_event(s, EventType.EXPORT, user.user, [f"case:{case_id}", item], {
            "item": item, "allowed": True, "code": decision.code,
            "access_request": decision.grant, "sha256": digest,
            "watermark": list(shown), "c2pa_validation": result.validation_state,
            "c2pa_manifest": result.active_manifest, "c2pa_errors": list(result.errors),
        }, at=now)
    return ExportResult(Path(out), digest, result, shown, idx)
