"""Access requests and their approval (第二十九条): the async API the admin UI calls.

Every function takes the caller's session and runs in the caller's transaction, so the
change and its audit entry commit together. Decisions come from :mod:`.rules` (pure).

    req = await request_access(s, party, "C-17", "复议准备", ["segment:rec-a-000001"], until)
    await approve(s, head, req.id)                 # or refuse(s, head, req.id, "理由")
    d = await check_access(s, party, "C-17", "segment:rec-a-000001", action="view")
    if d: ...serve it...                            # the view is already in the audit log
    await revoke(s, head, req.id, "案件复查")
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select

from ..audit.entries import EventType
from ..audit.log import record_event
from ..db.trust_models import AccessRequest, ConfidentialityMark
from ..db.types import utcnow
from ..errors import HubError
from .rules import (
    Confidentiality,
    Decision,
    Grant,
    Marking,
    Principal,
    decide_access,
    decide_approval,
    decide_request,
)

PENDING, APPROVED, REFUSED, REVOKED = "pending", "approved", "refused", "revoked"
_ACTIONS = {"view": EventType.VIEW, "download": EventType.DOWNLOAD, "export": EventType.EXPORT}


class AccessError(HubError, PermissionError):
    """An access operation is not allowed; ``code`` is the rule's code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _raise(d: Decision) -> None:
    if not d:
        raise AccessError(d.code, d.reason)


async def markings(session: Any, case_id: str) -> dict[str, Marking]:
    rows = (await session.execute(
        select(ConfidentialityMark).where(ConfidentialityMark.case_id == case_id))).scalars()
    return {r.item: Marking(frozenset(Confidentiality(c) for c in r.classes.split()), r.owner)
            for r in rows}


async def mark_confidential(session: Any, by: Principal, case_id: str, item: str,
                            classes: Iterable[Confidentiality | str], owner: str = "") -> None:
    """Set the confidentiality classes of a case (``item="*"``) or of one item (empty: clear)."""
    if not by.is_official:
        raise AccessError("not_official", "仅执法人员可设定密级 / only officials set markings")
    cls = sorted({Confidentiality(c).value for c in classes})
    row = await session.get(ConfidentialityMark, (case_id, item))
    if row is None:
        row = ConfidentialityMark(case_id=case_id, item=item, classes="", owner="",
                                  marked_by=by.user)
        session.add(row)
    row.classes, row.owner, row.marked_by, row.marked_at = " ".join(cls), owner, by.user, utcnow()
    await record_event(session, EventType.RECORD_CHANGED, by.user, [f"case:{case_id}"],
                       {"confidentiality": cls, "item": item, "owner": owner})
    await session.flush()


async def request_access(session: Any, requester: Principal, case_id: str, purpose: str,
                         scope: Sequence[str], until: dt.datetime, *,
                         now: dt.datetime | None = None) -> AccessRequest:
    """File a request. One the rules forbid outright is stored as ``refused`` with the rule's
    reason (and logged), so the requester can see why; otherwise it waits for approval."""
    now = now or utcnow()
    d = decide_request(requester, case_id, scope, purpose, until, now,
                       await markings(session, case_id))
    row = AccessRequest(
        case_id=case_id, requester=requester.user,
        requester_kind="party" if case_id in requester.party_of else "official",
        purpose=purpose, scope=json.dumps(list(scope), ensure_ascii=False),
        requested_until=until, requested_at=now, status=PENDING if d else REFUSED,
        decided_by=None if d else "rules", decided_at=None if d else now,
        decision_reason=None if d else f"[{d.code}] {d.reason}",
    )
    session.add(row)
    await session.flush()
    await record_event(session, EventType.ACCESS_REQUEST, requester.user,
                       [f"case:{case_id}", f"access:{row.id}"],
                       {"purpose": purpose, "scope": list(scope), "until": until.isoformat(),
                        "status": row.status, "code": d.code}, at=now)
    return row


async def _pending(session: Any, request_id: int) -> AccessRequest:
    row = await session.get(AccessRequest, request_id)
    if row is None:
        raise AccessError("not_found", f"no access request {request_id}")
    if row.status != PENDING:
        raise AccessError("not_pending", f"request {request_id} is {row.status}, not pending")
    return row


def requester_of(row: AccessRequest, requester: Principal | None) -> Principal:
    if requester is not None:
        if requester.user != row.requester:
            raise ValueError("requester does not match the request")
        return requester
    return Principal(row.requester, frozenset({"official"}) if row.requester_kind == "official"
                     else frozenset(), party_of=frozenset({row.case_id})
                     if row.requester_kind == "party" else frozenset())


async def approve(session: Any, approver: Principal, request_id: int, *,
                  requester: Principal | None = None, scope: Sequence[str] | None = None,
                  until: dt.datetime | None = None, reason: str = "",
                  now: dt.datetime | None = None) -> AccessRequest:
    """The agency head approves, possibly narrowing scope and expiry. Pass ``requester``
    (their current roles, clearance and persons) so the classification rules see them."""
    now = now or utcnow()
    row = await _pending(session, request_id)
    requested = json.loads(row.scope)
    granted = list(scope) if scope is not None else requested
    granted_until = until or row.requested_until
    _raise(decide_approval(approver, requester_of(row, requester), row.case_id, requested,
                           granted, row.requested_until, granted_until, now,
                           await markings(session, row.case_id)))
    row.status, row.decided_by, row.decided_at = APPROVED, approver.user, now
    row.decision_reason, row.granted_scope = reason, json.dumps(granted, ensure_ascii=False)
    row.granted_until = granted_until
    await record_event(session, EventType.APPROVAL, approver.user,
                       [f"case:{row.case_id}", f"access:{row.id}", row.requester],
                       {"decision": "approved", "scope": granted,
                        "until": granted_until.isoformat(), "reason": reason}, at=now)
    await session.flush()
    return row


async def refuse(session: Any, approver: Principal, request_id: int, reason: str, *,
                 now: dt.datetime | None = None) -> AccessRequest:
    """The agency head refuses, with a reason."""
    now = now or utcnow()
    if not approver.is_head:
        raise AccessError("not_agency_head", "须经行政机关负责人决定 / only the agency head decides")
    if not reason.strip():
        raise AccessError("reason", "不予同意须说明理由 / a refusal needs a reason")
    row = await _pending(session, request_id)
    row.status, row.decided_by, row.decided_at, row.decision_reason = (
        REFUSED, approver.user, now, reason)
    await record_event(session, EventType.APPROVAL, approver.user,
                       [f"case:{row.case_id}", f"access:{row.id}"],
                       {"decision": "refused", "reason": reason}, at=now)
    await session.flush()
    return row


async def revoke(session: Any, by: Principal, request_id: int, reason: str, *,
                 now: dt.datetime | None = None) -> AccessRequest:
    """End an approved grant early (the agency head, or the requester giving it up)."""
    now = now or utcnow()
    row = await session.get(AccessRequest, request_id)
    if row is None or row.status != APPROVED:
        raise AccessError("not_approved", f"request {request_id} is not an approved grant")
    if not by.is_head and by.user != row.requester:
        raise AccessError("not_agency_head", "仅负责人或申请人本人可撤销 / only the agency head "
                          "or the requester may revoke")
    row.status, row.revoked_by, row.revoked_at, row.revoke_reason = REVOKED, by.user, now, reason
    await record_event(session, EventType.ACCESS_REVOKED, by.user,
                       [f"case:{row.case_id}", f"access:{row.id}"], {"reason": reason}, at=now)
    await session.flush()
    return row


async def grants(session: Any, user: str, case_id: str) -> list[Grant]:
    rows = (await session.execute(select(AccessRequest).where(
        AccessRequest.requester == user, AccessRequest.case_id == case_id,
        AccessRequest.status.in_([APPROVED, REVOKED])).order_by(AccessRequest.id))).scalars()
    return [Grant(r.id, r.requester, r.case_id, frozenset(json.loads(r.granted_scope or "[]")),
                  r.granted_until or r.requested_until, r.status == REVOKED) for r in rows]


async def check_access(session: Any, user: Principal, case_id: str, item: str,
                       now: dt.datetime | None = None, *, action: str = "view",
                       log: bool = True) -> Decision:
    """Decide whether ``user`` may ``action`` (view, download, export) ``item`` now, and log
    the attempt — allowed or not — in the audit log (in the caller's transaction)."""
    now = now or utcnow()
    d = decide_access(user, case_id, item, await markings(session, case_id),
                      await grants(session, user.user, case_id), now)
    if log:
        subjects = [f"case:{case_id}"] + ([item] if item != "*" and " " not in item else [])
        if d.grant is not None:
            subjects.append(f"access:{d.grant}")
        await record_event(session, _ACTIONS[action], user.user, subjects,
                           {"item": item, "allowed": d.allowed, "code": d.code}, at=now)
    return d


def status_now(row: AccessRequest, now: dt.datetime | None = None) -> str:
    """``expired`` for an approved grant past its expiry; otherwise the stored status."""
    now = now or utcnow()
    if row.status == APPROVED and row.granted_until is not None and now >= row.granted_until:
        return "expired"
    return row.status


async def list_requests(session: Any, *, case_id: str | None = None,
                        status: str | None = None) -> list[AccessRequest]:
    q = select(AccessRequest).order_by(AccessRequest.id)
    if case_id is not None:
        q = q.where(AccessRequest.case_id == case_id)
    if status is not None:
        q = q.where(AccessRequest.status == status)
    return list((await session.execute(q)).scalars())
