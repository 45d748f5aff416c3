"""Archiving a case (第二十八条): deadline, number, package, lock — the async API.

For the cases/admin side:

- :func:`archive_deadline_for` — last day to archive after execution ended (30 days);
- :func:`is_locked` — call before ANY change to a case; an archived case is locked for good
  (corrections afterwards are new, audited records, never edits);
- :func:`build_archive` — build, check and store the package, lock the case, log ``archive``
  (the package holds a PDF index too, which needs a Chinese font: see :mod:`.pdfindex`);
  progress (phases, media bytes) through ``on_progress``: see :mod:`.progress`;
- :func:`get_archive` — the archive row of a case, if archived.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from lerec.protocol import DecodeError, SegmentManifest, decode_signed
from sqlalchemy import or_, select

from ..audit import log as audit
from ..audit.entries import EventType
from ..db.audit_models import AuditEntry
from ..db.models import Device
from ..db.trust_models import Archive
from ..db.types import utcnow
from ..errors import HubError
from ..policy.deadlines import archive_deadline
from ..policy.workdays import WorkdayLookup
from ..storage import BlobStore
from .blobs import fetch
from .model import CaseFile
from .numbering import Numbering, allocate, folder_name
from .package import ALGORITHMS, AuditMaterial, Built, build_package
from .pdfindex import FontMissing, PdfFont, find_font
from .progress import COLLECT, COPY, DONE, ProgressCallback, Tracker

log = logging.getLogger(__name__)
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
DEFAULT_NUMBERING = Numbering()


class ArchiveError(HubError):
    """A case cannot be archived; ``reason`` says why and what to do, ``reason_zh`` the same
    for people (Simplified Chinese)."""

    def __init__(self, case_id: str, reason: str, reason_zh: str = "") -> None:
        super().__init__(f"case {case_id} cannot be archived: {reason}")
        self.case_id = case_id
        self.reason = reason
        self.reason_zh = reason_zh or f"无法归档：{reason}"


class CaseLocked(HubError, PermissionError):
    """The case is archived; it may not be changed (add a new, audited record instead)."""

    def __init__(self, case_id: str, archive_no: str) -> None:
        super().__init__(f"case {case_id} is archived as {archive_no} and locked; "
                         "record a correction as a new record instead")
        self.case_id = case_id
        self.archive_no = archive_no


@dataclass(frozen=True)
class ArchiveResult:
    case_id: str
    archive_no: str
    path: Path
    package_ref: str
    package_sha256: str
    checkpoint_size: int
    audit_idx: int
    report_ok: bool


def archive_deadline_for(execution_ended_at: dt.date | dt.datetime,
                         cal: WorkdayLookup | None = None, days: int = 30) -> dt.date:
    """第二十八条: last day (inclusive) to archive; a datetime counts by its Beijing date."""
    if isinstance(execution_ended_at, dt.datetime):
        if execution_ended_at.tzinfo is None:
            raise ValueError("execution_ended_at must be timezone-aware")
        execution_ended_at = execution_ended_at.astimezone(LOCAL_TZ).date()
    return archive_deadline(execution_ended_at, days=days, cal=cal)


async def get_archive(session: Any, case_id: str) -> Archive | None:
    return await session.get(Archive, case_id)


async def is_locked(session: Any, case_id: str) -> bool:
    """True once the case is archived. Check it before every change to the case."""
    return (await session.execute(
        select(Archive.case_id).where(Archive.case_id == case_id))).first() is not None


async def ensure_unlocked(session: Any, case_id: str) -> None:
    """Raise :class:`CaseLocked` if the case is archived."""
    row = await session.get(Archive, case_id)
    if row is not None:
        raise CaseLocked(case_id, row.archive_no)


async def _audit_material(sessions: Any, case: CaseFile, key: Ed25519PrivateKey,
                          origin: str) -> AuditMaterial:
    async with sessions() as s, s.begin():
        note = await audit.make_checkpoint(s, key, origin)
        size = await audit.size(s)
    from ..audit.checkpoint import read_checkpoint_unverified

    size = read_checkpoint_unverified(note).size
    subjects = [f"case:{case.case_id}"] + [f"segment:{x.segment_id}" for x in case.segments]
    async with sessions() as s:
        conds = [(" " + AuditEntry.subjects + " ").contains(f" {subj} ") for subj in subjects]
        q = select(AuditEntry.idx).where(AuditEntry.idx < size, or_(*conds))
        found = set((await s.execute(q)).scalars())
        wanted = sorted(found | {i for i in case.audit_indices if 0 <= i < size})
        rows = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows += (await s.execute(select(AuditEntry.idx, AuditEntry.data)
                                     .where(AuditEntry.idx.in_(chunk)))).all()
        entries = sorted((r.idx, bytes(r.data)) for r in rows)
        proofs = {idx: await audit.prove_inclusion(s, idx, size) for idx, _ in entries}
    vkey = audit.signer_from_key(key, origin).verifier().encode()
    return AuditMaterial(entries, proofs, note, size, vkey)


def _manifest(case_id: str, link: Any) -> SegmentManifest:
    try:
        return decode_signed(link.manifest, SegmentManifest).message
    except DecodeError as exc:
        raise ArchiveError(case_id, f"the manifest of segment {link.segment_id} cannot be "
                           f"decoded ({exc}): not an original recorder upload",
                           f"音像记录 {link.segment_id} 的签名清单无法解析（{exc}），"
                           "不是执法记录仪上传的原始记录，不能归档。请管理员核查该记录。"
                           ) from exc


async def build_archive(
    sessions: Any,
    store: BlobStore,
    case: CaseFile,
    *,
    hub_key: Ed25519PrivateKey,
    archived_by: str,
    archive_root: Path,
    numbering: Numbering = DEFAULT_NUMBERING,
    origin: str = audit.DEFAULT_ORIGIN,
    now: dt.datetime | None = None,
    pdf_font: PdfFont | None = None,
    on_progress: ProgressCallback | None = None,
) -> ArchiveResult:
    """Archive ``case``: allocate its number, build and check the package, lock the case and
    log an ``archive`` event. Raises :class:`ArchiveError` (already archived, execution not
    ended, unknown device, missing media or attachment blobs, no Chinese font for the PDF
    index: ``pdf_font`` or one of :data:`~.pdfindex.KNOWN_FONTS`) before anything is written.

    ``on_progress`` gets every phase and the media bytes copied and hashed (see
    :mod:`.progress`; it may raise to stop the build, which then leaves no package).

    The package holds the audit entries up to a checkpoint signed just before it is built;
    the ``archive`` event itself (with the package's SHA-256) comes after, in the live log,
    so the log vouches for the package from then on."""
    now = now or utcnow()
    progress = Tracker(on_progress)
    progress.phase(COLLECT)
    if case.execution_ended_at is None:
        raise ArchiveError(case.case_id, "execution has not ended (第二十八条)",
                           "执行尚未终结，不能归档（第二十八条）。")
    async with sessions() as s:
        existing = await s.get(Archive, case.case_id)
        if existing is not None:
            raise ArchiveError(case.case_id, f"already archived as {existing.archive_no}",
                               f"本案已归档，档号 {existing.archive_no}。")
        device_ids = {_manifest(case.case_id, x).device_id for x in case.segments}
        rows = (await s.execute(select(Device).where(Device.device_id.in_(device_ids)))).scalars()
        device_keys = {d.device_id: Ed25519PublicKey.from_public_bytes(bytes(d.signing_key))
                       for d in rows}
    if missing := device_ids - set(device_keys):
        raise ArchiveError(case.case_id, f"unknown recorders {sorted(missing)}",
                           f"音像记录来自未登记的执法记录仪 {'、'.join(sorted(missing))}，"
                           "无法核验其签名。")
    async def stored_size(ref: str, en: str, zh: str) -> int:
        if not await store.exists(ref):
            raise ArchiveError(case.case_id, f"the stored {en} ({ref}) is missing; run "
                               "lerec-verify store",
                               f"{zh}的存储文件缺失（{ref}）。请运行 lerec-verify store 检查存储，"
                               "恢复该文件后重新生成归档包。")
        return int(await store.size(ref))

    total = 0
    for link in case.segments:
        total += await stored_size(link.stored_ref, f"media of segment {link.segment_id}",
                                   f"音像记录 {link.segment_id} ")
    for a in case.attachments:
        if a.data is not None:
            total += len(a.data)
        elif a.stored_ref is not None:
            total += await stored_size(a.stored_ref, f"file of attachment {a.name}",
                                       f"附件「{a.name}」")
    files = len(case.segments) + sum(1 for a in case.attachments
                                     if a.data is not None or a.stored_ref is not None)
    progress.totals(total, files)
    try:
        font = await asyncio.to_thread(find_font, pdf_font)
    except FontMissing as exc:
        raise ArchiveError(case.case_id, str(exc),
                           "服务器缺少中文字体，无法生成 PDF 目录。请安装 fonts-noto-cjk "
                           "后重新生成归档包。") from exc
    year = now.astimezone(LOCAL_TZ).year
    case_type = str(case.metadata.get("case_type", "执法"))
    async with sessions() as s, s.begin():
        archive_no = await allocate(s, numbering, year, case_type)
    material = await _audit_material(sessions, case, hub_key, origin)
    dest = Path(archive_root) / folder_name(archive_no)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        raise ArchiveError(case.case_id, f"{dest} already exists",
                           f"归档目录 {dest} 已存在，请管理员核对后移走。")
    scratch = dest.with_name(dest.name + ".download")
    try:
        refs = [x.stored_ref for x in case.segments] + [
            a.stored_ref for a in case.attachments if a.data is None and a.stored_ref is not None]
        progress.phase(COPY)
        blob_path, known = await fetch(store, refs, scratch, algorithms=ALGORITHMS,
                                       progress=progress)
        built: Built = await asyncio.to_thread(
            build_package, case, dest, blob_path, archive_no=archive_no,
            archived_by=archived_by, archived_at=now, device_keys=device_keys,
            hub_key=hub_key.public_key(), audit=material, pdf_font=font, progress=progress,
            known=known)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ref = f"bag:{dest.name}"
    async with sessions() as s, s.begin():
        idx = await audit.record_event(
            s, EventType.ARCHIVE, archived_by, [f"case:{case.case_id}"],
            {"archive_no": archive_no, "package_ref": ref, "package_sha256": built.package_sha256,
             "checkpoint_size": material.tree_size, "four_properties_ok": built.four.ok,
             "segments": len(case.segments), "records": len(case.records)}, at=now)
        s.add(Archive(case_id=case.case_id, archive_no=archive_no, archived_at=now,
                      archived_by=archived_by, package_ref=ref,
                      package_sha256=built.package_sha256, checkpoint_size=material.tree_size,
                      audit_idx=idx, report_ok=built.four.ok))
    progress.phase(DONE)
    log.info("case %s archived as %s (%s, four-properties %s)", case.case_id, archive_no, dest,
             "ok" if built.four.ok else "with issues")
    return ArchiveResult(case.case_id, archive_no, dest, ref, built.package_sha256,
                         material.tree_size, idx, built.four.ok)
