"""JSON API under /api/v1 — everything the web pages do. OpenAPI schema: /api/openapi.json.

Auth: the web session cookie. ``GET /api/v1/session`` gives a (pre-login) CSRF token,
``POST /api/v1/session`` logs in (rotating the session id) and returns the session's CSRF
token; every state-changing request sends it as the ``X-CSRF-Token`` header. Errors are
``{"detail": "<中文说明>", "errors": [{"field", "code", "message", "label"}]}``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from ..cases import links_adapter, service
from ..cases import users as user_service
from ..cases.errors import InvalidInput, NotFound
from ..db.cases_models import User
from ..db.models import Segment
from ..db.types import utcnow
from ..oversight.alerts import resolve_alert
from . import archiving, pages, views
from .access_views import guard_classified
from .permissions import MATRIX
from .security import ANON_SESSION, NEED, Ctx, end_session, new_session, set_cookie

router = APIRouter(prefix="/api/v1", tags=["v1"])


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(Body):
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class CaseIn(Body):
    title: str = Field(max_length=200, description="案件名称")
    enforcement_type: str = Field(max_length=32, description="执法类型 id（第二条）")
    start_mode: str = Field(max_length=32, description="启动方式 id：application/ex_officio/complaint")
    party: str = Field("", max_length=200, description="当事人")
    handler_id: int | None = Field(None, description="承办人用户 id")
    officer_ids: list[int] = Field(default_factory=list, max_length=50)
    facts: list[str] = Field(default_factory=list, max_length=50)


class RecordIn(Body):
    kind: str = Field(max_length=64, description="记录类型 id（见 /api/v1/rulebook）")
    fields: dict[str, Any] = Field(description="字段 id -> 值（日期时间为带时区的 ISO 8601）")
    window_end: dt.datetime | None = Field(None, description="该环节结束时间（用于关联音像记录）")


class RecordChangeIn(Body):
    fields: dict[str, Any]
    reason: str = Field(max_length=2000, description="修改原因（必填）")
    version: int | None = Field(None, description="修改所基于的版本号（防止覆盖他人修改）")
    window_end: dt.datetime | None = None


class StageIn(Body):
    to: str = Field(max_length=32)
    note: str = Field("", max_length=2000)


class NoteIn(Body):
    note: str = Field(max_length=2000)


class FactsIn(Body):
    facts: list[str] = Field(max_length=50)


class ApprovalIn(Body):
    record_id: int | None = None
    decision: str = Field(pattern="^(approve|return)$")
    opinion: str = Field(max_length=5000)


class LinkIn(Body):
    segment_id: str = Field(max_length=64)
    record_id: int | None = Field(None, description="关联到的记录（环节）；不填则关联到案件")
    reason: str = Field("人工关联", max_length=2000, description="关联理由")


class UserIn(Body):
    name: str = Field(max_length=64)
    role: str = Field(max_length=32)
    password: str = Field(max_length=256)
    display_name: str | None = Field(None, max_length=100)
    officer_id: str | None = Field(None, max_length=64)


class UserChangeIn(Body):
    active: bool | None = None
    role: str | None = Field(None, max_length=32)
    password: str | None = Field(None, max_length=256)
    cleared_state_secret: bool | None = Field(None, description="涉密资格（当事人不能具有）")
    persons: list[str] | None = Field(None, max_length=20,
                                      description="本人或所代理的人员标识（商业秘密、个人隐私的权利人）")
    party_case_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None = Field(
        None, max_length=200, description="当事人账号关联的案件 id（仅当事人角色）")


def user_json(u: User, party_cases: list[int] | None = None) -> dict[str, Any]:
    return {"id": u.id, "name": u.name, "display_name": u.display_name, "role": u.role,
            "officer_id": u.officer_id, "active": u.active,
            "cleared_state_secret": bool(u.cleared_state_secret),
            "persons": user_service.persons_of(u), "party_case_ids": party_cases or []}


# -- session ------------------------------------------------------------------------------


@router.get("/session", summary="当前会话（未登录时发放登录用的 CSRF 令牌）")
async def get_session(ctx: Ctx = NEED["public"]) -> Response:
    token = None
    if ctx.web_session is None:
        token, ctx.web_session = await new_session(ctx.db, None, ANON_SESSION)
        ctx.csrf = ctx.web_session.csrf_token
        await ctx.db.commit()
    body = {"authenticated": ctx.actor is not None, "csrf_token": ctx.csrf,
            "user": user_json(ctx.user) if ctx.user else None}
    resp = JSONResponse(body)
    if token:
        set_cookie(resp, token, ctx.app.state.settings.cookie_secure,
                   int(ANON_SESSION.total_seconds()))
    return resp


@router.post("/session", summary="登录（会话 id 轮换）")
async def login(body: LoginIn, ctx: Ctx = NEED["public"]) -> Response:
    user = await pages.authenticate(ctx, body.username, body.password)
    if user is None:
        return JSONResponse({"detail": "用户名或密码错误。"}, status_code=401)
    token, row = await pages.start_session(ctx, user)
    resp = JSONResponse({"authenticated": True, "csrf_token": row.csrf_token,
                         "user": user_json(user)})
    set_cookie(resp, token, ctx.app.state.settings.cookie_secure,
               ctx.app.state.settings.session_hours * 3600)
    return resp


@router.delete("/session", summary="退出登录")
async def logout(ctx: Ctx = NEED["session"]) -> Response:
    from ..audit.entries import EventType
    from ..audit.log import record_event

    actor = ctx.require_actor()
    await end_session(ctx.db, ctx.web_session)
    await record_event(ctx.db, EventType.LOGOUT, actor.audit, [f"user:{actor.name}"], {})
    await ctx.db.commit()
    resp = JSONResponse({"authenticated": False})
    resp.delete_cookie("lerec_session", path="/")
    return resp


@router.get("/permissions", summary="权限矩阵")
async def permissions(ctx: Ctx = NEED["session"]) -> dict[str, Any]:
    return {p: {"roles": sorted(roles), "description": desc}
            for p, (roles, desc) in MATRIX.items()}


@router.get("/rulebook", summary="规则：环节、启动方式、执法类型、记录类型及字段（表单由此生成）")
async def rulebook(ctx: Ctx = NEED["session"]) -> dict[str, Any]:
    rb = ctx.rb
    return {
        "id": rb.id, "title": rb.metadata.title, "document_number": rb.metadata.document_number,
        "stages": [{"id": s.id, "name": s.name, "articles": list(s.articles)}
                   for s in rb.stages.values()],
        "start_modes": {m.id: m.name for m in rb.start_modes.values()},
        "enforcement_types": {t.id: t.name for t in rb.enforcement_types.values()},
        "facts": {f.id: f.name for f in rb.facts.values()},
        "roles": {r.id: r.name for r in rb.roles.values()},
        "record_kinds": {k.id: json.loads(k.model_dump_json()) for k in rb.record_kinds.values()},
    }


# -- cases --------------------------------------------------------------------------------


@router.get("/cases", summary="案件列表与检索")
async def list_cases(
    q: str = Query("", max_length=100), type: str = Query("", max_length=32),
    stage: str = Query("", max_length=32), handler: int | None = None,
    has_findings: bool | None = None, page: int = Query(1, ge=1, le=100000),
    per_page: int = Query(50, ge=1, le=200), ctx: Ctx = NEED["case.read"],
) -> dict[str, Any]:
    query = service.CaseQuery(q=q, enforcement_type=type, stage=stage, handler_id=handler,
                              has_findings=has_findings, page=page, per_page=per_page)
    rows, total = await service.search_cases(ctx.db, ctx.require_actor(), query)
    capped = total > max(service.COUNT_CAP, page * per_page)
    return {"total": total - 1 if capped else total, "total_is_lower_bound": capped,
            "page": page, "per_page": per_page,
            "cases": [views.case_json(ctx.rb, c, h) for c, h in rows]}


@router.post("/cases", status_code=201, summary="新建案件")
async def create_case(body: CaseIn, ctx: Ctx = NEED["case.create"]) -> dict[str, Any]:
    case = await service.create_case(
        ctx.db, ctx.rb, ctx.require_actor(), title=body.title,
        enforcement_type=body.enforcement_type, start_mode=body.start_mode, party=body.party,
        handler_id=body.handler_id, officer_ids=body.officer_ids, facts=body.facts)
    await ctx.db.commit()
    return views.case_json(ctx.rb, case)


def _detail_json(ctx: Ctx, d: dict[str, Any]) -> dict[str, Any]:
    rb = ctx.rb
    return {
        "case": views.case_json(rb, d["case"], d["handler"].display_name if d["handler"] else None),
        "findings": d["findings"],
        "records": [{
            "id": r["id"], "kind": r["kind_id"], "name": r["name"], "version": r["version"],
            "fields": r["fields"], "created_at": r["created_at"].isoformat(),
            "window_start": r["window_start"].isoformat() if r["window_start"] else None,
            "window_end": r["window_end"].isoformat() if r["window_end"] else None,
            "clips": [c.segment.segment_id for c in r["clips"]],
            "attachments": [f"att-{a.id}" for a in r["attachments"]],
            "withheld": r["withheld"],
        } for r in d["records"]],
        "clips": [{
            "segment_id": c.segment.segment_id, "device_id": c.segment.device_id,
            "officer_id": c.segment.officer_id, "start_at": c.segment.start_at.isoformat(),
            "end_at": c.segment.end_at.isoformat(), "media_type": c.segment.media_type,
            "records": [r for r in c.record_ids if r is not None], "how": c.how,
            "media_url": f"/cases/{d['case'].id}/clips/{c.segment.segment_id}/media",
        } for c in d["clips"]],
        "attachments": [{
            "id": f"att-{a.id}", "record_id": a.record_id, "filename": a.filename,
            "media_type": a.media_type, "sha256": a.blob_ref.removeprefix("sha256:"),
            "length": a.length, "method": a.method,
            "made_at": a.made_at.isoformat() if a.made_at else None, "maker": a.maker,
            "proves": a.proves, "transcript": a.transcript,
            "withheld": getattr(a, "withheld", None),
        } for a in d["attachments"]],
        "markings": d["marking_rows"],
    }


@router.get("/cases/{case_id}", summary="案件详情（记录、音像记录、附件、合规问题）")
async def get_case(case_id: int, ctx: Ctx = NEED["case.read"]) -> dict[str, Any]:
    return _detail_json(ctx, await views.case_detail(ctx, ctx.require_case()))


@router.get("/cases/{case_id}/findings", summary="本案合规问题（每条均引用条款）")
async def case_findings(case_id: int, ctx: Ctx = NEED["case.read"]) -> list[dict[str, Any]]:
    return (await views.case_detail(ctx, ctx.require_case()))["findings"]


@router.post("/cases/{case_id}/records", status_code=201, summary="制作记录（服务器端按规则校验）")
async def add_record(case_id: int, body: RecordIn, ctx: Ctx = NEED["record.write"]
                     ) -> dict[str, Any]:
    rec = await service.add_record(ctx.db, ctx.rb, ctx.require_actor(), ctx.require_case(),
                                   body.kind, body.fields, window_end=body.window_end)
    await ctx.db.commit()
    return {"id": rec.id, "kind": rec.kind_id, "version": rec.version}


@router.put("/cases/{case_id}/records/{record_id}", summary="修改记录（保留历史版本）")
async def change_record(case_id: int, record_id: int, body: RecordChangeIn,
                        ctx: Ctx = NEED["record.write"]) -> dict[str, Any]:
    case = ctx.require_case()
    rec = await service.get_record(ctx.db, case, record_id)
    await service.change_record(ctx.db, ctx.rb, ctx.require_actor(), case, rec, body.fields,
                                body.reason, expected_version=body.version,
                                window_end=body.window_end)
    await ctx.db.commit()
    return {"id": rec.id, "kind": rec.kind_id, "version": rec.version}


@router.get("/cases/{case_id}/records/{record_id}/versions", summary="记录的全部版本")
async def record_versions(case_id: int, record_id: int, ctx: Ctx = NEED["case.read"]
                          ) -> list[dict[str, Any]]:
    rec = await service.get_record(ctx.db, ctx.require_case(), record_id)
    await guard_classified(ctx, rec.case_id, f"record:{rec.id}")
    versions = (await service.record_versions(ctx.db, [rec.id])).get(rec.id, [])
    return [{"version": v.version, "fields": json.loads(v.fields), "changed_by": v.changed_by,
             "changed_at": v.changed_at.isoformat(), "reason": v.reason} for v in versions]


@router.post("/cases/{case_id}/stage", summary="推进案件环节")
async def advance(case_id: int, body: StageIn, ctx: Ctx = NEED["case.manage"]
                  ) -> dict[str, Any]:
    case = ctx.require_case()
    await service.advance_stage(ctx.db, ctx.rb, ctx.require_actor(), case, body.to, body.note)
    await ctx.db.commit()
    return views.case_json(ctx.rb, case)


@router.post("/cases/{case_id}/not-start", summary="决定不启动执法程序（第七条、第八条）")
async def not_start(case_id: int, body: NoteIn, ctx: Ctx = NEED["case.manage"]
                    ) -> dict[str, Any]:
    case = ctx.require_case()
    await service.decide_not_to_start(ctx.db, ctx.rb, ctx.require_actor(), case, body.note)
    await ctx.db.commit()
    return views.case_json(ctx.rb, case)


@router.put("/cases/{case_id}/facts", summary="设置案件情形")
async def set_facts(case_id: int, body: FactsIn, ctx: Ctx = NEED["case.manage"]
                    ) -> dict[str, Any]:
    case = ctx.require_case()
    await service.set_facts(ctx.db, ctx.rb, ctx.require_actor(), case, body.facts)
    await ctx.db.commit()
    return views.case_json(ctx.rb, case)


@router.post("/cases/{case_id}/approvals", status_code=201, summary="审核、审批意见")
async def approve(case_id: int, body: ApprovalIn, ctx: Ctx = NEED["record.approve"]
                  ) -> dict[str, Any]:
    ap = await service.approve(ctx.db, ctx.rb, ctx.require_actor(), ctx.require_case(),
                               body.record_id, body.decision, body.opinion)
    await ctx.db.commit()
    return {"id": ap.id, "decision": ap.decision}


@router.post("/cases/{case_id}/archive",
             summary="归档（党政办，第二十八条）：锁定案卷，后台生成归档包（进度见 GET …/archive）")
async def archive(case_id: int, ctx: Ctx = NEED["case.archive"]) -> dict[str, Any]:
    case = ctx.require_case()
    await service.archive_case(ctx.db, ctx.rb, ctx.require_actor(), case)
    await ctx.db.commit()
    await archiving.start_build(ctx, case)
    return {**views.case_json(ctx.rb, case), "archive": archiving.status_json(
        await archiving.status(ctx.app, ctx.db, case))}


@router.get("/cases/{case_id}/archive",
            summary="归档包状态与进度（state：not_archived/running/done/failed/missing/"
                    "unconfigured；phase、percent、bytes_done/bytes_total；完成后的档号和位置）")
async def archive_status(case_id: int, ctx: Ctx = NEED["case.read"]) -> dict[str, Any]:
    return archiving.status_json(await archiving.status(ctx.app, ctx.db, ctx.require_case()))


@router.post("/cases/{case_id}/archive/retry", status_code=202,
             summary="重新生成归档包（已锁定但归档包生成失败或未生成的案件）")
async def archive_retry(case_id: int, ctx: Ctx = NEED["case.archive"]) -> dict[str, Any]:
    case = ctx.require_case()
    await archiving.retry_build(ctx, case)
    return archiving.status_json(await archiving.status(ctx.app, ctx.db, case))


@router.post("/cases/{case_id}/attachments", status_code=201,
             summary="上传附件（multipart：file, media_type, method, made_at, maker, proves, "
                     "transcript, record_id）")
async def add_attachment(case_id: int, ctx: Ctx = NEED["record.write"]) -> dict[str, Any]:
    att = await pages.upload_attachment(ctx, await ctx.request.form())
    await ctx.db.commit()
    return {"id": f"att-{att.id}", "sha256": att.blob_ref.removeprefix("sha256:"),
            "length": att.length}


@router.post("/cases/{case_id}/clips", status_code=201, summary="关联音像记录")
async def link_clip(case_id: int, body: LinkIn, ctx: Ctx = NEED["clip.link"]) -> dict[str, Any]:
    case = ctx.require_case()
    if await ctx.db.get(Segment, body.segment_id) is None:
        raise NotFound(f"音像记录「{body.segment_id}」不存在。")
    if case.archived_at is not None:
        raise InvalidInput("案件已归档，不能再关联音像记录。")
    if body.record_id is not None:
        await service.get_record(ctx.db, case, body.record_id)
    created = await links_adapter.link(ctx.db, body.segment_id, case.id, body.record_id,
                                       ctx.require_actor().audit, body.reason)
    case.updated_at = utcnow()
    await service.refresh_findings(ctx.db, ctx.rb, case)
    await ctx.db.commit()
    return {"linked": True, "created": created}


@router.delete("/cases/{case_id}/clips/{segment_id}", summary="取消关联音像记录")
async def unlink_clip(case_id: int, segment_id: str, record_id: int | None = None,
                      reason: str = Query(..., min_length=1, max_length=2000,
                                          description="取消关联的原因"),
                      ctx: Ctx = NEED["clip.link"]) -> dict[str, Any]:
    case = ctx.require_case()
    if case.archived_at is not None:
        raise InvalidInput("案件已归档，不能取消关联。")
    if not await links_adapter.unlink(ctx.db, segment_id, case.id, record_id,
                                      ctx.require_actor().audit, reason):
        raise NotFound("该音像记录未关联到本案。")
    await service.refresh_findings(ctx.db, ctx.rb, case)
    await ctx.db.commit()
    return {"linked": False}


@router.get("/findings", summary="全部案件的合规问题")
async def all_findings(page: int = Query(1, ge=1, le=100000),
                       severity: str = Query("", pattern="^(|error|warning)$"),
                       ctx: Ctx = NEED["findings.read"]) -> dict[str, Any]:
    items, total = await views.findings_page(ctx, page, severity=severity)
    return {"total_cases": total, "page": page,
            "cases": [{"case": views.case_json(ctx.rb, c), "findings": fs} for c, fs in items]}


@router.get("/alerts", summary="预警：缺号、哈希链断裂、逾期未上传、工作日历未录入（未处理的）")
async def alerts(ctx: Ctx = NEED["alerts.read"]) -> list[dict[str, Any]]:
    return [_alert_json(a) for a in await links_adapter.alerts(ctx.db)]


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=2000,
                      description="处理说明（必填，例如：记录仪丢失，已书面说明；设备损坏，该段未能录制）")


def _alert_json(a: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in a.items()}


@router.get("/alerts/resolved", summary="最近已处理的预警（系统自动关闭或经人员处理并说明）")
async def resolved_alerts(ctx: Ctx = NEED["alerts.read"]) -> list[dict[str, Any]]:
    return [_alert_json(a) for a in await links_adapter.resolved_alerts(ctx.db)]


@router.post("/alerts/{alert_id}/resolve", summary="处理预警：填写说明后关闭（记入审计日志）")
async def api_resolve_alert(alert_id: pages.AlertId, body: ResolveIn,
                            ctx: Ctx = NEED["alerts.manage"]) -> dict[str, Any]:
    alert = await resolve_alert(ctx.db, alert_id, ctx.require_actor().name, body.note)
    await ctx.db.commit()
    return {"id": alert.id, "kind": alert.kind, "resolved_by": alert.resolved_by,
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "resolved_note": alert.resolved_note}


@router.get("/deadlines", summary="音像记录上传期限（第二十六条）：逾期未上传、即将逾期、逾期上传",
            description="管理员已处理相应缺号告警的记录确未上传，仍列在逾期未上传、即将逾期中："
            "handled 为 true，resolved_by（处理人）、resolved_at（处理时间）、resolution_note"
            "（处理说明）、resolution_alert_id（告警编号）给出处理情况；未处理的这些字段为空。")
async def deadlines(ctx: Ctx = NEED["alerts.read"]) -> dict[str, list[dict[str, Any]]]:
    lists = await links_adapter.upload_deadlines(ctx.db, ctx.app.state.settings.oversight)
    return {name: [{k: v.isoformat() if isinstance(v, dt.datetime) else v
                    for k, v in item.items()} for item in items]
            for name, items in lists.items()}


@router.get("/fleet", summary="执法记录仪设备状态")
async def fleet(ctx: Ctx = NEED["fleet.read"]) -> list[dict[str, Any]]:
    return [{
        "device_id": d["device"].device_id, "label": d["device"].label,
        "officer_id": d["device"].officer_id,
        "last_seen_at": d["device"].last_seen_at.isoformat() if d["device"].last_seen_at else None,
        "segments": d["segments"], "pending": d["pending"], "online": d["online"],
        "revoked": d["revoked"], "gaps": d["gaps"], "overdue": d["overdue"],
        "heartbeat": None if d["device"].hb_state is None else {
            "state": d["device"].hb_state, "storage": d["device"].hb_storage,
            "free_bytes": d["device"].hb_free_bytes,
            "pending_segments": d["device"].hb_pending_segments,
            "pending_bytes": d["device"].hb_pending_bytes,
            "clock_state": d["device"].hb_clock_state,
            "clock_offset_ms": d["device"].hb_clock_offset_ms,
            "battery_pct": d["device"].hb_battery_pct, "firmware": d["device"].hb_firmware,
        },
    } for d in await views.fleet(ctx)]


# -- users --------------------------------------------------------------------------------


@router.get("/users", summary="用户列表")
async def list_users(ctx: Ctx = NEED["users.read"]) -> list[dict[str, Any]]:
    from ..db.cases_models import CaseParty

    links: dict[int, list[int]] = {}
    for uid, cid in (await ctx.db.execute(select(CaseParty.user_id, CaseParty.case_id)
                                          .order_by(CaseParty.case_id))).all():
        links.setdefault(uid, []).append(cid)
    return [user_json(u, links.get(u.id)) for u in (await ctx.db.execute(
        select(User).order_by(User.name))).scalars()]


@router.post("/users", status_code=201, summary="新建用户")
async def create_user(body: UserIn, ctx: Ctx = NEED["users.manage"]) -> dict[str, Any]:
    user = await user_service.create_user(
        ctx.db, ctx.rb, name=body.name, role=body.role, password=body.password,
        display_name=body.display_name, officer_id=body.officer_id,
        actor=ctx.require_actor().audit)
    await ctx.db.commit()
    views.forget_people(ctx.app)
    return user_json(user)


@router.patch("/users/{user_id}", summary="停用/启用、设置角色或密码")
async def change_user(user_id: int, body: UserChangeIn, ctx: Ctx = NEED["users.manage"]
                      ) -> dict[str, Any]:
    user = await ctx.db.get(User, user_id)
    if user is None:
        raise NotFound(f"用户「{user_id}」不存在。")
    actor = ctx.require_actor()
    if body.active is not None:
        if user.id == actor.user_id and not body.active:
            raise InvalidInput("不能停用自己的账号。")
        await user_service.set_active(ctx.db, user, body.active, actor.audit)
    if body.role is not None:
        await user_service.set_role(ctx.db, ctx.rb, user, body.role, actor.audit)
    if body.password is not None:
        await user_service.set_password(ctx.db, user, body.password, actor.audit)
    if body.cleared_state_secret is not None:
        await user_service.set_clearance(ctx.db, user, body.cleared_state_secret, actor.audit)
    if body.persons is not None:
        await user_service.set_persons(ctx.db, user, body.persons, actor.audit)
    if body.party_case_ids is not None:
        await user_service.set_party_cases(ctx.db, user, body.party_case_ids, actor.audit)
    await ctx.db.commit()
    views.forget_people(ctx.app)
    return user_json(user, await user_service.party_case_ids(ctx.db, user.id))
