"""What the pages and the JSON API both show: case detail, findings, fleet, clip streaming.

Routes stay thin; the data they show is assembled here once for both the HTML and the JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from jinja2 import Environment
from sqlalchemy import func, select

from ..audit.entries import EventType
from ..audit.log import record_event
from ..cases import bundle, links_adapter
from ..cases.forms import CHINA, display_value
from ..cases.service import Actor, addable_kinds
from ..cases.snapshot import (
    LinkedClip,
    build_snapshot,
    clips_from_rows,
    summarise,
)
from ..db.cases_models import (
    Approval,
    Case,
    CaseAttachment,
    CaseRecord,
    User,
)
from ..db.models import Device, Segment
from ..db.types import utcnow
from ..rules import Finding, Rulebook, article_label, evaluate
from .security import Ctx, Denied

SEVERITY_ZH = {"error": "违规", "warning": "提示", "info": "建议"}
VIEW_DEDUP_SECONDS = 300


# -- template filters ---------------------------------------------------------------------


def fmt_time(value: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(CHINA).strftime(fmt)


def fmt_size(n: int | None) -> str:
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def install_filters(env: Environment) -> None:
    env.filters["cst"] = fmt_time
    env.filters["cst_date"] = lambda v: fmt_time(v, "%Y-%m-%d")
    env.filters["size"] = fmt_size
    env.filters["article"] = lambda n: article_label(n) if n else ""
    env.globals["SEVERITY_ZH"] = SEVERITY_ZH


# -- findings -----------------------------------------------------------------------------


def finding_dict(f: Finding, rb: Rulebook) -> dict[str, Any]:
    return {
        "code": f.code.value, "severity": f.severity.value,
        "severity_zh": SEVERITY_ZH[f.severity.value], "article": f.article,
        "article_label": article_label(f.article) if f.article else None,
        "message": f.message, "record_id": f.record_id, "kind_id": f.kind_id,
        "kind_name": rb.record_kinds[f.kind_id].name if f.kind_id in rb.record_kinds else None,
        "field_id": f.field_id, "clip_id": f.clip_id, "attachment_id": f.attachment_id,
        "hint": f.hint,
    }


async def refresh_all(app: Any, batch: int = 500) -> int:
    """Re-evaluate every open case (time-dependent findings: upload and archive deadlines)."""
    rb = app.state.rulebook
    done, last = 0, 0
    while True:
        async with app.state.sessions() as db, db.begin():
            cases = list((await db.execute(
                select(Case).where(Case.id > last, Case.archived_at.is_(None))
                .order_by(Case.id).limit(batch))).scalars())
            if not cases:
                return done
            now = utcnow()
            for case in cases:
                summarise(case, evaluate(await build_snapshot(db, rb, case), rb, now), now)
            last = cases[-1].id
            done += len(cases)


# -- case detail --------------------------------------------------------------------------


def _stage_label(rb: Rulebook, stage: str) -> str:
    if stage == "not_started":
        return rb.not_start.name
    if stage == "archived":
        return "已归档"
    return rb.stages[stage].name if stage in rb.stages else stage


def status_label(rb: Rulebook, case: Case) -> str:
    if case.archived_at is not None:
        return "已归档"
    if case.not_started:
        return "不启动"
    return _stage_label(rb, case.stage)


async def case_detail(ctx: Ctx, case: Case) -> dict[str, Any]:
    db, rb = ctx.db, ctx.rb
    b = await bundle.load(db, case.id)
    records, attachments, members, approvals, changes = (
        b.records, b.attachments, b.members, b.approvals, b.changes)
    clips = await clips_from_rows(db, rb, [(link, link.segment, link.deadline, link.transcript)
                                           for link in b.links])
    users = await people(ctx)
    now = utcnow()
    snapshot = await build_snapshot(db, rb, case, records, attachments, clips)
    findings = evaluate(snapshot, rb, now)
    counts = (sum(1 for f in findings if f.severity == "error"),
              sum(1 for f in findings if f.severity == "warning"))
    if (case.finding_errors, case.finding_warnings) != counts:
        summarise(case, findings, now)
        await db.commit()

    by_record: dict[str, list[dict[str, Any]]] = defaultdict(list)
    case_findings: list[dict[str, Any]] = []
    for f in findings:
        d = finding_dict(f, rb)
        case_findings.append(d)
        if f.record_id:
            by_record[f.record_id].append(d)
    att_by_record: dict[int | None, list[CaseAttachment]] = defaultdict(list)
    for a in attachments:
        att_by_record[a.record_id].append(a)
    clips_by_record: dict[int | None, list[LinkedClip]] = defaultdict(list)
    for c in clips:
        for rid in set(c.record_ids):
            clips_by_record[rid].append(c)
    appr_by_record: dict[int | None, list[Approval]] = defaultdict(list)
    for a in approvals:
        appr_by_record[a.record_id].append(a)

    def record_view(r: CaseRecord) -> dict[str, Any]:
        kind = rb.record_kinds.get(r.kind_id)
        values = json.loads(r.fields)
        rows = []
        if kind is not None:
            for fid, fdef in kind.fields.items():
                rows.append({"id": fid, "label": fdef.label, "type": fdef.type,
                             "value": values.get(fid),
                             "text": display_value(fdef.type, values.get(fid), fdef.options)})
        creator = users.get(r.created_by) if r.created_by else None
        return {
            "id": r.id, "kind_id": r.kind_id, "kind": kind,
            "name": kind.name if kind else r.kind_id,
            "article": kind.article if kind else None, "version": r.version,
            "fields": values, "rows": rows, "created_at": r.created_at,
            "updated_at": r.updated_at, "window_start": r.window_start,
            "window_end": r.window_end,
            "created_by": creator.display_name if creator else "—",
            "attachments": att_by_record.get(r.id, []),
            "clips": clips_by_record.get(r.id, []),
            "approvals": [(a, users.get(a.user_id)) for a in appr_by_record.get(r.id, [])],
            "findings": by_record.get(str(r.id), []),
            "av": kind.av if kind else None,
            "withheld": None,
        }

    record_views = [record_view(r) for r in records]
    access = await _classified(ctx, case, records, attachments, clips)
    hidden = access["withheld"]
    for rv in record_views:
        why = hidden.get(f"record:{rv['id']}")
        if why:  # content withheld (R3/R4): the record's existence stays visible
            rv.update(rows=[], fields={}, withheld=why)
    for a in attachments:
        a.withheld = hidden.get(f"attachment:{a.id}")
        if a.withheld:
            a.transcript, a.proves = None, ""
    if hidden:
        clips = [dataclasses.replace(c, transcript=None)
                 if f"segment:{c.segment.segment_id}" in hidden else c for c in clips]
        clips_by_record = defaultdict(list)
        for c in clips:
            for rid in set(c.record_ids):
                clips_by_record[rid].append(c)
        for rv in record_views:
            rv["clips"] = clips_by_record.get(rv["id"], [])
    stages = []
    order = rb.stage_order()
    here = order.index(case.stage) if case.stage in order else 0
    addable = set(addable_kinds(rb, case))
    for i, sid in enumerate(order):
        stage = rb.stages[sid]
        state = ("done" if case.archived_at is not None or i < here
                 else "current" if i == here and not case.not_started else
                 "skipped" if case.not_started and i > 0 else
                 "current" if i == here else "todo")
        kinds = [k for k in rb.kinds_for_stage(sid) if k.id in addable]
        stages.append({
            "id": sid, "name": stage.name, "articles": stage.articles, "state": state,
            "records": [rv for rv in record_views if rv["kind"] and rv["kind"].stage == sid],
            "addable": kinds,
            "missing": [f for f in case_findings
                        if f["code"] == "missing_record" and f["kind_id"]
                        and (rb.record_kinds.get(f["kind_id"]) or
                             rb.kind_groups.get(f["kind_id"])).stage == sid],
        })
    next_stage = order[here + 1] if here + 1 < len(order) else None
    handler = users.get(case.handler_id) if case.handler_id else None
    return {
        "case": case, "status": status_label(rb, case), "stages": stages,
        "records": record_views, "findings": case_findings,
        "errors": counts[0], "warnings": counts[1],
        "attachments": attachments, "unattached": att_by_record.get(None, []),
        "clips": clips, "case_clips": clips_by_record.get(None, []),
        "members": [(m, users.get(m.user_id)) for m in members],
        "handler": handler, "facts": json.loads(case.facts or "[]"),
        "changes": [(c, users.get(c.by_user) if c.by_user else None, _stage_label(rb, c.to_stage),
                     _stage_label(rb, c.from_stage)) for c in changes],
        "approvals": appr_by_record.get(None, []),
        "next_stage": next_stage,
        "next_stage_name": rb.stages[next_stage].name if next_stage else None,
        "is_last_stage": next_stage is None,
        "now": now,
        **access,
    }


async def _classified(ctx: Ctx, case: Case, records: Any, attachments: Any, clips: Any
                      ) -> dict[str, Any]:
    """Confidentiality markings of the case (第二十九条): the classes per item (for badges),
    the marking rows, and the items whose content this user may not see (国家秘密 without
    涉密资格)."""
    from ..access import service as access_service
    from . import access_views as av

    marks = await access_service.markings(ctx.db, str(case.id))
    items = ([av.record_item(r.id) for r in records]
             + [av.segment_item(c.segment.segment_id) for c in clips]
             + [av.attachment_item(a.id) for a in attachments])
    if not marks:
        return {"marks": {}, "marking_rows": [], "withheld": {}}
    labels = {av.record_item(r.id): f"记录 #{r.id} {rb_name(ctx.rb, r.kind_id)}"
              for r in records}
    labels |= {av.segment_item(c.segment.segment_id):
               f"音像记录 {c.segment.device_id} #{c.segment.seq}" for c in clips}
    labels |= {av.attachment_item(a.id): f"附件 att-{a.id} {a.filename}" for a in attachments}
    labels["*"] = "整个案件"
    return {
        "marks": {i: m for i in [*items, "*"] if (m := av.item_marks(marks, i))},
        "marking_rows": av.marking_rows(marks, labels),
        "withheld": av.withheld(await av.actor_principal(ctx), case.id, items, marks),
    }


def rb_name(rb: Rulebook, kind_id: str) -> str:
    kind = rb.record_kinds.get(kind_id)
    return kind.name if kind else kind_id


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    display_name: str
    role: str
    officer_id: str | None


PEOPLE_TTL = 30.0


async def people(ctx: Ctx) -> dict[int, Person]:
    """Every user's name and role, cached briefly in the process (a township has dozens of
    users; names shown on pages may lag a user change by up to PEOPLE_TTL seconds)."""
    state = ctx.app.state
    cached = getattr(state, "people_cache", None)
    now = time.monotonic()
    if cached is not None and now - cached[0] < PEOPLE_TTL:
        return cached[1]  # type: ignore[no-any-return]
    rows = (await ctx.db.execute(select(User.id, User.name, User.display_name, User.role,
                                        User.officer_id))).all()
    table = {r[0]: Person(r[0], r[1], r[2], r[3], r[4]) for r in rows}
    state.people_cache = (now, table)
    return table


def forget_people(app: Any) -> None:
    app.state.people_cache = None


def case_json(rb: Rulebook, case: Case, handler_name: str | None = None) -> dict[str, Any]:
    return {
        "id": case.id, "case_no": case.case_no, "title": case.title, "party": case.party,
        "enforcement_type": case.enforcement_type,
        "enforcement_type_name": rb.enforcement_types[case.enforcement_type].name
        if case.enforcement_type in rb.enforcement_types else case.enforcement_type,
        "start_mode": case.start_mode, "stage": case.stage,
        "stage_name": _stage_label(rb, case.stage), "status": status_label(rb, case),
        "not_started": case.not_started, "facts": json.loads(case.facts or "[]"),
        "handler_id": case.handler_id, "handler": handler_name,
        "created_at": case.created_at.isoformat(), "updated_at": case.updated_at.isoformat(),
        "archived_at": case.archived_at.isoformat() if case.archived_at else None,
        "execution_ended_at": case.execution_ended_at.isoformat()
        if case.execution_ended_at else None,
        "finding_errors": case.finding_errors, "finding_warnings": case.finding_warnings,
    }


# -- findings across cases ----------------------------------------------------------------


async def findings_page(ctx: Ctx, page: int, per_page: int = 25, severity: str = ""
                        ) -> tuple[list[tuple[Case, list[dict[str, Any]]]], int]:
    from ..cases.service import visible

    actor = ctx.require_actor()
    cond = [visible(actor), (Case.finding_errors + Case.finding_warnings) > 0]
    if severity == "error":
        cond.append(Case.finding_errors > 0)
    total = (await ctx.db.execute(select(func.count()).select_from(Case).where(*cond))
             ).scalar_one()
    cases = list((await ctx.db.execute(
        select(Case).where(*cond).order_by(Case.finding_errors.desc(), Case.id.desc())
        .limit(per_page).offset((max(page, 1) - 1) * per_page))).scalars())
    out = []
    now = utcnow()
    for case in cases:
        fs = evaluate(await build_snapshot(ctx.db, ctx.rb, case), ctx.rb, now)
        items = [finding_dict(f, ctx.rb) for f in fs if f.severity != "info"]
        if severity:
            items = [f for f in items if f["severity"] == severity]
        out.append((case, items))
    return out, int(total)


# -- fleet --------------------------------------------------------------------------------


async def fleet(ctx: Ctx) -> list[dict[str, Any]]:
    db = ctx.db
    devices = list((await db.execute(select(Device).order_by(Device.device_id))).scalars())
    stats = {r.device_id: r for r in (await db.execute(
        select(Segment.device_id, func.max(Segment.seq).label("max_seq"),
               func.count().label("n"), func.max(Segment.received_at).label("last_rx"))
        .group_by(Segment.device_id))).all()}
    oversight = await links_adapter.gaps_and_overdue(db, ctx.app.state.settings.oversight)
    names = {u.officer_id: u.display_name for u in (await db.execute(
        select(User).where(User.officer_id.is_not(None)))).scalars()}
    out = []
    now = utcnow()
    for d in devices:
        st = stats.get(d.device_id)
        stored_max = st.max_seq if st else None
        pending = None
        if d.last_seq_reported is not None:
            pending = max(0, d.last_seq_reported - (stored_max if stored_max is not None else -1))
        info = oversight.get(d.device_id, {})
        online = d.last_seen_at is not None and now - d.last_seen_at < dt.timedelta(minutes=10)
        out.append({
            "device": d, "officer": names.get(d.officer_id, d.officer_id),
            "segments": st.n if st else 0, "last_received": st.last_rx if st else None,
            "pending": pending, "online": online, "revoked": d.revoked_at is not None,
            "gaps": info.get("gaps", []), "overdue": info.get("overdue", []),
            "status": device_status(d),
        })
    return out


_STATE_ZH = {"idle": "待机", "recording": "录音录像中", "audio_only": "仅录音",
             "stopped_full": "存储已满，已停止", "booting": "启动中"}
_STORAGE_ZH = {"ok": ("正常", "ok"), "low": ("空间不足", "warn"), "full": ("已满", "err")}
_CLOCK_ZH = {"synced": ("已校时", "ok"), "holdover": ("保持（未重新校时）", "warn"),
             "unsynced": ("未校时，时间不可信", "err")}


def device_status(d: Device) -> dict[str, Any] | None:
    """What the recorder said in its last heartbeat, for people: state, card, clock."""
    if d.hb_state is None:
        return None
    storage, storage_level = _STORAGE_ZH.get(d.hb_storage or "", (d.hb_storage or "—", "grey"))
    clock, clock_level = _CLOCK_ZH.get(d.hb_clock_state or "", (d.hb_clock_state or "—", "grey"))
    offset = d.hb_clock_offset_ms
    return {
        "state": _STATE_ZH.get(d.hb_state, d.hb_state),
        "storage": storage, "storage_level": storage_level,
        "free_gb": None if d.hb_free_bytes is None else d.hb_free_bytes / 1e9,
        "pending_segments": d.hb_pending_segments, "pending_mb":
            None if d.hb_pending_bytes is None else d.hb_pending_bytes / 1e6,
        "clock": clock, "clock_level": clock_level,
        "offset_s": None if offset is None else offset / 1000,
        "battery": d.hb_battery_pct, "firmware": d.hb_firmware,
    }


# -- streaming with range requests --------------------------------------------------------

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One byte range as (start, end exclusive); None for the whole object; raise on junk."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise Denied(416, "请求的字节范围无效。", "range")
    first, last = m.group(1), m.group(2)
    if first:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    else:
        n = int(last)
        start, end = max(0, size - n), size
    if start >= size or end <= start:
        raise Denied(416, "请求的字节范围超出文件大小。", "range")
    return start, end


async def audit_access(ctx: Ctx, kind: str, ident: str, case_id: int, download: bool) -> None:
    """VIEW or DOWNLOAD in the audit log: every download, and a view once per session and
    object per few minutes (a browser fetches a video in many range requests)."""
    actor = ctx.require_actor()
    key = (ctx.web_session.id if ctx.web_session else actor.name, kind, ident, download)
    cache: dict[Any, float] = ctx.app.state.clip_views
    now = time.monotonic()
    if not download and now - cache.get(key, -1e9) < VIEW_DEDUP_SECONDS:
        return
    if len(cache) > 10000:
        cache.clear()
    cache[key] = now
    await record_event(ctx.db, EventType.DOWNLOAD if download else EventType.VIEW,
                       actor.audit, [f"{kind}:{ident}", f"case:{case_id}"],
                       {"range": ctx.request.headers.get("range", "")[:64]})
    await ctx.db.commit()


async def stream_blob(request: Request, store: Any, ref: str, size: int, content_type: str,
                      filename: str, download: bool) -> Response:
    rng = parse_range(request.headers.get("range"), size)
    start, end = rng if rng else (0, size)

    async def body() -> AsyncIterator[bytes]:
        async for chunk in store.read_range(ref, start, end):
            yield chunk

    from urllib.parse import quote
    disposition = "attachment" if download else "inline"
    headers = {
        "accept-ranges": "bytes", "content-length": str(end - start),
        "content-disposition": f"{disposition}; filename*=UTF-8''{quote(filename)}",
        "cache-control": "private, no-store",
    }
    if rng:
        headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
    if request.method == "HEAD":
        return Response(status_code=206 if rng else 200, headers=headers,
                        media_type=content_type)
    return StreamingResponse(body(), status_code=206 if rng else 200, headers=headers,
                             media_type=content_type)


async def segment_for_case(ctx: Ctx, case: Case, segment_id: str) -> Segment:
    actor: Actor = ctx.require_actor()
    seg = await ctx.db.get(Segment, segment_id)
    linked = seg is not None and case.id in await links_adapter.cases_for_segment(
        ctx.db, segment_id)
    if seg is None or not (linked or actor.sees_all):
        from .security import deny

        raise await deny(ctx, 404, f"音像记录「{segment_id[:64]}」不属于本案，或您无权查看。",
                         "segment_scope", extra={"segment": segment_id[:64]})
    return seg
