"""JSON API of 查阅 (第二十九条) under /api/v1 — what the 查阅 pages do, same permissions.

A party (当事人) or an official files a request for a case (whole case or chosen items, a
purpose, an expiry within 30 days); the agency head (行政机关负责人) approves it (possibly
narrowing scope and expiry), refuses it (with a reason) or revokes a grant. Viewing a granted
item goes through the same check as the pages and is written to the audit log, allowed or
refused. A granted clip is downloaded as its export (watermark naming the requester, C2PA
content credentials): POST .../export starts preparing it, GET .../export polls, GET
.../export/file downloads it (exporting.py). Refusals carry the rules' reason in Chinese
(``detail``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ..access.rules import MAX_GRANT_DAYS, WHOLE_CASE, Confidentiality
from ..db.trust_models import AccessRequest
from . import access_views as av
from . import exporting
from .security import NEED, Ctx

router = APIRouter(prefix="/api/v1", tags=["查阅（第二十九条）"])

ITEM_DOC = ("项目标识：record:<记录 id>、segment:<音像记录 id>、attachment:<附件 id>；"
            "\"*\" 表示整个案件")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccessRequestIn(Body):
    purpose: str = Field(min_length=1, max_length=2000, description="查阅目的")
    scope: list[str] = Field(min_length=1, max_length=200, description=ITEM_DOC)
    until: AwareDatetime = Field(description=f"申请的查阅期限（带时区，{MAX_GRANT_DAYS} 日之内）")


class ApproveIn(Body):
    scope: list[str] | None = Field(None, max_length=200,
                                    description="同意的范围（可缩小，不能扩大）；不填则按申请范围")
    until: AwareDatetime | None = Field(None, description="同意的期限（可缩短，不能延长）；不填则按申请期限")
    reason: str = Field("", max_length=2000, description="意见（可选）")


class ReasonIn(Body):
    reason: str = Field(max_length=2000, description="理由（不同意、撤销时必填）")


class MarkingIn(Body):
    item: str = Field(WHOLE_CASE, max_length=200, description=ITEM_DOC)
    classes: list[Confidentiality] = Field(
        max_length=3, description="密级：state_secret 国家秘密、commercial_secret 商业秘密、"
        "personal_privacy 个人隐私；空列表表示取消")
    owner: str = Field("", max_length=128,
                       description="权利人（其商业秘密或个人隐私的人员标识；商业秘密、个人隐私必填）")


class AccessRequestOut(av.RequestView):
    pass  # a request as the pages show it (their status badge is not a field)


class ItemOut(BaseModel):
    id: str = Field(description=ITEM_DOC)
    kind: str = Field(description="record / segment / attachment")
    label: str
    at: dt.datetime | None
    allowed: bool = Field(description="现在可以查阅（已同意、未过期、未撤销，密级允许）")
    reason: str = Field(description="不能查阅的原因")
    requestable: bool = Field(description="密级规则允许本人申请")
    marks: list[str] = Field(description="密级（中文）")
    url: str = Field(description="查阅地址（每次查阅记入审计日志）")


class CaseAccessOut(BaseModel):
    case_id: int
    case_no: str
    title: str
    whole_case_requestable: bool
    whole_case_reason: str
    max_days: int
    items: list[ItemOut]
    requests: list[AccessRequestOut]


class RecordOut(BaseModel):
    item: str
    case_no: str
    kind: str
    name: str
    version: int
    fields: dict[str, Any]
    texts: dict[str, str] = Field(description="字段名称 -> 显示文本")


class ExportOut(BaseModel):
    """A requester's export of one clip: the download is this file (watermark naming the
    requester, C2PA content credentials verified against the hub CA), never the raw clip."""

    case_id: int
    segment_id: str
    item: str
    state: str = Field(description="none 尚未生成 / queued 排队等待 / running 正在生成 / "
                       "ready 已生成，可以下载 / failed 生成失败 / unconfigured 未配置导出")
    state_zh: str
    configured: bool = Field(description="管理服务已配置内容凭证签名证书")
    message: str | None = Field(description="未配置或失败的原因（中文）")
    filename: str | None
    size: int | None
    sha256: str | None = Field(description="导出文件的 SHA-256（与审计日志中的 export 记录一致）")
    c2pa_validation: str | None = Field(description="对照枢纽 CA 校验内容凭证的结果（Trusted 可信）")
    c2pa_manifest: str | None
    watermark: list[str] = Field(description="画面上的水印文字")
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    downloads: int
    status_url: str
    download_url: str | None = Field(description="下载地址（每次下载均重新判定并记入审计日志）")


class MarkingOut(BaseModel):
    item: str
    label: str
    classes: list[str]
    classes_zh: list[str]
    owner: str


def _out(v: av.RequestView) -> AccessRequestOut:
    return AccessRequestOut(**v.model_dump())


async def _one(ctx: Ctx, row: AccessRequest) -> AccessRequestOut:
    return _out(await av.request_view(ctx, row))


async def _decide(ctx: Ctx, request_id: int, decision: str, **kw: Any) -> AccessRequestOut:
    return await _one(ctx, await av.decide(ctx, request_id, decision, **kw))


@router.get("/access/requests", summary="查阅申请列表（本人的；行政机关负责人、审计可查看全部）",
            response_model=list[AccessRequestOut])
async def list_requests(
    status: str = Query("", pattern="^(|pending|approved|refused|revoked|expired)$"),
    case_id: int | None = Query(None, ge=1, le=2**31 - 1),
    ctx: Ctx = NEED["access.read"],
) -> list[AccessRequestOut]:
    rows = await av.visible_requests(ctx, case_id=case_id, status=status or None)
    return [_out(v) for v in await av.request_views(ctx, rows)]


@router.get("/access/requests/{request_id}", summary="一条查阅申请", response_model=AccessRequestOut)
async def get_request(request_id: int, ctx: Ctx = NEED["access.read"]) -> AccessRequestOut:
    return await _one(ctx, await av.one_request(ctx, request_id))


@router.post("/cases/{case_id}/access/requests", status_code=201, response_model=AccessRequestOut,
             summary="申请查阅（当事人或执法人员；规则不允许的申请记为「不同意」并说明理由）")
async def file_request(case_id: int, body: AccessRequestIn, ctx: Ctx = NEED["access.request"]
                       ) -> AccessRequestOut:
    return await _one(ctx, await av.file_request(ctx, ctx.require_case(), body.purpose,
                                                 body.scope, body.until))


@router.get("/cases/{case_id}/access", response_model=CaseAccessOut,
            summary="本人对本案的查阅情况：可申请的项目、可查阅的项目、本人的申请")
async def case_access(case_id: int, ctx: Ctx = NEED["access.request"]) -> CaseAccessOut:
    a = await av.case_access(ctx, ctx.require_case())
    case = a["case"]
    return CaseAccessOut(
        case_id=case.id, case_no=case.case_no, title=case.title,
        whole_case_requestable=a["whole_requestable"], whole_case_reason=a["whole_reason"],
        max_days=a["max_days"], requests=[_out(v) for v in a["requests"]],
        items=[ItemOut(id=s.item.id, kind=s.item.kind, label=s.item.label, at=s.item.when,
                       allowed=s.allowed, reason=s.reason, requestable=s.requestable,
                       marks=s.marks, url=s.item.url) for s in a["items"]])


@router.get("/cases/{case_id}/access/records/{record_id}", response_model=RecordOut,
            summary="查阅经同意的一项记录（记入审计日志）")
async def view_record(case_id: int, record_id: int, ctx: Ctx = NEED["access.view"]
                      ) -> RecordOut:
    v = await av.view_record(ctx, record_id)
    return RecordOut(item=v.item, case_no=v.case.case_no, kind=v.record.kind_id,
                     name=v.kind.name if v.kind else v.record.kind_id,
                     version=v.record.version, fields=v.values, texts=dict(v.texts))


@router.post("/access/requests/{request_id}/approve", response_model=AccessRequestOut,
             summary="同意（行政机关负责人；可缩小范围、缩短期限；不得审批本人的申请）")
async def approve(request_id: int, body: ApproveIn, ctx: Ctx = NEED["access.decide"]
                  ) -> AccessRequestOut:
    return await _decide(ctx, request_id, "approve", scope=body.scope, until=body.until,
                         reason=body.reason)


@router.post("/access/requests/{request_id}/refuse", response_model=AccessRequestOut,
             summary="不同意（行政机关负责人；须说明理由）")
async def refuse(request_id: int, body: ReasonIn, ctx: Ctx = NEED["access.decide"]
                 ) -> AccessRequestOut:
    return await _decide(ctx, request_id, "refuse", reason=body.reason)


@router.post("/access/requests/{request_id}/revoke", response_model=AccessRequestOut,
             summary="撤销已同意的查阅（行政机关负责人；须说明理由）")
async def revoke(request_id: int, body: ReasonIn, ctx: Ctx = NEED["access.decide"]
                 ) -> AccessRequestOut:
    return await _decide(ctx, request_id, "revoke", reason=body.reason)


@router.get("/cases/{case_id}/markings", response_model=list[MarkingOut],
            summary="本案的密级（国家秘密、商业秘密、个人隐私）")
async def markings(case_id: int, ctx: Ctx = NEED["case.read"]) -> list[MarkingOut]:
    return [MarkingOut(**m) for m in await av.case_marking_rows(ctx, ctx.require_case())]


@router.put("/cases/{case_id}/markings", response_model=list[MarkingOut],
            summary="设定或取消案件或其中一项的密级（设定、取消国家秘密须具有涉密资格）")
async def set_marking(case_id: int, body: MarkingIn, ctx: Ctx = NEED["access.mark"]
                      ) -> list[MarkingOut]:
    case = ctx.require_case()
    await av.set_marking(ctx, case, body.item, [c.value for c in body.classes], body.owner)
    return [MarkingOut(**m) for m in await av.case_marking_rows(ctx, case)]


# -- a clip's download: the watermarked export with content credentials ---------------------


def _export_urls(case_id: int, segment_id: str) -> dict[str, str]:
    base = f"/api/v1/cases/{case_id}/access/clips/{segment_id}/export"
    return {"status_url": base, "file_url": f"{base}/file"}


@router.post("/cases/{case_id}/access/clips/{segment_id}/export", status_code=202,
             response_model=ExportOut,
             summary="生成经同意的音像记录的导出文件（带下载人水印和 C2PA 内容凭证；后台生成，"
             "轮询状态；已生成的直接返回 200）")
async def start_export(case_id: int, segment_id: str, response: Response,
                       ctx: Ctx = NEED["access.view"]) -> ExportOut:
    job = await exporting.start(ctx, segment_id)
    out = exporting.status(ctx, ctx.require_case(), job.segment_id,
                           _export_urls(case_id, job.segment_id))
    if out["state"] == exporting.READY:
        response.status_code = 200
    return ExportOut.model_validate(out)


@router.get("/cases/{case_id}/access/clips/{segment_id}/export", response_model=ExportOut,
            summary="本人对一段音像记录的导出状态")
async def export_status(case_id: int, segment_id: str, ctx: Ctx = NEED["access.view"]
                        ) -> ExportOut:
    case = ctx.require_case()
    seg = await exporting.case_segment(ctx, case, segment_id)
    return ExportOut.model_validate(exporting.status(
        ctx, case, seg.segment_id, _export_urls(case_id, seg.segment_id)))


@router.get("/cases/{case_id}/access/clips/{segment_id}/export/file",
            response_class=StreamingResponse,
            responses={200: {"content": {"video/mp4": {}},
                             "description": "导出文件（MP4，作为附件下载）"}},
            summary="下载已生成的导出文件（每次下载重新判定授权并记入审计日志）")
async def export_file(case_id: int, segment_id: str, ctx: Ctx = NEED["access.view"]
                      ) -> StreamingResponse:
    return await exporting.download(ctx, segment_id)
