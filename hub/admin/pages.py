"""The web pages (Simplified Chinese, server-rendered; htmx for the case-list filters, clip
linking and the 归档进度 panel). Each route names its permission through ``need``; nothing
else checks roles."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy import select

from ..audit.entries import EventType
from ..audit.log import record_event
from ..cases import attachments as att_service
from ..cases import links_adapter, service, transcribe
from ..cases import users as user_service
from ..cases.errors import InvalidInput, NotFound
from ..cases.forms import CHINA, fields_from_form, input_value, local_iso
from ..cases.snapshot import linked_clips
from ..db.cases_models import CaseAttachment, User
from ..db.types import utcnow
from ..oversight.alerts import resolve_alert
from . import archiving, views
from .access_views import guard_classified
from .permissions import MATRIX, PARTY, ROLES, SCOPED_ROLES, allowed
from .security import (
    ANON_SESSION,
    NEED,
    Ctx,
    active_user,
    end_session,
    new_session,
    set_cookie,
)

router = APIRouter(include_in_schema=False)


def render(ctx: Ctx, name: str, status: int = 200, **data: Any) -> HTMLResponse:
    ctx.request.state.actor = ctx.actor
    data.update(ctx=ctx, actor=ctx.actor, csrf=ctx.csrf, rb=ctx.rb,
                can=lambda p: ctx.actor is not None and allowed(p, ctx.actor.role))
    return ctx.app.state.templates.TemplateResponse(ctx.request, name, data, status_code=status)


def back_to(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _form_str(form: Any, key: str, limit: int = 5000) -> str:
    value = form.get(key)
    if not isinstance(value, str):
        return ""
    if len(value) > limit:
        raise InvalidInput(f"「{key}」内容过长（最多 {limit} 字）。")
    return value.strip()


async def user_names(ctx: Ctx) -> dict[str, str]:
    """Every user's display name by login name (the login name if it has none)."""
    rows = (await ctx.db.execute(select(User.name, User.display_name))).all()
    return {r.name: r.display_name or r.name for r in rows}


def _form_int(form: Any, key: str) -> int | None:
    value = form.get(key)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# -- basics -------------------------------------------------------------------------------


@router.get("/healthz")
async def healthz(ctx: Ctx = NEED["public"]) -> PlainTextResponse:
    return PlainTextResponse("ok")


@router.get("/")
async def home(ctx: Ctx = NEED["session"]) -> RedirectResponse:
    return back_to(landing(ctx.require_actor().role))


def landing(role: str) -> str:
    """Where a user starts: the case list, or for a party (who sees no case list) 查阅申请."""
    return "/access" if role == PARTY else "/cases"


def _safe_next(value: str | None) -> str:
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/cases"
    return value[:500]


@router.get("/login")
async def login_page(request: Request, next: str = "/cases", ctx: Ctx = NEED["public"]
                     ) -> Response:
    if ctx.actor is not None:
        return back_to(_safe_next(next))
    token = None
    if ctx.web_session is None:
        token, ctx.web_session = await new_session(ctx.db, None, ANON_SESSION)
        ctx.csrf = ctx.web_session.csrf_token
        await ctx.db.commit()
    resp = render(ctx, "login.html", next=_safe_next(next), error=None, username="")
    if token:
        set_cookie(resp, token, ctx.app.state.settings.cookie_secure,
                   int(ANON_SESSION.total_seconds()))
    return resp


async def authenticate(ctx: Ctx, name: str, password: str) -> User | None:
    """Check a password (argon2id); count failures per name; audit LOGIN_FAILED."""
    settings = ctx.app.state.settings
    failures: dict[str, list[float]] = ctx.app.state.login_failures
    now = time.monotonic()
    window = settings.login_lock_minutes * 60
    recent = [t for t in failures.get(name, []) if now - t < window]
    user = await active_user(ctx.db, name) if len(name) <= 64 else None
    locked = len(recent) >= settings.login_attempts
    ok = user_service.verify_password(user.password_hash if user else None, password)
    if ok and not locked and user is not None:
        failures.pop(name, None)
        return user
    recent.append(now)
    failures[name] = recent
    await ctx.rollback()
    subject = [f"user:{name}"] if user_service.NAME_RE.fullmatch(name or "") else []
    await record_event(ctx.db, EventType.LOGIN_FAILED, "anonymous", subject,
                       {"reason": "locked" if locked else "bad_credentials"})
    await ctx.db.commit()
    return None


async def start_session(ctx: Ctx, user: User) -> tuple[str, Any]:
    """Rotate: the pre-login session is deleted and a new id issued (no fixation)."""
    settings = ctx.app.state.settings
    await end_session(ctx.db, ctx.web_session)
    token, row = await new_session(ctx.db, user.id, dt.timedelta(hours=settings.session_hours))
    await record_event(ctx.db, EventType.LOGIN, f"user:{user.name}", [f"user:{user.name}"], {})
    await ctx.db.commit()
    return token, row


@router.post("/login")
async def login(ctx: Ctx = NEED["public"]) -> Response:
    form = await ctx.request.form()
    name = _form_str(form, "username", 64)
    password = form.get("password")
    nxt = _safe_next(_form_str(form, "next", 500))
    user = await authenticate(ctx, name, password if isinstance(password, str) else "")
    if user is None:
        settings = ctx.app.state.settings
        return render(ctx, "login.html", status=400, next=nxt, username=name,
                      error="用户名或密码错误。连续失败 "
                      f"{settings.login_attempts} 次后将暂停登录 {settings.login_lock_minutes} 分钟。")
    token, _ = await start_session(ctx, user)
    if not allowed("case.read", user.role) and nxt == "/cases":
        nxt = landing(user.role)
    resp = back_to(nxt)
    set_cookie(resp, token, ctx.app.state.settings.cookie_secure,
               ctx.app.state.settings.session_hours * 3600)
    return resp


@router.post("/logout")
async def logout(ctx: Ctx = NEED["session"]) -> Response:
    actor = ctx.require_actor()
    await end_session(ctx.db, ctx.web_session)
    await record_event(ctx.db, EventType.LOGOUT, actor.audit, [f"user:{actor.name}"], {})
    await ctx.db.commit()
    resp = back_to("/login")
    resp.delete_cookie("lerec_session", path="/")
    return resp


# -- cases --------------------------------------------------------------------------------


async def _handlers(ctx: Ctx) -> list[User]:
    return list((await ctx.db.execute(
        select(User).where(User.role == "handler", User.active.is_(True))
        .order_by(User.display_name))).scalars())


async def _officers(ctx: Ctx) -> list[User]:
    return list((await ctx.db.execute(
        select(User).where(User.role.in_(("officer", "handler")), User.active.is_(True))
        .order_by(User.role.desc(), User.display_name))).scalars())


def case_query(request: Request) -> service.CaseQuery:
    p = request.query_params
    has = p.get("has_findings", "")
    handler = p.get("handler", "")
    page = p.get("page", "1")
    return service.CaseQuery(
        q=p.get("q", "")[:100], enforcement_type=p.get("type", "")[:32],
        stage=p.get("stage", "")[:32],
        handler_id=int(handler) if handler.isdigit() else None,
        has_findings=True if has == "yes" else False if has == "no" else None,
        page=int(page) if page.isdigit() and len(page) < 7 else 1,
    )


@router.get("/cases")
async def cases_page(ctx: Ctx = NEED["case.read"]) -> Response:
    query = case_query(ctx.request)
    rows, total = await service.search_cases(ctx.db, ctx.require_actor(), query)
    capped = total > max(service.COUNT_CAP, query.page * query.per_page)
    pages = max(1, (total + query.per_page - 1) // query.per_page)
    params = {k: v for k, v in ctx.request.query_params.items() if k != "page"}
    template = "_case_rows.html" if ctx.request.headers.get("hx-request") else "cases.html"
    return render(ctx, template, rows=rows, total=total, query=query, pages=pages,
                  handlers=await _handlers(ctx), qs=urlencode(params), capped=capped,
                  status_label=views.status_label)


@router.get("/cases/new")
async def new_case_page(ctx: Ctx = NEED["case.create"]) -> Response:
    return render(ctx, "case_new.html", handlers=await _handlers(ctx),
                  officers=await _officers(ctx), error=None, form={})


@router.post("/cases")
async def create_case(ctx: Ctx = NEED["case.create"]) -> Response:
    form = await ctx.request.form()
    officer_ids = [int(v) for v in form.getlist("officers") if isinstance(v, str) and v.isdigit()]
    try:
        case = await service.create_case(
            ctx.db, ctx.rb, ctx.require_actor(), title=_form_str(form, "title", 200),
            party=_form_str(form, "party", 200),
            enforcement_type=_form_str(form, "enforcement_type", 32),
            start_mode=_form_str(form, "start_mode", 32), handler_id=_form_int(form, "handler"),
            officer_ids=officer_ids,
            facts=[f for f in form.getlist("facts") if isinstance(f, str)],
        )
    except InvalidInput as exc:
        await ctx.rollback()
        return render(ctx, "case_new.html", status=400, handlers=await _handlers(ctx),
                      officers=await _officers(ctx), error=exc.message, form=dict(form))
    await ctx.db.commit()
    return back_to(f"/cases/{case.id}")


@router.get("/cases/{case_id}")
async def case_page(case_id: int, ctx: Ctx = NEED["case.read"]) -> Response:
    detail = await views.case_detail(ctx, ctx.require_case())
    manage = allowed("case.manage", ctx.require_actor().role)
    return render(ctx, "case.html", d=detail, officers=await _officers(ctx) if manage else [],
                  transcribers=transcribe.available(),
                  archive=await archiving.status(ctx.app, ctx.db, ctx.require_case()))


def _record_form_data(ctx: Ctx, kind_id: str) -> Any:
    if not ctx.rb.has_kind(kind_id):
        raise NotFound(f"未知的记录类型「{kind_id[:64]}」，请从案件页面选择要制作的记录。")
    return ctx.rb.kind(kind_id)


async def _person_options(ctx: Ctx) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for u in (await ctx.db.execute(select(User).where(User.active.is_(True)))).scalars():
        out.setdefault(u.role, []).append(u.display_name)
    return out


async def _render_record_form(ctx: Ctx, kind: Any, values: dict[str, Any], *,
                              record: Any = None, errors: list[Any] | None = None,
                              message: str | None = None, status: int = 200,
                              reason: str = "", window_end: str = "") -> Response:
    case = ctx.require_case()
    atts = list((await ctx.db.execute(select(CaseAttachment).where(
        CaseAttachment.case_id == case.id).order_by(CaseAttachment.id))).scalars())
    err_by_field = {e.field: e.message for e in errors or []}
    return render(ctx, "record_form.html", status=status, case=case, kind=kind, values=values,
                  record=record, errors=err_by_field, message=message, attachments=atts,
                  people=await _person_options(ctx), input_value=input_value, reason=reason,
                  window_end=window_end,
                  facts=set(json.loads(case.facts or "[]")))


@router.get("/cases/{case_id}/records/new")
async def new_record_page(case_id: int, kind: str = "", ctx: Ctx = NEED["record.write"]
                          ) -> Response:
    k = _record_form_data(ctx, kind)
    why = service.kind_applies(ctx.rb, ctx.require_case(), k.id)
    if why:
        raise InvalidInput(why)
    return await _render_record_form(ctx, k, {})


def _window_end(form: Any) -> dt.datetime | None:
    raw = _form_str(form, "window_end", 40)
    return service.parse_time(local_iso(raw)) if raw else None


@router.post("/cases/{case_id}/records")
async def add_record(case_id: int, ctx: Ctx = NEED["record.write"]) -> Response:
    form = await ctx.request.form()
    kind = _record_form_data(ctx, _form_str(form, "kind", 64))
    fields = fields_from_form(kind, form)
    case = ctx.require_case()
    try:
        rec = await service.add_record(ctx.db, ctx.rb, ctx.require_actor(), case, kind.id,
                                       fields, window_end=_window_end(form))
    except InvalidInput as exc:
        await ctx.rollback()
        return await _render_record_form(ctx, kind, fields, errors=exc.errors,
                                         message=exc.message, status=400,
                                         window_end=_form_str(form, "window_end", 40))
    await ctx.db.commit()
    return back_to(f"/cases/{case.id}#record-{rec.id}")


@router.get("/cases/{case_id}/records/{record_id}")
async def record_page(case_id: int, record_id: int, ctx: Ctx = NEED["case.read"]) -> Response:
    case = ctx.require_case()
    rec = await service.get_record(ctx.db, case, record_id)
    await guard_classified(ctx, case.id, f"record:{rec.id}")
    versions = (await service.record_versions(ctx.db, [rec.id])).get(rec.id, [])
    users = {u.id: u for u in (await ctx.db.execute(select(User))).scalars()}
    kind = ctx.rb.record_kinds.get(rec.kind_id)
    return render(ctx, "record.html", case=case, record=rec, kind=kind, users=users,
                  versions=[(v, json.loads(v.fields)) for v in versions])


@router.get("/cases/{case_id}/records/{record_id}/edit")
async def edit_record_page(case_id: int, record_id: int, ctx: Ctx = NEED["record.write"]
                           ) -> Response:
    rec = await service.get_record(ctx.db, ctx.require_case(), record_id)
    await guard_classified(ctx, rec.case_id, f"record:{rec.id}")
    kind = _record_form_data(ctx, rec.kind_id)
    we = rec.window_end.astimezone(CHINA).strftime("%Y-%m-%dT%H:%M") if rec.window_end else ""
    return await _render_record_form(ctx, kind, json.loads(rec.fields), record=rec,
                                     window_end=we)


@router.post("/cases/{case_id}/records/{record_id}")
async def change_record(case_id: int, record_id: int, ctx: Ctx = NEED["record.write"]
                        ) -> Response:
    form = await ctx.request.form()
    case = ctx.require_case()
    rec = await service.get_record(ctx.db, case, record_id)
    kind = _record_form_data(ctx, rec.kind_id)
    fields = fields_from_form(kind, form)
    reason = _form_str(form, "reason", 2000)
    try:
        await service.change_record(ctx.db, ctx.rb, ctx.require_actor(), case, rec, fields,
                                    reason, expected_version=_form_int(form, "version"),
                                    window_end=_window_end(form))
    except InvalidInput as exc:
        await ctx.rollback()
        rec = await service.get_record(ctx.db, case, record_id)
        return await _render_record_form(ctx, kind, fields, record=rec, errors=exc.errors,
                                         message=exc.message, status=400, reason=reason,
                                         window_end=_form_str(form, "window_end", 40))
    await ctx.db.commit()
    return back_to(f"/cases/{case.id}#record-{rec.id}")


@router.post("/cases/{case_id}/stage")
async def advance(case_id: int, ctx: Ctx = NEED["case.manage"]) -> Response:
    form = await ctx.request.form()
    case = ctx.require_case()
    await service.advance_stage(ctx.db, ctx.rb, ctx.require_actor(), case,
                                _form_str(form, "to", 32), _form_str(form, "note", 2000))
    await ctx.db.commit()
    return back_to(f"/cases/{case.id}")


@router.post("/cases/{case_id}/not-start")
async def not_start(case_id: int, ctx: Ctx = NEED["case.manage"]) -> Response:
    form = await ctx.request.form()
    case = ctx.require_case()
    await service.decide_not_to_start(ctx.db, ctx.rb, ctx.require_actor(), case,
                                      _form_str(form, "note", 2000))
    await ctx.db.commit()
    return back_to(f"/cases/{case.id}")


@router.post("/cases/{case_id}/facts")
async def set_facts(case_id: int, ctx: Ctx = NEED["case.manage"]) -> Response:
    form = await ctx.request.form()
    case = ctx.require_case()
    await service.set_facts(ctx.db, ctx.rb, ctx.require_actor(), case,
                            [f for f in form.getlist("facts") if isinstance(f, str)])
    await ctx.db.commit()
    return back_to(f"/cases/{case.id}")


@router.post("/cases/{case_id}/members")
async def set_members(case_id: int, ctx: Ctx = NEED["case.manage"]) -> Response:
    form = await ctx.request.form()
    case = ctx.require_case()
    ids = [int(v) for v in form.getlist("officers") if isinstance(v, str) and v.isdigit()]
    await service.set_members(ctx.db, ctx.rb, ctx.require_actor(), case, ids)
    await ctx.db.commit()
    return back_to(f"/cases/{case.id}")


@router.post("/cases/{case_id}/approvals")
async def approve(case_id: int, ctx: Ctx = NEED["record.approve"]) -> Response:
    form = await ctx.request.form()
    case = ctx.require_case()
    rid = _form_int(form, "record_id")
    await service.approve(ctx.db, ctx.rb, ctx.require_actor(), case, rid,
                          _form_str(form, "decision", 16), _form_str(form, "opinion", 5000))
    await ctx.db.commit()
    return back_to(f"/cases/{case.id}" + (f"#record-{rid}" if rid else ""))


@router.post("/cases/{case_id}/archive")
async def archive(case_id: int, ctx: Ctx = NEED["case.archive"]) -> Response:
    """Lock the case (第二十八条) and start building its package in the background."""
    case = ctx.require_case()
    await service.archive_case(ctx.db, ctx.rb, ctx.require_actor(), case)
    await ctx.db.commit()
    await archiving.start_build(ctx, case)
    return back_to(f"/cases/{case.id}#archive-status")


@router.post("/cases/{case_id}/archive/retry")
async def archive_retry(case_id: int, ctx: Ctx = NEED["case.archive"]) -> Response:
    """重新生成归档包 of a locked case whose package failed or was never built."""
    await archiving.retry_build(ctx, ctx.require_case())
    return back_to(f"/cases/{case_id}#archive-status")


@router.get("/cases/{case_id}/archive/status")
async def archive_status(case_id: int, ctx: Ctx = NEED["case.read"]) -> Response:
    """归档进度: the panel of the case page, polled by htmx while the package is built."""
    return render(ctx, "_archive_status.html",
                  archive=await archiving.status(ctx.app, ctx.db, ctx.require_case()))


# -- attachments --------------------------------------------------------------------------


async def upload_attachment(ctx: Ctx, form: Any) -> CaseAttachment:
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not getattr(upload, "filename", None):
        raise InvalidInput("请选择要上传的文件。")
    store = ctx.app.state.store
    settings = ctx.app.state.settings

    async def chunks() -> Any:
        while block := await upload.read(1024 * 1024):
            yield block

    path, digest, length = await att_service.spool(chunks(), store.staging_dir,
                                                   settings.max_upload_bytes)
    made_at_raw = _form_str(form, "made_at", 40)
    made_at = service.parse_time(local_iso(made_at_raw)) if made_at_raw else None
    if made_at_raw and made_at is None:
        path.unlink(missing_ok=True)
        raise InvalidInput("「制作时间」格式不正确。")
    return await att_service.add_attachment(
        ctx.db, ctx.rb, store, ctx.require_actor(), ctx.require_case(), path=path,
        sha256_hex=digest, length=length, filename=upload.filename,
        content_type=upload.content_type or "", media_type=_form_str(form, "media_type", 32),
        record_id=_form_int(form, "record_id"), method=_form_str(form, "method", 200),
        made_at=made_at, maker=_form_str(form, "maker", 100),
        proves=_form_str(form, "proves", 2000),
        transcript=_form_str(form, "transcript", ctx.rb.limits.longtext_max) or None,
    )


@router.post("/cases/{case_id}/attachments")
async def add_attachment(case_id: int, ctx: Ctx = NEED["record.write"]) -> Response:
    form = await ctx.request.form()
    att = await upload_attachment(ctx, form)
    await ctx.db.commit()
    anchor = f"#record-{att.record_id}" if att.record_id else "#attachments"
    return back_to(f"/cases/{case_id}{anchor}")


async def _attachment(ctx: Ctx, att_id: int) -> CaseAttachment:
    att = await ctx.db.get(CaseAttachment, att_id)
    if att is None or att.case_id != ctx.require_case().id:
        raise NotFound(f"附件「att-{att_id}」不在本案中。")
    return att


@router.post("/cases/{case_id}/attachments/{att_id}/transcript")
async def attachment_transcript(case_id: int, att_id: int, ctx: Ctx = NEED["record.write"]
                                ) -> Response:
    form = await ctx.request.form()
    att = await _attachment(ctx, att_id)
    engine = _form_str(form, "engine", 64)
    if engine:
        text = await att_service.draft_transcript(ctx.app.state.store, att, engine)
        source = engine
    else:
        text, source = _form_str(form, "transcript", ctx.rb.limits.longtext_max), "manual"
    await att_service.set_transcript(ctx.db, ctx.rb, ctx.require_actor(), ctx.require_case(),
                                     att, text, source)
    await ctx.db.commit()
    return back_to(f"/cases/{case_id}#att-{att.id}")


@router.get("/cases/{case_id}/attachments/{att_id}")
async def attachment_file(case_id: int, att_id: int, download: int = 0,
                          ctx: Ctx = NEED["clip.read"]) -> Response:
    att = await _attachment(ctx, att_id)
    await guard_classified(ctx, case_id, f"attachment:{att.id}")
    inline = att.content_type.split("/")[0] in ("image", "audio", "video") \
        or att.content_type == "application/pdf"
    dl = bool(download) or not inline
    await views.audit_access(ctx, "attachment", str(att.id), case_id, dl)
    return await views.stream_blob(ctx.request, ctx.app.state.store, att.blob_ref, att.length,
                                   att.content_type, att.filename, dl)


# -- clips --------------------------------------------------------------------------------


@router.get("/cases/{case_id}/clips")
async def clip_candidates(case_id: int, ctx: Ctx = NEED["clip.link"]) -> Response:
    case = ctx.require_case()
    officers = await service.case_officer_ids(ctx.db, case.id)
    days = ctx.request.query_params.get("days", "3")
    span = dt.timedelta(days=int(days) if days.isdigit() and int(days) <= 90 else 3)
    end = utcnow() + dt.timedelta(hours=1)
    start = min(case.created_at - dt.timedelta(days=1), end - span)
    linked = {c.segment.segment_id for c in await linked_clips(ctx.db, ctx.rb, case.id)}
    segs = [s for s in await links_adapter.candidate_segments(ctx.db, sorted(officers), start,
                                                              end, limit=100)
            if s.segment_id not in linked]
    records = [r for r in (await views.case_detail(ctx, case))["records"] if r["av"]]
    return render(ctx, "_clip_candidates.html", case=case, segments=segs, records=records)


@router.post("/cases/{case_id}/clips")
async def link_clip(case_id: int, ctx: Ctx = NEED["clip.link"]) -> Response:
    form = await ctx.request.form()
    case = ctx.require_case()
    segment_id = _form_str(form, "segment_id", 64)
    await _linkable(ctx, segment_id)
    rid = _form_int(form, "record_id")
    if rid is not None:
        await service.get_record(ctx.db, case, rid)
    await links_adapter.link(ctx.db, segment_id, case.id, rid, ctx.require_actor().audit,
                             _form_str(form, "reason", 2000) or "承办人人工关联")
    case.updated_at = utcnow()
    await service.refresh_findings(ctx.db, ctx.rb, case)
    await ctx.db.commit()
    return back_to(f"/cases/{case.id}" + (f"#record-{rid}" if rid else "#clips"))


async def _linkable(ctx: Ctx, segment_id: str) -> None:
    from ..db.models import Segment

    if not segment_id or await ctx.db.get(Segment, segment_id) is None:
        raise NotFound(f"音像记录「{segment_id[:64]}」不存在，请从候选列表中选择。")
    if ctx.require_case().archived_at is not None:
        raise InvalidInput("案件已归档，不能再关联音像记录。")


@router.post("/cases/{case_id}/clips/{segment_id}/unlink")
async def unlink_clip(case_id: int, segment_id: str, ctx: Ctx = NEED["clip.link"]) -> Response:
    form = await ctx.request.form()
    case = ctx.require_case()
    if case.archived_at is not None:
        raise InvalidInput("案件已归档，不能取消关联。")
    reason = _form_str(form, "reason", 2000)
    if not reason:
        raise InvalidInput("取消关联须填写原因（关联变更留痕）。")
    if not await links_adapter.unlink(ctx.db, segment_id, case.id, _form_int(form, "record_id"),
                                      ctx.require_actor().audit, reason):
        raise NotFound("该音像记录未关联到本案。")
    await service.refresh_findings(ctx.db, ctx.rb, case)
    await ctx.db.commit()
    return back_to(f"/cases/{case.id}#clips")


@router.post("/cases/{case_id}/clips/{segment_id}/transcript")
async def clip_transcript(case_id: int, segment_id: str, ctx: Ctx = NEED["record.write"]
                          ) -> Response:
    form = await ctx.request.form()
    case = ctx.require_case()
    text = _form_str(form, "transcript", ctx.rb.limits.longtext_max)
    if not await links_adapter.set_transcript(ctx.db, segment_id, case.id, text,
                                              ctx.require_actor().audit):
        raise NotFound("该音像记录未关联到本案。")
    await service.refresh_findings(ctx.db, ctx.rb, case)
    await ctx.db.commit()
    return back_to(f"/cases/{case.id}#clips")


@router.get("/cases/{case_id}/clips/{segment_id}/media")
async def clip_media(case_id: int, segment_id: str, download: int = 0,
                     ctx: Ctx = NEED["clip.read"]) -> Response:
    seg = await views.segment_for_case(ctx, ctx.require_case(), segment_id)
    await guard_classified(ctx, case_id, f"segment:{seg.segment_id}")
    await views.audit_access(ctx, "segment", seg.segment_id, case_id, bool(download))
    ext = "mp4" if "mp4" in seg.media_type else "bin"
    return await views.stream_blob(ctx.request, ctx.app.state.store, seg.stored_ref, seg.length,
                                   seg.media_type, f"{seg.device_id}-{seg.seq}.{ext}",
                                   bool(download))


# -- across cases -------------------------------------------------------------------------


@router.get("/findings")
async def findings_page(ctx: Ctx = NEED["findings.read"]) -> Response:
    p = ctx.request.query_params
    page = int(p.get("page", "1")) if p.get("page", "1").isdigit() else 1
    severity = p.get("severity", "") if p.get("severity", "") in ("", "error", "warning") else ""
    items, total = await views.findings_page(ctx, page, severity=severity)
    return render(ctx, "findings.html", items=items, total=total, page=page,
                  pages=max(1, (total + 24) // 25), severity=severity)


@router.get("/alerts")
async def alerts_page(ctx: Ctx = NEED["alerts.read"]) -> Response:
    items, _ = await views.findings_page(ctx, 1, per_page=200, severity="")
    urgent = [(c, [f for f in fs if f["code"] in ("upload_late", "archive_late",
                                                   "archive_due_soon")]) for c, fs in items]
    urgent = [(c, fs) for c, fs in urgent if fs]
    return render(ctx, "alerts.html", urgent=urgent,
                  oversight=await links_adapter.alerts(ctx.db),
                  resolved=await links_adapter.resolved_alerts(ctx.db),
                  names=await user_names(ctx),
                  deadlines=await links_adapter.upload_deadlines(
                      ctx.db, ctx.app.state.settings.oversight),
                  oversight_available=links_adapter.OVERSIGHT_AVAILABLE)


#: an alert's number in a URL (bounded: the database column is a 32-bit integer)
AlertId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/alerts/{alert_id}/resolve")
async def resolve_alert_page(alert_id: AlertId, ctx: Ctx = NEED["alerts.manage"]) -> Response:
    """处理告警: close an oversight alert with a note saying why (audited)."""
    form = await ctx.request.form()
    await resolve_alert(ctx.db, alert_id, ctx.require_actor().name, _form_str(form, "note", 2000))
    await ctx.db.commit()
    return back_to(f"/alerts#resolved-alert-{alert_id}")


@router.get("/fleet")
async def fleet_page(ctx: Ctx = NEED["fleet.read"]) -> Response:
    return render(ctx, "fleet.html", devices=await views.fleet(ctx),
                  oversight_available=links_adapter.OVERSIGHT_AVAILABLE)


# -- users --------------------------------------------------------------------------------


@router.get("/users")
async def users_page(ctx: Ctx = NEED["users.read"]) -> Response:
    users = list((await ctx.db.execute(select(User).order_by(User.role, User.name))).scalars())
    return render(ctx, "users.html", users=users, roles=ROLES, error=None,
                  matrix=MATRIX, scoped=SCOPED_ROLES,
                  party_cases=await user_service.party_case_numbers(ctx.db),
                  persons_of=user_service.persons_of)


@router.post("/users")
async def create_user(ctx: Ctx = NEED["users.manage"]) -> Response:
    form = await ctx.request.form()
    await user_service.create_user(
        ctx.db, ctx.rb, name=_form_str(form, "name", 64), role=_form_str(form, "role", 32),
        password=form.get("password") if isinstance(form.get("password"), str) else "",
        display_name=_form_str(form, "display_name", 100),
        officer_id=_form_str(form, "officer_id", 64) or None, actor=ctx.require_actor().audit)
    await ctx.db.commit()
    return back_to("/users")


@router.post("/users/{user_id}")
async def change_user(user_id: int, ctx: Ctx = NEED["users.manage"]) -> Response:
    form = await ctx.request.form()
    user = await ctx.db.get(User, user_id)
    if user is None:
        raise NotFound(f"用户「{user_id}」不存在。")
    actor = ctx.require_actor()
    action = _form_str(form, "action", 32)
    if action in ("activate", "deactivate"):
        if user.id == actor.user_id:
            raise InvalidInput("不能停用自己的账号。")
        await user_service.set_active(ctx.db, user, action == "activate", actor.audit)
    elif action == "role":
        await user_service.set_role(ctx.db, ctx.rb, user, _form_str(form, "role", 32),
                                    actor.audit)
    elif action == "password":
        pw = form.get("password")
        await user_service.set_password(ctx.db, user, pw if isinstance(pw, str) else "",
                                        actor.audit)
    elif action == "clearance":
        await user_service.set_clearance(ctx.db, user, _form_str(form, "cleared", 8) == "1",
                                         actor.audit)
    elif action == "party":
        ids = await user_service.case_ids_by_number(
            ctx.db, user_service.split_list(_form_str(form, "cases", 5000)))
        await user_service.set_party_cases(ctx.db, user, ids, actor.audit)
        await user_service.set_persons(ctx.db, user,
                                       user_service.split_list(_form_str(form, "persons", 3000)),
                                       actor.audit)
    else:
        raise InvalidInput("未知操作。")
    await ctx.db.commit()
    views.forget_people(ctx.app)
    return back_to("/users")
