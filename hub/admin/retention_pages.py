"""Retention (保存期满的音像记录) pages and API: segments whose retention period is over and
that no case links, deletion requests, the two approvals by different people, the deletion
itself and its permanent record; and holds (保全) that keep a segment from deletion while a
查阅 request (第二十九条), a complaint or a lawsuit may need it (hub/oversight/holds.py).

The rules are hub/oversight/retention.py's (decisions by hub/policy/retention.py); the
retention period and the number of approvals come from the ``[oversight]`` section of hub.toml
(``AdminSettings.oversight``), the same the ingest daemon uses. The acting person is always
the logged-in user; the blob store of the app (``app.state.store``) removes the object.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from ..db.models import Segment
from ..db.oversight_models import (
    DeletionApproval,
    DeletionRequest,
    SegmentDeletion,
    SegmentHold,
)
from ..db.types import utcnow
from ..oversight.completeness import _officer
from ..oversight.holds import MAX_REASON, active_holds, place_hold, release_hold, released_holds
from ..oversight.retention import (
    RetentionCandidate,
    approve_deletion,
    deletion_candidates,
    deletions,
    execute_deletion,
    recorded_it,
    request_deletion,
    segment_facts,
    withdraw_request,
)
from ..oversight.settings import OversightSettings
from ..policy.retention import Approval, RetentionAction, decide
from .pages import _form_str, back_to, render, user_names
from .permissions import allowed
from .security import NEED, Ctx

#: a deletion request's number in a URL (bounded: the database column is a 32-bit integer)
RequestId = Annotated[int, Path(ge=1, le=2**31 - 1)]
#: a hold's number in a URL (likewise)
HoldId = Annotated[int, Path(ge=1, le=2**31 - 1)]

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["v1"])

MANAGE = "retention.manage"


def oversight_settings(app: Any) -> OversightSettings:
    """The retention settings of this admin service (``AdminSettings.oversight``)."""
    settings: OversightSettings = app.state.settings.oversight
    return settings


# -- what the page and the API show ---------------------------------------------------------


@dataclasses.dataclass
class ApprovalView:
    approver: str
    approver_name: str
    approved_at: dt.datetime
    note: str


@dataclasses.dataclass
class RequestView:
    id: int
    segment_id: str
    device_id: str
    seq: int
    officer_id: str | None
    start_at: dt.datetime
    end_at: dt.datetime
    length: int
    reason: str
    requested_by: str
    requested_by_name: str
    requested_at: dt.datetime
    approvals: list[ApprovalView]
    action: str  # keep | eligible | delete
    decision_zh: str
    valid_approvers: list[str]
    needed: int  # approvals still missing
    #: for the logged-in user: may they approve / execute / withdraw, and if not, why
    may_approve: bool = False
    approve_blocked: str = ""
    may_execute: bool = False
    execute_blocked: str = ""
    may_withdraw: bool = False


@dataclasses.dataclass
class CandidateView:
    segment_id: str
    device_id: str
    seq: int
    officer_id: str | None
    start_at: dt.datetime | None
    end_at: dt.datetime
    length: int | None
    eligible_from: dt.datetime | None
    why_zh: str
    open_request: int | None


@dataclasses.dataclass
class HoldView:
    id: int
    segment_id: str
    device_id: str
    seq: int
    officer_id: str | None
    start_at: dt.datetime
    end_at: dt.datetime
    reason: str
    placed_by: str
    placed_by_name: str
    placed_at: dt.datetime
    released_at: dt.datetime | None = None
    released_by: str | None = None
    released_by_name: str | None = None
    release_reason: str | None = None


async def _hold_views(ctx: Ctx, holds: list[SegmentHold], names: dict[str, str]
                      ) -> list[HoldView]:
    segs = {s.segment_id: s for s in (await ctx.db.execute(
        select(Segment).where(Segment.segment_id.in_({h.segment_id for h in holds}))
    )).scalars()} if holds else {}
    out = []
    for h in holds:
        seg = segs[h.segment_id]
        out.append(HoldView(
            id=h.id, segment_id=h.segment_id, device_id=seg.device_id, seq=seg.seq,
            officer_id=_officer(seg.officer_id), start_at=seg.start_at, end_at=seg.end_at,
            reason=h.reason, placed_by=h.placed_by, placed_by_name=_who(names, h.placed_by),
            placed_at=h.placed_at, released_at=h.released_at, released_by=h.released_by,
            released_by_name=_who(names, h.released_by) if h.released_by else None,
            release_reason=h.release_reason))
    return out


def _who(names: dict[str, str], who: str) -> str:
    name = who.removeprefix("user:")
    return f"{names[name]}（{name}）" if name in names else name


def _period_zh(settings: OversightSettings) -> str:
    days = settings.keep_unlinked_for / dt.timedelta(days=1)
    return f"{days:g} 天"


def _candidate_view(c: RetentionCandidate, settings: OversightSettings,
                    open_request: int | None) -> CandidateView:
    due = c.eligible_from
    why = (f"未关联任何案件；保存期限 {_period_zh(settings)}，"
           f"已于 {_local(due)} 届满" if due is not None else c.reason_zh)
    return CandidateView(c.segment_id, c.device_id, c.seq, c.officer_id, c.start_at, c.ended_at,
                         c.length, due, why, open_request)


def _local(moment: dt.datetime | None) -> str:
    from .views import fmt_time

    return fmt_time(moment)


async def _open_requests(ctx: Ctx) -> list[tuple[DeletionRequest, Segment]]:
    return [(r, s) for r, s in (await ctx.db.execute(
        select(DeletionRequest, Segment).join(Segment,
                                              Segment.segment_id == DeletionRequest.segment_id)
        .where(DeletionRequest.status == "open").order_by(DeletionRequest.id)
    )).all()]


async def _request_view(ctx: Ctx, req: DeletionRequest, seg: Segment, names: dict[str, str],
                        now: dt.datetime) -> RequestView:
    settings = oversight_settings(ctx.app)
    approvals = list((await ctx.db.execute(
        select(DeletionApproval).where(DeletionApproval.request_id == req.id)
        .order_by(DeletionApproval.approved_at, DeletionApproval.id))).scalars())
    # the decision on the approvals just read (retention_status would read them again)
    decision = decide(await segment_facts(ctx.db, seg),
                      [Approval(seg.segment_id, a.approver, a.approved_at) for a in approvals],
                      now, settings.retention_policy())
    needed = max(0, settings.required_approvals - len(decision.approvers))
    view = RequestView(
        id=req.id, segment_id=seg.segment_id, device_id=seg.device_id, seq=seg.seq,
        officer_id=_officer(seg.officer_id), start_at=seg.start_at, end_at=seg.end_at,
        length=seg.length, reason=req.reason, requested_by=req.requested_by,
        requested_by_name=_who(names, req.requested_by), requested_at=req.requested_at,
        approvals=[ApprovalView(a.approver, _who(names, a.approver), a.approved_at, a.note)
                   for a in approvals],
        action=decision.action.value, decision_zh=decision.reason_zh,
        valid_approvers=sorted(decision.approvers), needed=needed,
    )
    actor = ctx.actor
    manage = actor is not None and allowed(MANAGE, actor.role)
    if not manage:
        view.approve_blocked = view.execute_blocked = "您的角色只能查看，不能审批或执行删除"
        return view
    assert actor is not None
    view.may_withdraw = True
    me = actor.name
    if decision.action is RetentionAction.KEEP:
        view.approve_blocked = view.execute_blocked = decision.reason_zh
        return view
    if any(a.approver == me for a in approvals):
        view.approve_blocked = "您已同意该申请" + (
            f"，还需 {needed} 名其他人员同意" if needed else "")
    elif not settings.officer_may_approve and recorded_it(seg, me, actor.officer_id):
        view.approve_blocked = "您是录制该记录的执法人员，不能审批删除"
    elif needed == 0:
        view.approve_blocked = "已有足够的不同人员同意"
    else:
        view.may_approve = True
    if decision.action is RetentionAction.DELETE:
        view.may_execute = True
    else:
        view.execute_blocked = (f"还需 {needed} 名其他人员同意"
                                f"（删除须经 {settings.required_approvals} 名不同人员同意）")
    return view


async def overview(ctx: Ctx) -> dict[str, Any]:
    """Everything the page and GET /api/v1/retention show."""
    settings = oversight_settings(ctx.app)
    now = utcnow()
    names = await user_names(ctx)
    open_rows = await _open_requests(ctx)
    open_by_segment = {r.segment_id: r.id for r, _ in open_rows}
    candidates = [_candidate_view(c, settings, open_by_segment.get(c.segment_id))
                  for c in await deletion_candidates(ctx.db, now, settings)]
    requests = [await _request_view(ctx, r, s, names, now) for r, s in open_rows]
    done = list(reversed(await deletions(ctx.db)))
    holds = await _hold_views(ctx, await active_holds(ctx.db), names)
    released = await _hold_views(ctx, await released_holds(ctx.db), names)
    return {"settings": settings, "period_zh": _period_zh(settings), "candidates": candidates,
            "requests": requests, "deletions": done, "holds": holds, "released": released,
            "names": names, "now": now}


def _deletion_dict(d: SegmentDeletion, names: dict[str, str] | None = None) -> dict[str, Any]:
    names = names or {}
    return {
        "segment_id": d.segment_id, "request_id": d.request_id, "device_id": d.device_id,
        "seq": d.seq, "officer_id": _officer(d.officer_id), "start_at": d.start_at.isoformat(),
        "end_at": d.end_at.isoformat(), "sha256": d.sha256, "stored_ref": d.stored_ref,
        "why": d.why, "requested_by": d.requested_by,
        "approved_by": [a for a in d.approved_by.split(",") if a],
        "deleted_by": d.deleted_by, "deleted_at": d.deleted_at.isoformat(),
        "blob_deleted_at": d.blob_deleted_at.isoformat() if d.blob_deleted_at else None,
        "blob_note": d.blob_note,
        "names": {k: names[k] for k in {d.requested_by, d.deleted_by,
                                        *d.approved_by.split(",")} if k in names},
    }


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _request_dict(v: RequestView) -> dict[str, Any]:
    out = dataclasses.asdict(v)
    for key in ("start_at", "end_at", "requested_at"):
        out[key] = _iso(out[key])
    for a in out["approvals"]:
        a["approved_at"] = _iso(a["approved_at"])
    return out


def _hold_dict(v: HoldView) -> dict[str, Any]:
    out = dataclasses.asdict(v)
    for key in ("start_at", "end_at", "placed_at", "released_at"):
        out[key] = _iso(out[key])
    out["active"] = v.released_at is None
    return out


def _candidate_dict(c: CandidateView) -> dict[str, Any]:
    out = dataclasses.asdict(c)
    for key in ("start_at", "end_at", "eligible_from"):
        out[key] = _iso(out[key])
    return out


# -- pages ----------------------------------------------------------------------------------


@router.get("/retention")
async def retention_page(ctx: Ctx = NEED["retention.read"]) -> Response:
    data = await overview(ctx)
    return render(ctx, "retention.html", **data, manage=allowed(MANAGE, ctx.require_actor().role))


@router.post("/retention/requests")
async def request_page(ctx: Ctx = NEED[MANAGE]) -> Response:
    form = await ctx.request.form()
    req = await request_deletion(ctx.db, _form_str(form, "segment_id", 64),
                                 ctx.require_actor().name, _form_str(form, "reason", 2000),
                                 settings=oversight_settings(ctx.app))
    await ctx.db.commit()
    return back_to(f"/retention#del-req-{req.id}")


@router.post("/retention/requests/{request_id}/approve")
async def approve_page(request_id: RequestId, ctx: Ctx = NEED[MANAGE]) -> Response:
    form = await ctx.request.form()
    actor = ctx.require_actor()
    await approve_deletion(ctx.db, request_id, actor.name, _form_str(form, "note", 2000),
                           settings=oversight_settings(ctx.app),
                           approver_officer_id=actor.officer_id)
    await ctx.db.commit()
    return back_to(f"/retention#del-req-{request_id}")


@router.post("/retention/requests/{request_id}/withdraw")
async def withdraw_page(request_id: RequestId, ctx: Ctx = NEED[MANAGE]) -> Response:
    form = await ctx.request.form()
    await withdraw_request(ctx.db, request_id, ctx.require_actor().name,
                           _form_str(form, "reason", 2000))
    await ctx.db.commit()
    return back_to("/retention")


@router.post("/retention/holds")
async def hold_page(ctx: Ctx = NEED[MANAGE]) -> Response:
    form = await ctx.request.form()
    hold = await place_hold(ctx.db, _form_str(form, "segment_id", 64),
                            ctx.require_actor().name, _form_str(form, "reason", MAX_REASON))
    await ctx.db.commit()
    return back_to(f"/retention#hold-{hold.id}")


@router.post("/retention/holds/{hold_id}/release")
async def release_page(hold_id: HoldId, ctx: Ctx = NEED[MANAGE]) -> Response:
    form = await ctx.request.form()
    await release_hold(ctx.db, hold_id, ctx.require_actor().name,
                       _form_str(form, "reason", MAX_REASON))
    await ctx.db.commit()
    return back_to("/retention#holds")


async def _execute(ctx: Ctx, request_id: int) -> SegmentDeletion:
    actor = ctx.require_actor()
    # execute_deletion commits its record in a transaction of its own, then removes the
    # object: end this request's read transaction first
    await ctx.db.commit()
    return await execute_deletion(ctx.app.state.sessions, request_id, ctx.app.state.store,
                                  actor.name, settings=oversight_settings(ctx.app))


@router.post("/retention/requests/{request_id}/execute")
async def execute_page(request_id: RequestId, ctx: Ctx = NEED[MANAGE]) -> Response:
    record = await _execute(ctx, request_id)
    return back_to(f"/retention#deleted-{record.segment_id}")


# -- JSON API -------------------------------------------------------------------------------


class DeletionRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment_id: str = Field(min_length=1, max_length=64, description="音像记录编号")
    reason: str = Field(min_length=1, max_length=2000, description="申请删除的理由（必填）")


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field("", max_length=2000, description="意见（可选）")


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000, description="撤回理由（必填）")


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment_id: str = Field(min_length=1, max_length=64, description="音像记录编号")
    reason: str = Field(min_length=1, max_length=MAX_REASON,
                        description="保全理由（必填，例如：当事人申请查阅、投诉、行政复议或诉讼）")


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=MAX_REASON, description="解除保全的理由（必填）")


@api_router.get("/retention", summary="保存期满的音像记录：可申请删除的记录、删除申请及审批、删除记录")
async def api_overview(ctx: Ctx = NEED["retention.read"]) -> dict[str, Any]:
    data = await overview(ctx)
    settings: OversightSettings = data["settings"]
    return {
        "settings": {"keep_unlinked_days": settings.keep_unlinked_for / dt.timedelta(days=1),
                     "required_approvals": settings.required_approvals,
                     "officer_may_approve": settings.officer_may_approve},
        "candidates": [_candidate_dict(c) for c in data["candidates"]],
        "requests": [_request_dict(v) for v in data["requests"]],
        "deletions": [_deletion_dict(d, data["names"]) for d in data["deletions"]],
        "holds": [_hold_dict(v) for v in data["holds"]],
        "released_holds": [_hold_dict(v) for v in data["released"]],
    }


async def _one_hold(ctx: Ctx, hold_id: int) -> dict[str, Any]:
    hold = await ctx.db.get(SegmentHold, hold_id)
    assert hold is not None
    return _hold_dict((await _hold_views(ctx, [hold], await user_names(ctx)))[0])


@api_router.post("/retention/holds", status_code=201,
                 summary="保全音像记录：保全期间不因保存期满而删除（关闭其待审批的删除申请）")
async def api_hold(body: HoldIn, ctx: Ctx = NEED[MANAGE]) -> dict[str, Any]:
    hold = await place_hold(ctx.db, body.segment_id.strip(), ctx.require_actor().name,
                            body.reason)
    await ctx.db.commit()
    return await _one_hold(ctx, hold.id)


@api_router.post("/retention/holds/{hold_id}/release", summary="解除保全（须填写理由）")
async def api_release(hold_id: HoldId, body: ReleaseIn, ctx: Ctx = NEED[MANAGE]
                      ) -> dict[str, Any]:
    await release_hold(ctx.db, hold_id, ctx.require_actor().name, body.reason)
    await ctx.db.commit()
    return await _one_hold(ctx, hold_id)


async def _one_request(ctx: Ctx, request_id: int) -> dict[str, Any]:
    req = await ctx.db.get(DeletionRequest, request_id)
    assert req is not None
    seg = await ctx.db.get(Segment, req.segment_id)
    assert seg is not None
    if req.status != "open":
        return {"id": req.id, "segment_id": req.segment_id, "status": req.status,
                "closed_at": _iso(req.closed_at)}
    view = _request_dict(await _request_view(ctx, req, seg, await user_names(ctx), utcnow()))
    return {**view, "status": req.status}


@api_router.post("/retention/requests", status_code=201, summary="申请删除保存期满且未关联案件的音像记录")
async def api_request(body: DeletionRequestIn, ctx: Ctx = NEED[MANAGE]) -> dict[str, Any]:
    req = await request_deletion(ctx.db, body.segment_id.strip(), ctx.require_actor().name,
                                 body.reason, settings=oversight_settings(ctx.app))
    await ctx.db.commit()
    return await _one_request(ctx, req.id)


@api_router.post("/retention/requests/{request_id}/approve",
                 summary="同意删除申请（须两名不同人员同意；同一人不能重复同意）")
async def api_approve(request_id: RequestId, body: ApproveIn, ctx: Ctx = NEED[MANAGE]
                      ) -> dict[str, Any]:
    actor = ctx.require_actor()
    await approve_deletion(ctx.db, request_id, actor.name, body.note,
                           settings=oversight_settings(ctx.app),
                           approver_officer_id=actor.officer_id)
    await ctx.db.commit()
    return await _one_request(ctx, request_id)


@api_router.post("/retention/requests/{request_id}/withdraw", summary="撤回删除申请（须填写理由）")
async def api_withdraw(request_id: RequestId, body: WithdrawIn, ctx: Ctx = NEED[MANAGE]
                       ) -> dict[str, Any]:
    await withdraw_request(ctx.db, request_id, ctx.require_actor().name, body.reason)
    await ctx.db.commit()
    return await _one_request(ctx, request_id)


@api_router.post("/retention/requests/{request_id}/execute",
                 summary="执行删除（已经两名不同人员同意）；返回永久保存的删除记录")
async def api_execute(request_id: RequestId, ctx: Ctx = NEED[MANAGE]) -> dict[str, Any]:
    record = await _execute(ctx, request_id)
    return _deletion_dict(record, await user_names(ctx))
