"""The 查阅 pages (第二十九条), Simplified Chinese: the request list (查阅申请) with the agency
head's 同意 / 不同意 / 撤销, a case's 查阅 page (its items, the request form, what is granted),
the granted items themselves (each view decided and logged by check_access), a granted clip's
download — the watermarked, C2PA-signed export prepared in the background (exporting.py),
never the raw clip — and the confidentiality markings (密级) of a case. Each route names its permission through ``need``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from ..access import service as access_service
from ..access.rules import MAX_GRANT_DAYS, WHOLE_CASE
from ..cases import links_adapter
from ..cases.errors import InvalidInput
from ..cases.forms import CHINA, local_iso
from ..cases.service import parse_time
from ..db.cases_models import Case, CaseAttachment, CaseParty
from ..db.models import Segment
from ..db.types import utcnow
from . import access_views as av
from . import exporting, views
from .pages import _form_str, back_to, render
from .security import NEED, Ctx

router = APIRouter(include_in_schema=False)

STATUS_FILTERS = {"": "全部", "pending": "待审批", "approved": "已同意", "refused": "不同意",
                  "revoked": "已撤销", "expired": "已过期"}


def _scope_from_form(form: Any) -> list[str]:
    if _form_str(form, "scope_mode", 16) == "all":
        return [WHOLE_CASE]
    return [v[:200] for v in form.getlist("items") if isinstance(v, str) and v]


def _days(form: Any) -> int | None:
    raw = _form_str(form, "days", 8)
    return int(raw) if raw.isdigit() and 0 < int(raw) <= 365 else None


async def _party_cases(ctx: Ctx) -> list[Case]:
    actor = ctx.require_actor()
    return list((await ctx.db.execute(
        select(Case).join(CaseParty, CaseParty.case_id == Case.id)
        .where(CaseParty.user_id == actor.user_id).order_by(Case.id.desc()))).scalars())


# -- the list -----------------------------------------------------------------------------


@router.get("/access")
async def requests_page(status: str = "", case: str = "", ctx: Ctx = NEED["access.read"]
                        ) -> Response:
    status = status if status in STATUS_FILTERS else ""
    case_id = int(case) if case.isdigit() and len(case) < 10 else None
    rows = await av.visible_requests(ctx, case_id=case_id, status=status or None)
    # the catalogue of each case with a pending request: the head may narrow to its items
    catalogues: dict[int, list[av.Item]] = {}
    for r in rows:
        if r.status == "pending" and r.case_id.isdigit() and int(r.case_id) not in catalogues:
            catalogues[int(r.case_id)] = await av.catalogue(ctx.db, ctx.rb, int(r.case_id))
    items = await av.request_views(ctx, rows, {c: av.labels_of(i) for c, i in catalogues.items()})
    pending = [v for v in items if v.status == "pending"]
    return render(ctx, "access.html", pending=pending,
                  others=[v for v in items if v.status != "pending"], status_filter=status,
                  filters=STATUS_FILTERS, case_filter=case_id, catalogues=catalogues,
                  party_cases=await _party_cases(ctx) if ctx.require_actor().role == "party"
                  else [], now=utcnow(), to_local=_to_local)


def _to_local(moment: dt.datetime | None) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m-%dT%H:%M") if moment else ""


async def _decide(ctx: Ctx, request_id: int, decision: str) -> Response:
    form = await ctx.request.form()
    scope = until = None
    if decision == "approve":
        if _form_str(form, "scope_mode", 16) in ("all", "items"):  # narrowed by the head
            scope = _scope_from_form(form)
            if not scope:
                raise InvalidInput("请至少选择一项同意查阅的内容，或选择「按申请范围」。")
        raw = _form_str(form, "until", 40)
        if raw:
            until = parse_time(local_iso(raw))
            if until is None:
                raise InvalidInput("「批准期限」格式不正确。")
    await av.decide(ctx, request_id, decision, scope=scope, until=until,
                    reason=_form_str(form, "reason", 2000))
    return back_to(f"/access#req-{request_id}")


@router.post("/access/{request_id}/approve")
async def approve(request_id: int, ctx: Ctx = NEED["access.decide"]) -> Response:
    return await _decide(ctx, request_id, "approve")


@router.post("/access/{request_id}/refuse")
async def refuse(request_id: int, ctx: Ctx = NEED["access.decide"]) -> Response:
    return await _decide(ctx, request_id, "refuse")


@router.post("/access/{request_id}/revoke")
async def revoke(request_id: int, ctx: Ctx = NEED["access.decide"]) -> Response:
    return await _decide(ctx, request_id, "revoke")


# -- a case: request and view -------------------------------------------------------------


async def _case_page(ctx: Ctx, status: int = 200, errors: list[Any] | None = None,
                     message: str | None = None, form: dict[str, Any] | None = None
                     ) -> Response:
    data = await av.case_access(ctx, ctx.require_case())
    return render(ctx, "access_case.html", status=status, a=data,
                  errors={e.field: e.message for e in errors or []}, message=message,
                  form=form or {"days": "7", "scope_mode": "items", "items": []},
                  max_days=MAX_GRANT_DAYS, now=utcnow(),
                  export_unconfigured=exporting.unconfigured_reason(ctx.app.state.settings))


@router.get("/access/cases/{case_id}")
async def case_access_page(case_id: int, ctx: Ctx = NEED["access.request"]) -> Response:
    return await _case_page(ctx)


@router.post("/access/cases/{case_id}/requests")
async def file_request(case_id: int, ctx: Ctx = NEED["access.request"]) -> Response:
    form = await ctx.request.form()
    days = _days(form)
    purpose = _form_str(form, "purpose", 2000)
    scope = _scope_from_form(form)
    until = utcnow() + dt.timedelta(days=days) if days else None
    try:
        row = await av.file_request(ctx, ctx.require_case(), purpose, scope, until)
    except InvalidInput as exc:
        await ctx.rollback()
        return await _case_page(ctx, 400, exc.errors, exc.message, {
            "purpose": purpose, "days": _form_str(form, "days", 8),
            "scope_mode": _form_str(form, "scope_mode", 16), "items": scope})
    return back_to(f"/access/cases/{case_id}#req-{row.id}")


@router.get("/access/cases/{case_id}/records/{record_id}")
async def view_record(case_id: int, record_id: int, ctx: Ctx = NEED["access.view"]) -> Response:
    v = await av.view_record(ctx, record_id)
    return render(ctx, "access_record.html", case=v.case, record=v.record, kind=v.kind,
                  rows=[{"label": label, "text": text} for label, text in v.texts])


@router.get("/access/cases/{case_id}/clips/{segment_id}/media")
async def view_clip(case_id: int, segment_id: str, download: int = 0,
                    ctx: Ctx = NEED["access.view"]) -> Response:
    case = ctx.require_case()
    item = av.segment_item(segment_id[:64])
    seg = await ctx.db.get(Segment, segment_id[:64])
    if seg is None or case.id not in await links_adapter.cases_for_segment(ctx.db,
                                                                            seg.segment_id):
        raise await av.missing_item(ctx, case, item)
    if download:  # a requester downloads the watermarked, C2PA-signed export, never the raw clip
        return back_to(export_urls(case.id, seg.segment_id)["page_url"])
    await av.checked_view(ctx, case, item, media=True)
    ext = "mp4" if "mp4" in seg.media_type else "bin"
    return await views.stream_blob(ctx.request, ctx.app.state.store, seg.stored_ref, seg.length,
                                   seg.media_type, f"{case.case_no}-{seg.device_id}-{seg.seq}"
                                   f".{ext}", False)


# -- a clip's download: the watermarked export with content credentials ---------------------


def export_urls(case_id: int, segment_id: str) -> dict[str, str]:
    base = f"/access/cases/{case_id}/clips/{segment_id}/export"
    return {"page_url": base, "start_url": base, "status_url": f"{base}/status",
            "file_url": f"{base}/file"}


async def _export_state(ctx: Ctx, segment_id: str) -> tuple[Any, dict[str, Any]]:
    """The clip and the user's export of it; whether the rules let them have it now is
    decided without logging (nothing but the state is shown; starting and downloading are
    decided and logged)."""
    case = ctx.require_case()
    seg = await exporting.case_segment(ctx, case, segment_id)
    ex = exporting.status(ctx, case, seg.segment_id, export_urls(case.id, seg.segment_id))
    p = await av.actor_principal(ctx)
    d = await access_service.check_access(ctx.db, p, str(case.id), ex["item"], action="export",
                                          log=False)
    ex.update(allowed=d.allowed, reason="" if d else av.refusal_message(d))
    return seg, ex


@router.post("/access/cases/{case_id}/clips/{segment_id}/export")
async def start_export(case_id: int, segment_id: str, ctx: Ctx = NEED["access.view"]
                       ) -> Response:
    job = await exporting.start(ctx, segment_id)
    return back_to(export_urls(case_id, job.segment_id)["page_url"])


@router.get("/access/cases/{case_id}/clips/{segment_id}/export")
async def export_page(case_id: int, segment_id: str, ctx: Ctx = NEED["access.view"]
                      ) -> Response:
    seg, ex = await _export_state(ctx, segment_id)
    return render(ctx, "access_export.html", case=ctx.require_case(), seg=seg, export=ex,
                  keep_minutes=ctx.app.state.settings.export_keep_minutes)


@router.get("/access/cases/{case_id}/clips/{segment_id}/export/status")
async def export_status(case_id: int, segment_id: str, ctx: Ctx = NEED["access.view"]
                        ) -> Response:
    _seg, ex = await _export_state(ctx, segment_id)
    return render(ctx, "_access_export.html", export=ex,
                  keep_minutes=ctx.app.state.settings.export_keep_minutes)


@router.get("/access/cases/{case_id}/clips/{segment_id}/export/file")
async def export_file(case_id: int, segment_id: str, ctx: Ctx = NEED["access.view"]
                      ) -> Response:
    return await exporting.download(ctx, segment_id)


@router.get("/access/cases/{case_id}/attachments/{att_id}")
async def view_attachment(case_id: int, att_id: int, download: int = 0,
                          ctx: Ctx = NEED["access.view"]) -> Response:
    case = ctx.require_case()
    item = av.attachment_item(att_id)
    att = await ctx.db.get(CaseAttachment, att_id)
    if att is None or att.case_id != case.id:
        raise await av.missing_item(ctx, case, item)
    inline = att.content_type.split("/")[0] in ("image", "audio", "video") \
        or att.content_type == "application/pdf"
    dl = bool(download) or not inline
    await av.checked_view(ctx, case, item, download=dl, media=True)
    return await views.stream_blob(ctx.request, ctx.app.state.store, att.blob_ref, att.length,
                                   att.content_type, att.filename, dl)


# -- markings -----------------------------------------------------------------------------


@router.post("/cases/{case_id}/markings")
async def set_marking(case_id: int, ctx: Ctx = NEED["access.mark"]) -> Response:
    form = await ctx.request.form()
    item = _form_str(form, "item", 200) or WHOLE_CASE
    classes = [c for c in form.getlist("classes") if isinstance(c, str)]
    await av.set_marking(ctx, ctx.require_case(), item, classes, _form_str(form, "owner", 200))
    return back_to(f"/cases/{case_id}#access")

