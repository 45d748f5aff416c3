"""Archiving from the web (第二十八条): the case is locked in the request, its signed BagIt
package is built by a background job owned by the app, with visible progress and a retry.

Job state lives in this process (:class:`ArchiveJobs`, ``app.state.archive_jobs``): the
phase, bytes done, the error of a failed build. The database stays the truth about the
outcome — an ``archives`` row means the package exists — so nothing is lost by keeping the
job itself in memory: after a restart (or a crash mid-build) a locked case without its
``archives`` row shows 「归档包未生成」 with a 重新生成归档包 button, exactly like a failed build
(only the error text of the failed attempt is gone; the failure is in the audit log). The
admin service runs as one process (``lerec-admin serve``), so one registry sees every job;
it starts at most one job per case.

Every step is audited: the lock (``archive_case``), a retry (``archive`` event with
``action: rebuild_package``), a failure (``archive`` event with ``outcome: failed``) and the
package itself (``archive`` event with its SHA-256, written by the build).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from lerec.protocol import keys

from ..archive.pdfindex import FontMissing
from ..archive.progress import DONE, PHASE_ZH, PHASES, BuildAborted, Progress
from ..archive.service import ArchiveError, ArchiveResult
from ..audit.entries import EventType
from ..audit.log import record_event
from ..cases.archiving import archive_package
from ..cases.errors import Conflict, InvalidTransition
from ..db.cases_models import Case, User
from ..db.trust_models import Archive
from ..db.types import utcnow

log = logging.getLogger(__name__)

RUNNING, DONE_STATE, FAILED = "running", "done", "failed"
#: what the case page and the API call the states of a case's package
STATE_ZH = {
    "not_archived": "未归档", RUNNING: "正在生成归档包", DONE_STATE: "归档包已生成",
    FAILED: "归档包生成失败", "missing": "归档包未生成",
    "unconfigured": "未配置签名密钥，未生成归档包",
}
SHUTDOWN_GRACE = 10.0
ABORTED_ZH = "管理服务停止，归档包生成已中断。请重新生成归档包。"


@dataclass
class ArchiveJob:
    """One build of one case's package, as the pages show it."""

    case_id: int
    started_by: str  # audit actor, "user:<name>"
    started_by_name: str
    attempt: int
    started_at: dt.datetime = field(default_factory=utcnow)
    state: str = RUNNING
    progress: Progress = field(default_factory=Progress)
    failed_phase: str | None = None
    error: str | None = None
    result: ArchiveResult | None = None
    finished_at: dt.datetime | None = None
    task: asyncio.Task[None] | None = None
    abort: bool = False

    def report(self, p: Progress) -> None:
        """The build's progress callback (any thread): keep the latest value; stop the build
        when the service shuts down (never once the archive row is written)."""
        if self.abort and p.phase != DONE:
            raise BuildAborted(f"archive job of case {self.case_id} aborted")
        self.progress = p


class ArchiveJobs:
    """The app's archive jobs, by case: at most one running per case."""

    def __init__(self) -> None:
        self._jobs: dict[int, ArchiveJob] = {}
        self._closing = False

    def get(self, case_id: int) -> ArchiveJob | None:
        return self._jobs.get(case_id)

    def running(self, case_id: int) -> bool:
        job = self._jobs.get(case_id)
        return job is not None and job.state == RUNNING

    def start(self, app: Any, case_id: int, started_by: str, started_by_name: str
              ) -> ArchiveJob:
        if self._closing:
            raise Conflict("管理服务正在停止，请稍后重新生成归档包。")
        if self.running(case_id):
            raise Conflict("本案的归档包正在生成，请等待完成。")
        previous = self._jobs.get(case_id)
        job = ArchiveJob(case_id, started_by, started_by_name,
                         attempt=previous.attempt + 1 if previous else 1)
        self._jobs[case_id] = job
        job.task = asyncio.create_task(_run(app, job), name=f"archive-case-{case_id}")
        return job

    async def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop running builds: each stops at its next progress report (a partial package is
        removed); what has not stopped after ``grace`` seconds is cancelled."""
        self._closing = True
        tasks = []
        for job in self._jobs.values():
            if job.state == RUNNING and job.task is not None:
                job.abort = True
                tasks.append(job.task)
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=grace)


def package_root(settings: Any) -> Path:
    return Path(settings.archive_dir or Path(settings.storage_dir) / "archives")


def configured(app: Any) -> bool:
    return app.state.settings.signing_key is not None


def error_zh(exc: BaseException) -> str:
    """What went wrong, for the archivist (Simplified Chinese), and what to do."""
    if isinstance(exc, ArchiveError):
        return exc.reason_zh
    if isinstance(exc, BuildAborted):
        return ABORTED_ZH
    if isinstance(exc, FontMissing):
        return "服务器缺少中文字体，无法生成 PDF 目录。请安装 fonts-noto-cjk 后重新生成归档包。"
    if isinstance(exc, OSError):
        where = f"（{exc.filename}）" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"磁盘空间不足，归档包未能写完{where}。请清理归档目录所在磁盘后重新生成归档包。"
        if isinstance(exc, FileNotFoundError):
            return f"找不到文件{where}。请运行 lerec-verify store 检查存储后重新生成归档包。"
        if isinstance(exc, PermissionError):
            return f"没有读写权限{where}。请管理员检查归档目录和存储目录的权限后重新生成归档包。"
        return f"读写文件或存储失败{where}：{exc.strerror or exc}。请检查后重新生成归档包。"
    return (f"归档包生成失败（{type(exc).__name__}: {str(exc)[:300]}）。"
            "请联系管理员查看管理服务日志，排除问题后重新生成归档包。")


async def _run(app: Any, job: ArchiveJob) -> None:
    settings = app.state.settings
    try:
        hub_key = keys.ed25519_private(Path(settings.signing_key).read_bytes())
        job.result = await archive_package(
            app.state.sessions, app.state.store, app.state.rulebook, job.case_id,
            hub_key=hub_key, archived_by=job.started_by, archive_root=package_root(settings),
            origin=settings.audit_origin, on_progress=job.report)
    except asyncio.CancelledError:
        _failed(job, ABORTED_ZH)
        raise
    except Exception as exc:
        if isinstance(exc, ArchiveError | BuildAborted):
            log.warning("archive package of case %s not built: %s", job.case_id, exc)
        else:
            log.exception("archive package of case %s failed", job.case_id)
        _failed(job, error_zh(exc))
        await _audit_failure(app, job)
    else:
        job.state = DONE_STATE
        job.finished_at = utcnow()


def _failed(job: ArchiveJob, message: str) -> None:
    job.failed_phase = job.progress.phase
    job.error = message
    job.state = FAILED
    job.finished_at = utcnow()


async def _audit_failure(app: Any, job: ArchiveJob) -> None:
    try:
        async with app.state.sessions() as s, s.begin():
            await record_event(s, EventType.ARCHIVE, job.started_by, [f"case:{job.case_id}"], {
                "outcome": "failed", "action": "build_package", "attempt": job.attempt,
                "phase": job.failed_phase, "error": (job.error or "")[:500]})
    except Exception:
        log.exception("could not audit the failed archive build of case %s", job.case_id)


# -- what the routes call -------------------------------------------------------------------


async def start_build(ctx: Any, case: Case) -> ArchiveJob | None:
    """After ``archive_case`` is committed: start building the package in the background
    (without the hub key configured the case is only locked)."""
    if not configured(ctx.app):
        return None
    actor = ctx.require_actor()
    jobs: ArchiveJobs = ctx.app.state.archive_jobs
    return jobs.start(ctx.app, case.id, actor.audit, actor.display_name)


async def retry_build(ctx: Any, case: Case) -> ArchiveJob:
    """重新生成归档包: for a locked case without its package (a failed or interrupted build).
    Audited like the first build; the route checks case.archive and the CSRF token."""
    app = ctx.app
    jobs: ArchiveJobs = app.state.archive_jobs
    if case.archived_at is None:
        raise InvalidTransition("案件尚未归档，请先形成案卷并归档。")
    row = await ctx.db.get(Archive, str(case.id))
    if row is not None:
        raise Conflict(f"本案的归档包已生成，档号 {row.archive_no}。")
    if jobs.running(case.id):
        raise Conflict("本案的归档包正在生成，请等待完成。")
    if not configured(app):
        raise Conflict("管理服务未配置枢纽签名密钥（hub.toml 的 signing_key），无法生成归档包。"
                       "请联系管理员配置后重试。")
    actor = ctx.require_actor()
    previous = jobs.get(case.id)
    await record_event(ctx.db, EventType.ARCHIVE, actor.audit, [f"case:{case.id}"], {
        "action": "rebuild_package", "case_no": case.case_no,
        "attempt": previous.attempt + 1 if previous else 1,
        "previous_error": (previous.error or "")[:500] if previous else "未生成"})
    await ctx.db.commit()
    return jobs.start(app, case.id, actor.audit, actor.display_name)


def _phases(current: str | None, state: str) -> list[dict[str, str]]:
    out = []
    at = PHASES.index(current) if current in PHASES else 0
    for i, p in enumerate(PHASES):
        if state == DONE_STATE or i < at:
            s = "done"
        elif i == at:
            s = "failed" if state == FAILED else "current"
        else:
            s = "todo"
        out.append({"id": p, "name": PHASE_ZH[p], "state": s})
    return out


async def status(app: Any, db: Any, case: Case) -> dict[str, Any]:
    """The state of the case's package for the case page and /api/v1 (datetimes as objects;
    :func:`status_json` for JSON)."""
    jobs: ArchiveJobs = app.state.archive_jobs
    out: dict[str, Any] = {"case_id": case.id, "configured": configured(app),
                           "can_retry": False, "error": None, "archive_no": None,
                           "package_ref": None, "package_path": None, "package_sha256": None,
                           "report_ok": None, "archived_at": case.archived_at,
                           "attempt": 0, "started_at": None, "finished_at": None,
                           "started_by": None, **Progress().to_json(), "phases": []}
    if case.archived_at is None:
        return _with_state(out, "not_archived")
    row = await db.get(Archive, str(case.id))
    job = jobs.get(case.id)
    if job is not None:
        out.update(job.progress.to_json(), attempt=job.attempt, started_at=job.started_at,
                   finished_at=job.finished_at, started_by=job.started_by_name)
    if row is not None:
        name = row.archived_by.removeprefix("user:")
        who = (await db.execute(select(User.display_name).where(User.name == name))
               ).scalar_one_or_none()
        out.update(archive_no=row.archive_no, package_ref=row.package_ref,
                   package_path=str(package_root(app.state.settings)
                                    / row.package_ref.removeprefix("bag:")),
                   package_sha256=row.package_sha256, report_ok=row.report_ok,
                   finished_at=row.archived_at, started_by=who or row.archived_by,
                   phase=DONE, phase_zh=PHASE_ZH[DONE], percent=100,
                   phases=_phases(DONE, DONE_STATE))
        if job is not None and job.result is not None:
            out["package_path"] = str(job.result.path)
        return _with_state(out, DONE_STATE)
    if job is not None and job.state == RUNNING:
        out["phases"] = _phases(job.progress.phase, RUNNING)
        return _with_state(out, RUNNING)
    if not out["configured"]:
        return _with_state(out, "unconfigured")
    out["can_retry"] = True
    if job is not None and job.state == FAILED:
        out.update(error=job.error, phase=job.failed_phase or job.progress.phase,
                   phase_zh=PHASE_ZH.get(job.failed_phase or "", job.progress.label),
                   phases=_phases(job.failed_phase, FAILED))
        return _with_state(out, FAILED)
    return _with_state(out, "missing")


def _with_state(out: dict[str, Any], state: str) -> dict[str, Any]:
    out["state"] = state
    out["state_zh"] = STATE_ZH[state]
    return out


def status_json(st: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in st.items()}
