"""第二十九条 in the admin service, shared by the pages (access_pages.py) and the JSON API
(access_api.py): who the logged-in user is for the access rules, what a case holds (its
items), how requests and markings are shown, and the one gate every 查阅 goes through.

- A user's :class:`~lerec.hub.access.rules.Principal`: ``user:<name>`` (the audit actor), the
  rule role of their admin role, their 涉密资格, the cases a party's account is linked to and
  the persons it is or represents.
- Items of a case: ``record:<id>``, ``segment:<segment id>``, ``attachment:<id>``; ``*`` is
  the whole case (the ids the access service and the audit log use).
- :func:`checked_view`: every view or download through the access routes is decided by
  :func:`~lerec.hub.access.service.check_access`, which writes it to the audit log, allowed or
  refused. A browser plays a video in many range requests: repeated requests of an allowed
  view of the same item under the same grant in the same session within
  ``VIEW_DEDUP_SECONDS`` are each decided again but logged once, as for the staff's clip
  views; every refusal and every download is logged.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select

from ..access import service as access_service
from ..access.rules import (
    LABELS_ZH,
    MAX_GRANT_DAYS,
    WHOLE_CASE,
    Confidentiality,
    Decision,
    Marking,
    Principal,
    Role,
    classification_allows,
    decide_access,
    effective,
)
from ..cases import bundle
from ..cases import users as user_service
from ..cases.errors import InvalidInput, NotFound
from ..cases.forms import display_value
from ..db.cases_models import Case, CaseRecord, User
from ..db.trust_models import AccessRequest
from ..db.types import utcnow
from ..rules import FieldError, RecordKind, Rulebook, article_label
from .permissions import PARTY, SEES_ALL_REQUESTS
from .security import Ctx, Denied, deny

VIEW_DEDUP_SECONDS = 300
RECENT_LIMIT = 300

STATUS_ZH = {"pending": "待审批", "approved": "已同意", "refused": "不同意",
             "revoked": "已撤销", "expired": "已过期"}
STATUS_BADGE = {"pending": "warn", "approved": "ok", "refused": "err", "revoked": "grey",
                "expired": "grey"}
KIND_ZH = {"party": "当事人", "official": "执法人员"}
CLASS_ORDER = (Confidentiality.STATE_SECRET, Confidentiality.COMMERCIAL_SECRET,
               Confidentiality.PERSONAL_PRIVACY)
#: codes of refusals where asking (again) may help
ASK_CODES = frozenset({"no_grant", "expired", "revoked", "out_of_scope"})

_RULE_ROLES: dict[str, frozenset[str]] = {
    "agency_head": frozenset({Role.AGENCY_HEAD}),
    "archivist": frozenset({Role.ARCHIVIST}),
    PARTY: frozenset({Role.PARTY}),
    "auditor": frozenset(),  # reads the logs; not an official in the sense of R1
}


def rule_roles(role: str) -> frozenset[str]:
    """The access rules' role for an admin role (officer, handler, ... are 执法人员)."""
    return _RULE_ROLES.get(role, frozenset({Role.OFFICIAL}))


async def principal(db: Any, user: User) -> Principal:
    cases = await user_service.party_case_ids(db, user.id) if user.role == PARTY else []
    return Principal(f"user:{user.name}", rule_roles(user.role), bool(user.cleared_state_secret),
                     frozenset(str(c) for c in cases), frozenset(user_service.persons_of(user)))


async def actor_principal(ctx: Ctx) -> Principal:
    ctx.require_actor()
    assert ctx.user is not None
    return await principal(ctx.db, ctx.user)


async def requester_principal(db: Any, requester: str) -> Principal | None:
    """The requester's current principal (roles, clearance, persons) for the approval rules."""
    user = await user_service.by_name(db, requester.removeprefix("user:"))
    return None if user is None else await principal(db, user)


# -- readable reasons ---------------------------------------------------------------------


def zh(reason: str | None) -> str:
    """The Chinese part of a rule's reason ('中文 / English'); ``[code] `` prefixes dropped."""
    text = (reason or "").strip()
    if text.startswith("[") and "] " in text:
        text = text.split("] ", 1)[1]
    return text.split(" / ", 1)[0].strip()


def code_of(reason: str | None) -> str | None:
    text = (reason or "").strip()
    return text[1:text.index("]")] if text.startswith("[") and "]" in text else None


def refusal_message(d: Decision) -> str:
    msg = f"不能查阅：{zh(d.reason)}。"
    if d.code in ASK_CODES:
        msg += "当事人依法申请查阅行政执法记录的，经行政机关负责人同意后方可查阅（第二十九条）。"
    return msg


# -- items of a case ----------------------------------------------------------------------


def record_item(record_id: int) -> str:
    return f"record:{record_id}"


def segment_item(segment_id: str) -> str:
    return f"segment:{segment_id}"


def attachment_item(att_id: int) -> str:
    return f"attachment:{att_id}"


@dataclass(frozen=True)
class Item:
    """One item of a case as a requester sees it in the catalogue (no content)."""

    id: str
    kind: str  # record | segment | attachment
    label: str
    when: dt.datetime | None
    url: str  # the 查阅 route (decided by check_access)
    media_type: str = ""


def _media_name(rb: Rulebook, media_type: str) -> str:
    for method in rb.record_methods.values():
        if media_type in method.kinds:
            return method.kinds[media_type]
    return media_type


async def catalogue(db: Any, rb: Rulebook, case_id: int) -> list[Item]:
    """Records, clips and attachments of a case: kind, number and time only."""
    b = await bundle.load(db, case_id)
    base = f"/access/cases/{case_id}"
    items: list[Item] = []
    for r in b.records:
        kind = rb.record_kinds.get(r.kind_id)
        name = kind.name if kind else r.kind_id
        art = f"（{article_label(kind.article)}）" if kind and kind.article else ""
        items.append(Item(record_item(r.id), "record", f"{name}{art} · 记录 #{r.id}",
                          r.window_start or r.created_at, f"{base}/records/{r.id}"))
    seen: set[str] = set()
    for link in sorted(b.links, key=lambda x: (x.segment.start_at, x.segment.segment_id)):
        seg = link.segment
        if seg.segment_id in seen:
            continue
        seen.add(seg.segment_id)
        what = "录音" if str(seg.media_type).startswith("audio") else "录像"
        secs = int((seg.end_at - seg.start_at).total_seconds())
        items.append(Item(segment_item(seg.segment_id), "segment",
                          f"执法记录仪{what} · {seg.device_id} #{seg.seq} · {secs} 秒",
                          seg.start_at, f"{base}/clips/{seg.segment_id}/media", seg.media_type))
    for a in b.attachments:
        items.append(Item(attachment_item(a.id), "attachment",
                          f"附件 att-{a.id}（{_media_name(rb, a.media_type)}）",
                          a.made_at or a.uploaded_at, f"{base}/attachments/{a.id}",
                          a.content_type))
    return items


def labels_of(items: Iterable[Item]) -> dict[str, str]:
    out = {i.id: i.label for i in items}
    out[WHOLE_CASE] = "整个案件"
    return out


# -- markings -----------------------------------------------------------------------------


def classes_zh(m: Marking) -> list[str]:
    return [LABELS_ZH[c] for c in CLASS_ORDER if c in m.classes]


def item_marks(marks: Mapping[str, Marking], item: str) -> list[str]:
    """The classes protecting ``item`` (its own and the case's), in Chinese."""
    if item == WHOLE_CASE:
        sources = [marks[WHOLE_CASE]] if WHOLE_CASE in marks else []
    else:
        sources = effective(marks, item)
    out: list[str] = []
    for m in sources:
        out += [c for c in classes_zh(m) if c not in out]
    return out


def marking_rows(marks: Mapping[str, Marking], labels: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"item": item, "label": labels.get(item, item), "classes": sorted(
        c.value for c in m.classes), "classes_zh": classes_zh(m), "owner": m.owner}
        for item, m in sorted(marks.items(), key=lambda kv: (kv[0] != WHOLE_CASE, kv[0]))
        if m.classes]


async def case_marking_rows(ctx: Ctx, case: Case) -> list[dict[str, Any]]:
    """The markings of a case and its items, labelled as in the case's catalogue."""
    labels = labels_of(await catalogue(ctx.db, ctx.rb, case.id))
    return marking_rows(await access_service.markings(ctx.db, str(case.id)), labels)


def withheld(p: Principal, case_id: int, items: Iterable[str],
             marks: Mapping[str, Marking]) -> dict[str, str]:
    """Items the principal may not see for their classification (R3/R4): item -> reason."""
    if not marks:
        return {}
    out = {}
    for item in items:
        d = classification_allows(p, str(case_id), item, marks)
        if not d:
            out[item] = zh(d.reason)
    return out


async def guard_classified(ctx: Ctx, case_id: int, item: str) -> None:
    """Staff routes serving an item's content: refuse (and log) what its marking forbids the
    user, e.g. 国家秘密 without 涉密资格 (R3)."""
    marks = await access_service.markings(ctx.db, str(case_id))
    if not marks:
        return
    d = classification_allows(await actor_principal(ctx), str(case_id), item, marks)
    if not d:
        raise await deny(ctx, 403, f"{zh(d.reason)}，无权查看该内容。", d.code,
                         extra={"item": item[:200], "case": str(case_id)})


# -- the gate of every 查阅 ---------------------------------------------------------------


async def checked_view(ctx: Ctx, case: Case, item: str, *, download: bool = False,
                       media: bool = False) -> Decision:
    """Decide (and log, through check_access) one view or download of ``item``; raise
    :class:`Denied` with the rule's reason when refused. ``media``: a streamed file, whose
    range requests of one view are logged once."""
    p = await actor_principal(ctx)
    action = "download" if download else "view"
    d = await access_service.check_access(ctx.db, p, str(case.id), item, action=action,
                                          log=False)
    key = ("access", ctx.web_session.id if ctx.web_session else p.user, item, action, d.grant)
    cache: dict[Any, float] = ctx.app.state.clip_views
    now = time.monotonic()
    if not media or download or not d or now - cache.get(key, -1e9) >= VIEW_DEDUP_SECONDS:
        d = await access_service.check_access(ctx.db, p, str(case.id), item, action=action)
        if d and media and not download:
            if len(cache) > 10000:
                cache.clear()
            cache[key] = now
    await ctx.db.commit()
    if not d:
        raise Denied(403, refusal_message(d), d.code)
    return d


async def missing_item(ctx: Ctx, case: Case, item: str) -> Denied:
    """An item that is not in the case: refused like a missing one, and logged."""
    return await deny(ctx, 404, "该执法记录不在本案中，或您无权查阅。", "item_scope",
                      extra={"item": item[:200], "case": str(case.id)})


@dataclass(frozen=True)
class RecordView:
    """A granted record being viewed: its values and, per field of its kind, the text shown."""

    case: Case
    item: str
    record: CaseRecord
    kind: RecordKind | None
    values: dict[str, Any]
    texts: list[tuple[str, str]]  # (field label, display text)


async def view_record(ctx: Ctx, record_id: int) -> RecordView:
    """A record of the route's case, through :func:`checked_view` (decided and logged); an
    id not in the case is refused (and logged) like a missing one."""
    case = ctx.require_case()
    item = record_item(record_id)
    rec = await ctx.db.get(CaseRecord, record_id)
    if rec is None or rec.case_id != case.id:
        raise await missing_item(ctx, case, item)
    await checked_view(ctx, case, item)
    kind = ctx.rb.record_kinds.get(rec.kind_id)
    values = json.loads(rec.fields)
    texts = [(f.label, display_value(f.type, values.get(fid), f.options))
             for fid, f in kind.fields.items()] if kind else []
    return RecordView(case, item, rec, kind, values, texts)


# -- requests -----------------------------------------------------------------------------


def parse_scope(raw: str | None) -> list[str]:
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


class RequestView(BaseModel):
    """One access request as people see it: the pages render it, the JSON API returns it
    (as ``AccessRequestOut``)."""

    id: int
    case_id: int | None
    case_no: str
    case_title: str
    requester: str = Field(description="申请人（user:<用户名>）")
    requester_name: str
    requester_kind: str = Field(description="party 当事人 / official 执法人员")
    requester_kind_zh: str
    purpose: str
    scope: list[str]
    scope_labels: list[str]
    requested_at: dt.datetime
    requested_until: dt.datetime
    status: str = Field(description="pending 待审批 / approved 已同意 / refused 不同意 / "
                        "revoked 已撤销 / expired 已过期")
    status_zh: str
    decided_by: str | None
    decided_by_name: str | None
    decided_at: dt.datetime | None
    reason: str = Field(description="不同意的理由（依规则拒绝时为规则的说明）或同意时的意见")
    refused_by_rules: bool
    rule_code: str | None
    granted_scope: list[str] | None
    granted_labels: list[str] | None
    granted_until: dt.datetime | None
    revoked_by_name: str | None
    revoked_at: dt.datetime | None
    revoke_reason: str | None
    mine: bool
    may_decide: bool  # pending, and the viewer is an agency head who did not ask
    may_revoke: bool
    self_request: bool

    @property
    def badge(self) -> str:
        """The status badge's style on the pages."""
        return STATUS_BADGE.get(self.status, "grey")


async def _names(db: Any) -> dict[str, str]:
    rows = (await db.execute(select(User.name, User.display_name))).all()
    return {f"user:{n}": d for n, d in rows} | {"rules": "系统（依规则）"}


async def request_views(ctx: Ctx, rows: Sequence[AccessRequest],
                        labels: dict[int, dict[str, str]] | None = None) -> list[RequestView]:
    """Rows -> views, with case numbers, people's names and item labels."""
    db = ctx.db
    actor = ctx.require_actor()
    names = await _names(db)
    ids = {int(r.case_id) for r in rows if r.case_id.isdigit()}
    cases = {c.id: c for c in (await db.execute(select(Case).where(Case.id.in_(ids))
                                                )).scalars()} if ids else {}
    labels = dict(labels or {})
    for known in ids:
        if known not in labels and known in cases:
            labels[known] = labels_of(await catalogue(db, ctx.rb, known))
    now = utcnow()
    me = actor.audit
    head = actor.role == "agency_head"
    out = []
    for r in rows:
        cid = int(r.case_id) if r.case_id.isdigit() else None
        case = cases.get(cid) if cid is not None else None
        lab = labels.get(cid, {}) if cid is not None else {}
        status = access_service.status_now(r, now)
        scope = parse_scope(r.scope)
        granted = parse_scope(r.granted_scope) if r.granted_scope else None
        by_rules = r.decided_by == "rules"
        reason = zh(r.decision_reason) if r.decision_reason else ""
        out.append(RequestView(
            id=r.id, case_id=cid, case_no=case.case_no if case else r.case_id,
            case_title=case.title if case else "", requester=r.requester,
            requester_name=names.get(r.requester, r.requester.removeprefix("user:")),
            requester_kind=r.requester_kind,
            requester_kind_zh=KIND_ZH.get(r.requester_kind, r.requester_kind),
            purpose=r.purpose, scope=scope, scope_labels=[lab.get(i, i) for i in scope],
            requested_at=r.requested_at, requested_until=r.requested_until, status=status,
            status_zh=STATUS_ZH.get(status, status),
            decided_by=r.decided_by,
            decided_by_name=names.get(r.decided_by, r.decided_by) if r.decided_by else None,
            decided_at=r.decided_at, reason=reason, refused_by_rules=by_rules,
            rule_code=code_of(r.decision_reason) if by_rules else None,
            granted_scope=granted,
            granted_labels=[lab.get(i, i) for i in granted] if granted is not None else None,
            granted_until=r.granted_until,
            revoked_by_name=names.get(r.revoked_by, r.revoked_by) if r.revoked_by else None,
            revoked_at=r.revoked_at, revoke_reason=r.revoke_reason,
            mine=r.requester == me, self_request=r.requester == me,
            may_decide=head and status == "pending" and r.requester != me,
            may_revoke=head and status == "approved",
        ))
    return out


async def request_view(ctx: Ctx, row: AccessRequest) -> RequestView:
    """One row -> its view (see :func:`request_views`)."""
    return (await request_views(ctx, [row]))[0]


async def visible_requests(ctx: Ctx, *, case_id: int | None = None, status: str | None = None,
                           mine_only: bool = False) -> list[AccessRequest]:
    """The requests the user may see: their own; every request for the agency head and the
    auditor. ``status`` filters on the stored status (``expired`` is computed)."""
    actor = ctx.require_actor()
    q = select(AccessRequest).order_by(AccessRequest.id.desc()).limit(RECENT_LIMIT)
    if mine_only or actor.role not in SEES_ALL_REQUESTS:
        q = q.where(AccessRequest.requester == actor.audit)
    if case_id is not None:
        q = q.where(AccessRequest.case_id == str(case_id))
    if status is not None:
        q = q.where(AccessRequest.status == ("approved" if status == "expired" else status))
    rows = list((await ctx.db.execute(q)).scalars())
    if status in ("approved", "expired"):
        now = utcnow()
        rows = [r for r in rows if access_service.status_now(r, now) == status]
    return rows


async def one_request(ctx: Ctx, request_id: int) -> AccessRequest:
    actor = ctx.require_actor()
    row = await ctx.db.get(AccessRequest, request_id)
    if row is None or (actor.role not in SEES_ALL_REQUESTS and row.requester != actor.audit):
        raise NotFound(f"查阅申请「{request_id}」不存在，或您无权查看。")
    return row


# -- what a requester sees of a case -------------------------------------------------------


@dataclass
class ItemState:
    item: Item
    allowed: bool  # may be seen now (approved grant, classification allows)
    reason: str  # why not, in Chinese
    requestable: bool  # the classification rules let this user ask for it
    marks: list[str]


async def case_access(ctx: Ctx, case: Case) -> dict[str, Any]:
    """The catalogue of a case with, per item, whether the user may see it now (decided by the
    rules without logging: nothing is shown here but the item's name)."""
    p = await actor_principal(ctx)
    cid = str(case.id)
    items = await catalogue(ctx.db, ctx.rb, case.id)
    marks = await access_service.markings(ctx.db, cid)
    grants = await access_service.grants(ctx.db, p.user, cid)
    now = utcnow()
    states = []
    for it in items:
        d = decide_access(p, cid, it.id, marks, grants, now)
        c = classification_allows(p, cid, it.id, marks)
        states.append(ItemState(it, d.allowed, "" if d else zh(d.reason), bool(c),
                                item_marks(marks, it.id)))
    whole = classification_allows(p, cid, WHOLE_CASE, marks)
    labels = labels_of(items)
    mine = await request_views(ctx, await visible_requests(ctx, case_id=case.id,
                                                           mine_only=True),
                               {case.id: labels})
    return {"case": case, "items": states, "labels": labels,
            "whole_requestable": bool(whole), "whole_reason": "" if whole else zh(whole.reason),
            "requests": mine, "max_days": MAX_GRANT_DAYS, "principal": p,
            "active_grants": [g for g in grants if not g.revoked and now < g.until]}


# -- operations (pages and API) ------------------------------------------------------------


def _err(field: str, message: str, label: str) -> FieldError:
    return FieldError(field, "invalid", message, label)


def validate_request(purpose: str, scope: Sequence[str], until: dt.datetime | None,
                     known: Iterable[str], now: dt.datetime) -> list[FieldError]:
    """Input errors before the rules decide (R2, in readable form)."""
    errors = []
    if not purpose.strip():
        errors.append(_err("purpose", "请填写查阅目的。", "查阅目的"))
    elif len(purpose) > 2000:
        errors.append(_err("purpose", "查阅目的最多 2000 字。", "查阅目的"))
    known = set(known) | {WHOLE_CASE}
    if not scope:
        errors.append(_err("scope", "请选择查阅范围：整个案件，或至少一项记录、音像记录或附件。",
                           "查阅范围"))
    elif any(i not in known for i in scope):
        errors.append(_err("scope", "查阅范围中有不属于本案的项目，请从列表中选择。", "查阅范围"))
    if until is None:
        errors.append(_err("until", "请填写查阅期限。", "查阅期限"))
    elif until <= now or until - now > dt.timedelta(days=MAX_GRANT_DAYS):
        errors.append(_err("until", f"查阅期限须在今后 {MAX_GRANT_DAYS} 日之内。", "查阅期限"))
    return errors


async def file_request(ctx: Ctx, case: Case, purpose: str, scope: Sequence[str],
                       until: dt.datetime | None) -> AccessRequest:
    """Validate and file a request (a request the rules refuse outright is stored as refused
    with the rule's reason, which the requester sees). Commits."""
    now = utcnow()
    scope = [WHOLE_CASE] if WHOLE_CASE in scope else list(dict.fromkeys(scope))
    items = await catalogue(ctx.db, ctx.rb, case.id)
    errors = validate_request(purpose, scope, until, (i.id for i in items), now)
    if errors:
        raise InvalidInput(errors[0].message, errors)
    assert until is not None
    row = await access_service.request_access(ctx.db, await actor_principal(ctx), str(case.id),
                                              purpose.strip(), scope, until, now=now)
    await ctx.db.commit()
    return row


async def _rule_refusal(ctx: Ctx, exc: access_service.AccessError, request_id: int) -> Denied:
    status = {"not_found": 404, "not_pending": 409, "not_approved": 409, "reason": 400,
              "scope": 400, "expiry": 400}.get(exc.code, 403)
    return await deny(ctx, status, f"{zh(exc.reason)}。", exc.code,
                      extra={"access_request": request_id})


async def decide(ctx: Ctx, request_id: int, decision: str, *, scope: Sequence[str] | None = None,
                 until: dt.datetime | None = None, reason: str = "") -> AccessRequest:
    """approve / refuse / revoke by the agency head through the service's rules; a refusal
    by the rules is answered with their reason and logged (access_denied). Commits."""
    p = await actor_principal(ctx)
    try:
        if decision == "approve":
            row = await ctx.db.get(AccessRequest, request_id)
            requester = await requester_principal(ctx.db, row.requester) if row else None
            if scope is not None:
                scope = [WHOLE_CASE] if WHOLE_CASE in scope else list(dict.fromkeys(scope))
            result = await access_service.approve(ctx.db, p, request_id, requester=requester,
                                                  scope=scope, until=until, reason=reason)
        elif decision == "refuse":
            result = await access_service.refuse(ctx.db, p, request_id, reason)
        elif decision == "revoke":
            if not reason.strip():
                raise access_service.AccessError("reason", "撤销须说明理由 / a reason is required")
            result = await access_service.revoke(ctx.db, p, request_id, reason.strip())
        else:
            raise InvalidInput("未知操作。")
    except access_service.AccessError as exc:
        raise await _rule_refusal(ctx, exc, request_id) from None
    await ctx.db.commit()
    return result


async def set_marking(ctx: Ctx, case: Case, item: str, classes: Iterable[str], owner: str
                      ) -> None:
    """Set (or, with no classes, clear) the marking of the case or one item. Adding or lifting
    国家秘密 needs 涉密资格 (an uncleared official could otherwise unmark what they may not
    see). Commits."""
    known = {i.id for i in await catalogue(ctx.db, ctx.rb, case.id)} | {WHOLE_CASE}
    if item not in known:
        raise InvalidInput("请选择本案的案件或其中的一项记录、音像记录或附件。")
    try:
        cls = sorted({Confidentiality(c) for c in classes})
    except ValueError:
        raise InvalidInput("密级只能是国家秘密、商业秘密或个人隐私。") from None
    owner = owner.strip()
    if len(owner) > 128:
        raise InvalidInput("权利人标识最多 128 个字符。")
    needs_owner = {Confidentiality.COMMERCIAL_SECRET, Confidentiality.PERSONAL_PRIVACY}
    if needs_owner & set(cls) and not owner:
        raise InvalidInput("商业秘密、个人隐私须填写权利人（其商业秘密或个人隐私的人员标识），"
                           "以便确定哪位当事人可以查阅本人的信息。")
    p = await actor_principal(ctx)
    marks = await access_service.markings(ctx.db, str(case.id))
    before = marks.get(item, Marking())
    touches_secret = Confidentiality.STATE_SECRET in before.classes or \
        Confidentiality.STATE_SECRET in cls
    if touches_secret and not p.cleared_state_secret:
        raise await deny(ctx, 403, "设定或取消「国家秘密」须具有涉密资格。", "state_secret_clearance",
                         extra={"item": item[:200], "case": str(case.id)})
    try:
        await access_service.mark_confidential(ctx.db, p, str(case.id), item, cls, owner)
    except access_service.AccessError as exc:
        raise await deny(ctx, 403, f"{zh(exc.reason)}。", exc.code) from None
    await ctx.db.commit()
