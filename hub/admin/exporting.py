"""A requester's download of a clip (第二十九条) is the export: the clip re-encoded with a
visible watermark naming the requester and signed with C2PA content credentials by the hub's
signer (:func:`lerec.hub.export.export_clip`), never the raw stored clip.

Preparing an export re-encodes the video, which takes seconds to minutes, so it is a
background job owned by the app (:class:`ExportJobs`, ``app.state.export_jobs``), like the
archive builds: the request that starts it returns at once, the 查阅 page polls the job's
state (htmx) and offers the file when it is ready. ``export_clip`` runs as a task on the
service's event loop and does its decoding, drawing, encoding, signing and hashing in a worker
thread (``asyncio.to_thread``), so the service keeps answering; at most ``export_workers``
exports are encoded at the same time, the others wait their turn (排队).

Audit (the access service's semantics): starting an export is decided by ``check_access``
(action ``export``; a refusal is logged there); the export itself is logged by
``export_clip`` (``export`` event: SHA-256 of the file, the watermark text, the C2PA
validation result against the hub CA); every download of the prepared file is decided again
and logged (``download`` event with the item, allowed, the rule's code, and the SHA-256 and
audit index of the export it hands out), allowed or refused. A grant that expired, was revoked
or no longer covers the clip refuses the download and discards the prepared file.

Files are temporary: each export is written to its own folder under ``export_dir`` (default
``<storage_dir>/exports``, mode 0700), stays downloadable by the user who prepared it for
``export_keep_minutes`` (so an interrupted download can be repeated without re-encoding and
re-logging a new export), and is deleted after that, when more than ``export_max_files`` are
kept (oldest first), when the grant no longer allows it, and when the service starts or stops
(a prepared file is derived data: the stored clip and the audit entry are the record). Jobs
live in this process only; the admin service runs as one process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi.responses import StreamingResponse

from ..access import service as access_service
from ..access.rules import Principal
from ..access.service import AccessError
from ..audit.entries import EventType
from ..audit.log import record_event
from ..cases import links_adapter
from ..db.cases_models import Case
from ..db.models import Segment
from ..db.types import utcnow
from ..export import C2paSignerFiles, export_clip
from . import access_views as av
from .security import Ctx, Denied, deny

log = logging.getLogger(__name__)

NONE, QUEUED, RUNNING, READY, FAILED = "none", "queued", "running", "ready", "failed"
UNCONFIGURED = "unconfigured"
STATE_ZH = {
    NONE: "尚未生成", QUEUED: "排队等待生成", RUNNING: "正在生成（加水印、签署内容凭证）",
    READY: "已生成，可以下载", FAILED: "生成失败", UNCONFIGURED: "未配置导出",
}
TRUSTED = "Trusted"
READ_BLOCK = 1024 * 1024
SHUTDOWN_GRACE = 10.0
ABORTED_ZH = "管理服务停止，导出已中断。请重新生成。"
_JOB_DIR = re.compile(r"^[0-9a-f]{32}$")


# -- configuration --------------------------------------------------------------------------


def signer_files(settings: Any) -> C2paSignerFiles | None:
    """The configured C2PA signer, or None when any of the three files is not configured."""
    cert, key, ca = settings.c2pa_cert, settings.c2pa_key, settings.c2pa_ca
    if cert is None or key is None or ca is None:
        return None
    return C2paSignerFiles(Path(cert), Path(key), Path(ca))


def unconfigured_reason(settings: Any) -> str | None:
    """Why exports cannot be made (Simplified Chinese), or None when they can."""
    files = signer_files(settings)
    if files is None:
        return ("管理服务未配置内容凭证（C2PA）签名证书（hub.toml 的 [export] 中 c2pa_cert、"
                "c2pa_key、c2pa_ca），暂不能下载带水印和内容凭证的音像记录。"
                "原始文件不提供下载。请联系系统管理员配置后再下载。")
    missing = [str(p) for p in (files.cert, files.key, files.ca) if not p.is_file()]
    if missing:
        return (f"内容凭证（C2PA）签名证书文件不存在或无法读取（{'、'.join(missing)}），"
                "暂不能下载带水印和内容凭证的音像记录。原始文件不提供下载。请联系系统管理员。")
    return None


def export_root(settings: Any) -> Path:
    return Path(settings.export_dir or Path(settings.storage_dir) / "exports")


# -- file names -----------------------------------------------------------------------------


def safe_filename(case_no: str, seg: Segment) -> str:
    """``<case no>-<device>-<seq>-导出.mp4`` with anything but letters, digits, ``.``, ``-``
    and ``_`` (path separators, quotes, brackets, control characters) replaced."""
    stem = re.sub(r"[^\w.-]+", "-", f"{case_no}-{seg.device_id}-{seg.seq}-导出", flags=re.UNICODE)
    stem = re.sub(r"-{2,}", "-", stem).strip("-.")[:120] or "export"
    return f"{stem}.mp4"


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the UTF-8 name (RFC 6266 / 5987)."""
    fallback = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("._-") or "export.mp4"
    if not fallback.endswith(".mp4"):
        fallback += ".mp4"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# -- jobs -----------------------------------------------------------------------------------


@dataclass
class ExportJob:
    """One export of one clip for one user, as the 查阅 page and the API show it."""

    id: str
    user: str  # audit actor, "user:<name>"
    requester_name: str
    case_id: int
    case_no: str
    segment_id: str
    filename: str
    grant: int | None  # the approved request it was made under (None: the agency head)
    folder: Path
    state: str = QUEUED
    started_at: dt.datetime = field(default_factory=utcnow)
    finished_at: dt.datetime | None = None
    size: int = 0
    sha256: str | None = None
    c2pa_validation: str | None = None
    c2pa_manifest: str | None = None
    c2pa_errors: tuple[str, ...] = ()
    watermark: tuple[str, ...] = ()
    audit_idx: int | None = None
    error: str | None = None
    downloads: int = 0
    task: asyncio.Task[None] | None = None

    @property
    def path(self) -> Path:
        return self.folder / self.filename

    @property
    def active(self) -> bool:
        return self.state in (QUEUED, RUNNING)


Key = tuple[str, int, str]


class ExportJobs:
    """The app's export jobs, one per (user, case, clip), and their folder."""

    def __init__(self, root: Path, keep: dt.timedelta, max_files: int, workers: int) -> None:
        self.root = Path(root)
        self.keep = keep
        self.max_files = max_files
        self._workers = asyncio.Semaphore(max(1, workers))
        self._jobs: dict[Key, ExportJob] = {}
        self._closing = False

    # lifecycle

    async def open(self) -> None:
        """Start with an empty folder (exports of a previous run are discarded)."""
        self._closing = False
        await asyncio.to_thread(self._wipe)

    async def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Cancel the exports being prepared and delete every prepared file."""
        self._closing = True
        tasks = [j.task for j in self._jobs.values() if j.active and j.task is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        self._jobs.clear()
        await asyncio.to_thread(self._wipe)

    def _wipe(self) -> None:
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if _JOB_DIR.match(entry.name) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)

    # lookup and bounds

    def get(self, user: str, case_id: int, segment_id: str) -> ExportJob | None:
        self.prune()
        return self._jobs.get((user, case_id, segment_id))

    def drop(self, job: ExportJob) -> None:
        key = (job.user, job.case_id, job.segment_id)
        if self._jobs.get(key) is job:
            del self._jobs[key]
        if job.task is not None and not job.task.done():
            job.task.cancel()
        shutil.rmtree(job.folder, ignore_errors=True)

    def prune(self, now: dt.datetime | None = None) -> None:
        """Delete finished exports older than ``keep``, then the oldest beyond ``max_files``."""
        now = now or utcnow()
        for job in list(self._jobs.values()):
            if not job.active and job.finished_at and now - job.finished_at >= self.keep:
                self.drop(job)
        ready = sorted((j for j in self._jobs.values() if j.state == READY),
                       key=lambda j: j.finished_at or j.started_at)
        for job in ready[:max(0, len(ready) - self.max_files)]:
            self.drop(job)

    # starting

    def start(self, app: Any, principal: Principal, requester_name: str, case: Case,
              seg: Segment, grant: int | None, signer: C2paSignerFiles) -> ExportJob:
        """The user's export of this clip: the one being prepared, a prepared one made under
        the same grant, or a new one."""
        if self._closing:
            raise Denied(409, "管理服务正在停止，请稍后再下载。", "export_closing")
        self.prune()
        key = (principal.user, case.id, seg.segment_id)
        job = self._jobs.get(key)
        if job is not None:
            if job.active:
                return job
            if job.state == READY and job.grant == grant and job.path.is_file():
                return job
            self.drop(job)
        if sum(1 for j in self._jobs.values() if j.active) >= self.max_files:
            raise Denied(409, "正在生成的导出过多，请稍后再试。", "export_busy")
        job_id = secrets.token_hex(16)
        folder = self.root / job_id
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
        job = ExportJob(job_id, principal.user, requester_name, case.id, case.case_no,
                        seg.segment_id, safe_filename(case.case_no, seg), grant, folder)
        self._jobs[key] = job
        job.task = asyncio.create_task(self._run(app, job, principal, signer),
                                       name=f"export-{job_id[:8]}")
        return job

    async def _run(self, app: Any, job: ExportJob, principal: Principal,
                   signer: C2paSignerFiles) -> None:
        settings = app.state.settings
        try:
            async with self._workers:
                job.state = RUNNING
                result = await export_clip(
                    app.state.sessions, app.state.store, principal, job.requester_name,
                    str(job.case_id), job.segment_id, job.path, signer=signer,
                    font_path=settings.export_font, case_label=job.case_no)
        except asyncio.CancelledError:
            self._failed(job, ABORTED_ZH)
            raise
        except AccessError as exc:  # the grant ended between the request and the export
            self._failed(job, f"不能导出：{av.zh(exc.reason)}。")
        except Exception as exc:
            log.exception("export of %s for %s failed", job.segment_id, job.user)
            self._failed(job, _error_zh(exc))
            await _audit_failure(app, job)
        else:
            job.sha256, job.size = result.sha256, job.path.stat().st_size
            job.c2pa_validation = result.c2pa.validation_state
            job.c2pa_manifest = result.c2pa.active_manifest
            job.c2pa_errors, job.watermark = result.c2pa.errors, result.watermark
            job.audit_idx = result.audit_idx
            if result.c2pa.validation_state != TRUSTED:
                # signed, but not verifiable against the configured hub CA: never handed out
                # (the export entry in the audit log records what the check said)
                state = result.c2pa.validation_state or "无法读取"
                self._failed(job, f"导出文件的内容凭证未通过校验（{state}），未提供下载。"
                             "请系统管理员检查签名证书与 c2pa_ca 是否为同一枢纽 CA。")
            else:
                job.state = READY
                job.finished_at = utcnow()

    def _failed(self, job: ExportJob, message: str) -> None:
        job.state, job.error, job.finished_at = FAILED, message, utcnow()
        shutil.rmtree(job.folder, ignore_errors=True)


def _error_zh(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        where = f"（{exc.filename}）" if exc.filename else ""
        return f"读写文件失败{where}：{exc.strerror or exc}。请联系系统管理员。"
    return (f"导出失败（{type(exc).__name__}: {str(exc)[:300]}）。"
            "请联系系统管理员查看管理服务日志。")


async def _audit_failure(app: Any, job: ExportJob) -> None:
    try:
        async with app.state.sessions() as s, s.begin():
            await record_event(s, EventType.EXPORT, job.user,
                               [f"case:{job.case_id}", av.segment_item(job.segment_id)],
                               {"item": av.segment_item(job.segment_id), "allowed": True,
                                "outcome": "failed", "error": (job.error or "")[:500]})
    except Exception:
        log.exception("could not audit the failed export of %s", job.segment_id)


def make_jobs(settings: Any) -> ExportJobs:
    return ExportJobs(export_root(settings), dt.timedelta(minutes=settings.export_keep_minutes),
                      settings.export_max_files, settings.export_workers)


# -- what the routes call -------------------------------------------------------------------


async def case_segment(ctx: Ctx, case: Case, segment_id: str) -> Segment:
    """A clip linked to the route's case; anything else is refused (and logged) like a
    missing item."""
    seg = await ctx.db.get(Segment, segment_id[:64])
    if seg is None or case.id not in await links_adapter.cases_for_segment(ctx.db,
                                                                            seg.segment_id):
        raise await av.missing_item(ctx, case, av.segment_item(segment_id[:64]))
    return seg


async def start(ctx: Ctx, segment_id: str) -> ExportJob:
    """Start (or find) the user's export of a clip of the route's case: refused with the
    rules' reason (logged as an ``export`` attempt) without an approved grant, explained
    (logged as a refusal) without a configured signer."""
    case = ctx.require_case()
    seg = await case_segment(ctx, case, segment_id)
    item = av.segment_item(seg.segment_id)
    if str(seg.media_type).startswith("audio"):
        raise Denied(409, "录音没有画面，不能加可见水印，暂不提供下载；可在线收听。", "export_audio")
    reason = unconfigured_reason(ctx.app.state.settings)
    if reason is not None:
        raise await deny(ctx, 409, reason, "export_unconfigured",
                         extra={"item": item, "case": str(case.id)})
    p = await av.actor_principal(ctx)
    jobs: ExportJobs = ctx.app.state.export_jobs
    d = await access_service.check_access(ctx.db, p, str(case.id), item, action="export",
                                          log=False)
    existing = jobs.get(p.user, case.id, seg.segment_id)
    if d and existing is not None and (existing.active or (
            existing.state == READY and existing.grant == d.grant)):
        return existing  # already being prepared, or prepared under this grant
    if not d:  # the refused attempt is logged; the export itself logs an allowed one
        await access_service.check_access(ctx.db, p, str(case.id), item, action="export")
        await ctx.db.commit()
        if existing is not None:
            jobs.drop(existing)
        raise Denied(403, av.refusal_message(d), d.code)
    user = ctx.user  # (nothing written: export_clip decides again and logs the export)
    assert user is not None
    signer = signer_files(ctx.app.state.settings)
    assert signer is not None
    return jobs.start(ctx.app, p, user.display_name or user.name, case, seg, d.grant, signer)


def status(ctx: Ctx, case: Case, segment_id: str, urls: dict[str, str]) -> dict[str, Any]:
    """The user's export of a clip, for the page and the API."""
    jobs: ExportJobs = ctx.app.state.export_jobs
    actor = ctx.require_actor()
    job = jobs.get(actor.audit, case.id, segment_id[:64])
    reason = unconfigured_reason(ctx.app.state.settings)
    out: dict[str, Any] = {
        "case_id": case.id, "segment_id": segment_id[:64],
        "item": av.segment_item(segment_id[:64]), "configured": reason is None,
        "message": reason, "filename": None, "size": None, "sha256": None,
        "c2pa_validation": None, "c2pa_manifest": None, "watermark": [], "started_at": None,
        "finished_at": None, "download_url": None, "downloads": 0, **urls,
    }
    if job is None:
        state = NONE if reason is None else UNCONFIGURED
    else:
        state = job.state
        out.update(filename=job.filename, started_at=job.started_at,
                   finished_at=job.finished_at, watermark=list(job.watermark),
                   downloads=job.downloads)
        if job.state == FAILED:
            out["message"] = job.error
        if job.state == READY:
            out.update(size=job.size, sha256=job.sha256, c2pa_validation=job.c2pa_validation,
                       c2pa_manifest=job.c2pa_manifest, download_url=urls["file_url"])
    out["state"], out["state_zh"] = state, STATE_ZH[state]
    return out


async def download(ctx: Ctx, segment_id: str) -> StreamingResponse:
    """Serve the user's prepared export of a clip as an attachment; the download is decided
    again by the access rules and logged, allowed or refused."""
    case = ctx.require_case()
    seg = await case_segment(ctx, case, segment_id)
    item = av.segment_item(seg.segment_id)
    jobs: ExportJobs = ctx.app.state.export_jobs
    p = await av.actor_principal(ctx)
    job = jobs.get(p.user, case.id, seg.segment_id)
    if job is None or job.state != READY or not job.path.is_file():
        raise Denied(404, "导出文件尚未生成或已过期删除。请在查阅页面点击「下载（带水印和内容凭证）」"
                     "重新生成。", "export_not_ready")
    d = await access_service.check_access(ctx.db, p, str(case.id), item, action="download",
                                          log=False)
    if d and d.grant != job.grant:
        jobs.drop(job)
        raise Denied(409, "查阅授权已变更，原导出文件已作废。请重新生成后下载。", "export_stale")
    subjects = [f"case:{case.id}", item] + ([f"access:{d.grant}"] if d.grant is not None
                                            else [])
    await record_event(ctx.db, EventType.DOWNLOAD, p.user, subjects, {
        "item": item, "allowed": d.allowed, "code": d.code, "export_sha256": job.sha256,
        "export_audit_idx": job.audit_idx, "filename": job.filename})
    await ctx.db.commit()
    if not d:
        jobs.drop(job)
        raise Denied(403, av.refusal_message(d), d.code)
    f = await asyncio.to_thread(open, job.path, "rb")  # open before anything may delete it
    job.downloads += 1
    size = os.fstat(f.fileno()).st_size

    async def body() -> Any:
        try:
            while block := await asyncio.to_thread(f.read, READ_BLOCK):
                yield block
        finally:
            f.close()

    return StreamingResponse(body(), media_type="video/mp4", headers={
        "content-length": str(size), "content-disposition": content_disposition(job.filename),
        "cache-control": "private, no-store", "x-content-sha256": job.sha256 or ""})
