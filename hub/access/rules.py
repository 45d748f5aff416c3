"""Who may ask for, approve and see what (第二十九条) — pure decisions, no IO.

第二十九条: "当事人依法申请查阅行政执法记录的，经行政机关负责人同意后方可查阅。涉及国家秘密、
商业秘密和个人隐私以及其他依法应当保密的执法信息，应当依法进行管理。"

The rules lerec applies (each row of the test table in tests/hub/access cites one):

R1  Only a party to the case (当事人) or an official (执法人员, archivist, agency head) may
    request access; anyone else is refused.
R2  A request names a purpose, a scope (items of the case, or ``*`` for all) and an expiry no
    later than ``MAX_GRANT_DAYS`` from now.
R3  国家秘密 (state secret): never for a party; for an official only with state-secret
    clearance (涉密人员); an approver of such a request must be cleared too.
R4  商业秘密 (commercial secret) and 个人隐私 (personal privacy): a party only if the secret or the
    privacy is their own (the marking's owner is among the persons they are or represent);
    officials may request them, with approval.
R5  Only the agency head (行政机关负责人, role ``agency_head``) approves or refuses, never their
    own request; a refusal carries a reason; a grant may narrow the scope and the expiry,
    never widen them.
R6  A grant allows an item only while it is approved, not revoked, not expired, and the item is
    in its scope; classification is checked again at every view (a marking added after the
    approval still protects the item).
R7  The agency head, whose consent the article requires, sees the case's records without a
    request (still subject to R3 and still logged).

Markings apply to a whole case (item ``*``) or to one item; an item's effective marking is
the union of both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

MAX_GRANT_DAYS = 30
WHOLE_CASE = "*"


class Confidentiality(StrEnum):
    STATE_SECRET = "state_secret"  # 国家秘密
    COMMERCIAL_SECRET = "commercial_secret"  # 商业秘密
    PERSONAL_PRIVACY = "personal_privacy"  # 个人隐私


LABELS_ZH = {
    Confidentiality.STATE_SECRET: "国家秘密",
    Confidentiality.COMMERCIAL_SECRET: "商业秘密",
    Confidentiality.PERSONAL_PRIVACY: "个人隐私",
}


class Role(StrEnum):
    AGENCY_HEAD = "agency_head"  # 行政机关负责人
    OFFICIAL = "official"  # 执法人员
    ARCHIVIST = "archivist"  # 党政办 档案管理
    PARTY = "party"  # 当事人 (a user account of a party)


OFFICIAL_ROLES = frozenset({Role.AGENCY_HEAD, Role.OFFICIAL, Role.ARCHIVIST})


@dataclass(frozen=True)
class Principal:
    """A person acting: their user id, roles and what they are cleared for or party to."""

    user: str
    roles: frozenset[str] = frozenset()
    cleared_state_secret: bool = False
    party_of: frozenset[str] = frozenset()  # case ids in which they are 当事人
    persons: frozenset[str] = frozenset()  # owner ids they are or represent

    @property
    def is_official(self) -> bool:
        return bool(self.roles & OFFICIAL_ROLES)

    @property
    def is_head(self) -> bool:
        return Role.AGENCY_HEAD in self.roles


@dataclass(frozen=True)
class Marking:
    classes: frozenset[Confidentiality] = frozenset()
    owner: str = ""  # whose commercial secret or privacy


@dataclass(frozen=True)
class Grant:
    request_id: int
    user: str
    case_id: str
    scope: frozenset[str]
    until: dt.datetime
    revoked: bool = False


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str  # machine-readable: ok, not_party, state_secret, ... (see the rules)
    reason: str  # for people, Chinese / English
    grant: int | None = None  # request id of the grant used
    items: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return self.allowed


def _ok(reason: str = "允许 allowed", grant: int | None = None) -> Decision:
    return Decision(True, "ok", reason, grant)


def _no(code: str, reason: str, items: Iterable[str] = ()) -> Decision:
    return Decision(False, code, reason, items=tuple(items))


def effective(markings: Mapping[str, Marking], item: str) -> list[Marking]:
    """The case-wide marking and the item's own (for ``*``: every marking of the case)."""
    if item == WHOLE_CASE:
        return list(markings.values())
    return [m for key, m in markings.items() if key in (WHOLE_CASE, item)]


def classification_allows(p: Principal, case_id: str, item: str,
                          markings: Mapping[str, Marking]) -> Decision:
    """R3 and R4 for one item."""
    is_party = case_id in p.party_of
    for m in effective(markings, item):
        if Confidentiality.STATE_SECRET in m.classes:
            if not p.is_official:
                return _no("state_secret", "涉及国家秘密，当事人不得查阅 / state secret: not "
                           "open to parties", [item])
            if not p.cleared_state_secret:
                return _no("state_secret_clearance", "涉及国家秘密，需涉密资格 / state secret: "
                           "clearance required", [item])
        for cls in (Confidentiality.COMMERCIAL_SECRET, Confidentiality.PERSONAL_PRIVACY):
            if cls in m.classes and not p.is_official and (not is_party or m.owner not in
                                                            p.persons):
                return _no(cls.value, f"涉及他人{LABELS_ZH[cls]} / another person's "
                           f"{cls.value.replace('_', ' ')}", [item])
    return _ok()


def decide_request(p: Principal, case_id: str, scope: Iterable[str], purpose: str,
                   until: dt.datetime, now: dt.datetime,
                   markings: Mapping[str, Marking]) -> Decision:
    """May ``p`` submit this request (to be approved by the agency head)? R1–R4."""
    scope = list(scope)
    if case_id not in p.party_of and not p.is_official:
        return _no("not_party", "仅当事人或执法人员可申请查阅 / only parties to the case or "
                   "officials may request access")
    if not purpose.strip():
        return _no("purpose", "须说明查阅目的 / a purpose is required")
    if not scope:
        return _no("scope", "须说明查阅范围 / a scope is required")
    if until <= now or until - now > dt.timedelta(days=MAX_GRANT_DAYS):
        return _no("expiry", f"期限须在 {MAX_GRANT_DAYS} 日内 / expiry must be within "
                   f"{MAX_GRANT_DAYS} days from now")
    for item in scope:
        d = classification_allows(p, case_id, item, markings)
        if not d:
            return d
    return _ok("待负责人审批 / awaiting the agency head's approval")


def decide_approval(approver: Principal, requester: Principal, case_id: str,
                    requested_scope: Iterable[str], granted_scope: Iterable[str],
                    requested_until: dt.datetime, granted_until: dt.datetime,
                    now: dt.datetime, markings: Mapping[str, Marking]) -> Decision:
    """May ``approver`` grant this (R5), and does the request still pass R1–R4?"""
    requested, granted = set(requested_scope), set(granted_scope)
    if not approver.is_head:
        return _no("not_agency_head", "须经行政机关负责人同意 / only the agency head approves")
    if approver.user == requester.user:
        return _no("self_approval", "不得审批本人的申请 / no one approves their own request")
    if not granted or (WHOLE_CASE not in requested and not granted <= requested):
        return _no("scope", "批准范围不得超出申请范围 / the grant may not exceed the request")
    if granted_until > requested_until or granted_until <= now:
        return _no("expiry", "批准期限不得超出申请期限 / the grant may not outlast the request")
    for item in granted:
        for m in effective(markings, item):
            if Confidentiality.STATE_SECRET in m.classes and not approver.cleared_state_secret:
                return _no("state_secret_clearance", "审批涉密申请需涉密资格 / approving a "
                           "state-secret request needs clearance", [item])
    return decide_request(requester, case_id, granted, "approval", granted_until, now, markings)


def decide_access(p: Principal, case_id: str, item: str, markings: Mapping[str, Marking],
                  grants: Iterable[Grant], now: dt.datetime) -> Decision:
    """May ``p`` see (view, download, export) ``item`` of ``case_id`` now? R3, R4, R6, R7."""
    cls = classification_allows(p, case_id, item, markings)
    if not cls:
        return cls
    if p.is_head:
        return _ok("行政机关负责人 / agency head")
    refusals: list[Decision] = []
    for g in sorted(grants, key=lambda g: -g.request_id):  # the latest request speaks first
        if g.user != p.user or g.case_id != case_id:
            continue
        if g.revoked:
            refusals.append(_no("revoked", "授权已撤销 / the grant was revoked"))
        elif now >= g.until:
            refusals.append(_no("expired", "授权已过期 / the grant has expired"))
        elif WHOLE_CASE not in g.scope and (item == WHOLE_CASE or item not in g.scope):
            refusals.append(_no("out_of_scope", "不在批准范围内 / not within the approved scope"))
        else:
            return _ok(f"经批准 / approved (request {g.request_id})", g.request_id)
    if refusals:
        return refusals[0]
    return _no("no_grant", "未经负责人同意 / no approved request")
