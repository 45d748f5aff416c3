"""Retention of recorded segments: when a segment may be deleted.

Rules, checked in this order (the first that applies decides):

1. A segment linked to any case is **kept**, always. This is not configurable: case evidence
   belongs to the case file (第二十八条).
2. A segment flagged important, or under an access hold (an open 查阅 request, 第二十九条,
   or a dispute), is **kept** (each configurable, on by default).
3. An unlinked segment is kept for ``keep_unlinked_for`` counted from the latest of: recording
   end, arrival at the hub, and the last time it was unlinked from a case — so a late upload or
   a removed link never shortens the period. The default is 184 days, the longest that six
   calendar months can be (1 July → 1 January), so "at least six months" holds for every
   start date without calendar-month arithmetic across time zones.
4. After that the segment is **eligible**: it may be deleted but is not yet.
5. It becomes **delete** once at least ``required_approvals`` (≥ 2) *distinct* people have
   approved deleting this segment. An approval counts only if it is for this segment, was
   given at or after the segment became eligible (no approving in advance) and not after
   ``now``, and comes from a person: system principals never count, and by default neither
   does the officer who recorded the segment. The person who asked for the deletion may be
   one of the approvers — the four-eyes rule is two different people, not three.

Each decision carries a Chinese reason for the administrator and an English one for logs.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ._time import local_text, require_aware
from .errors import PolicyInputError


@dataclass(frozen=True)
class RetentionPolicy:
    keep_unlinked_for: timedelta = timedelta(days=184)
    required_approvals: int = 2
    system_principals: frozenset[str] = frozenset({"system"})
    protect_important: bool = True
    protect_access_hold: bool = True
    officer_may_approve: bool = False

    def __post_init__(self) -> None:
        if self.required_approvals < 2:
            raise PolicyInputError("deletion needs at least two distinct approvers")
        if self.keep_unlinked_for < timedelta(0):
            raise PolicyInputError("keep_unlinked_for must not be negative")


@dataclass(frozen=True)
class SegmentFacts:
    segment_id: str
    ended_at: datetime
    arrived_at: datetime | None = None
    unlinked_at: datetime | None = None  # last time a link to a case was removed
    linked_case_ids: frozenset[str] = frozenset()
    officer_id: str | None = None
    important: bool = False
    access_hold: bool = False

    def __post_init__(self) -> None:
        for name in ("ended_at", "arrived_at", "unlinked_at"):
            value = getattr(self, name)
            if value is not None:
                require_aware(value, f"SegmentFacts.{name}")


@dataclass(frozen=True)
class Approval:
    segment_id: str
    approver_id: str
    approved_at: datetime

    def __post_init__(self) -> None:
        require_aware(self.approved_at, "Approval.approved_at")


class RetentionAction(enum.StrEnum):
    KEEP = "keep"
    ELIGIBLE = "eligible"
    DELETE = "delete"


@dataclass(frozen=True)
class RetentionDecision:
    action: RetentionAction
    reason_zh: str
    reason_en: str
    eligible_from: datetime | None = None
    approvers: frozenset[str] = field(default_factory=frozenset)


def eligible_from(facts: SegmentFacts, policy: RetentionPolicy) -> datetime:
    """When the retention period of an unlinked segment ends."""
    anchors = [t for t in (facts.ended_at, facts.arrived_at, facts.unlinked_at) if t is not None]
    return max(anchors) + policy.keep_unlinked_for


def decide(
    facts: SegmentFacts,
    approvals: Iterable[Approval],
    now: datetime,
    policy: RetentionPolicy = RetentionPolicy(),
) -> RetentionDecision:
    """Keep, eligible for deletion, or delete now; see the module docstring."""
    require_aware(now, "now")
    if facts.linked_case_ids:
        cases = "、".join(sorted(facts.linked_case_ids))
        return RetentionDecision(
            RetentionAction.KEEP,
            f"该记录已关联案件（{cases}），作为案卷证据不得删除",
            f"linked to case(s) {', '.join(sorted(facts.linked_case_ids))}; never deleted",
        )
    if policy.protect_important and facts.important:
        return RetentionDecision(
            RetentionAction.KEEP,
            "该记录已标记为重要，不得删除；如需删除请先取消标记",
            "flagged important; clear the flag before deletion",
        )
    if policy.protect_access_hold and facts.access_hold:
        return RetentionDecision(
            RetentionAction.KEEP,
            "该记录处于查阅保全状态，保全解除前不得删除",
            "under an access hold; not deletable until the hold is released",
        )
    due = eligible_from(facts, policy)
    if now < due:
        return RetentionDecision(
            RetentionAction.KEEP,
            f"未关联案件的记录须保存至 {local_text(due)}，期满前不得删除",
            f"unlinked; retention period runs until {due.isoformat()}",
            eligible_from=due,
        )
    approvers = _valid_approvers(facts, approvals, due, now, policy)
    needed = policy.required_approvals
    if len(approvers) >= needed:
        names = "、".join(sorted(approvers))
        return RetentionDecision(
            RetentionAction.DELETE,
            f"保存期已满，已经 {names} 共{len(approvers)}名不同人员审批同意，可以删除",
            f"retention over; approved by {len(approvers)} distinct people: "
            f"{', '.join(sorted(approvers))}",
            eligible_from=due,
            approvers=approvers,
        )
    return RetentionDecision(
        RetentionAction.ELIGIBLE,
        f"保存期已满，可申请删除；删除需{needed}名不同人员审批，目前有效审批{len(approvers)}人",
        f"retention over; deletion needs {needed} distinct approvers, has {len(approvers)}",
        eligible_from=due,
        approvers=approvers,
    )


def _valid_approvers(
    facts: SegmentFacts,
    approvals: Iterable[Approval],
    due: datetime,
    now: datetime,
    policy: RetentionPolicy,
) -> frozenset[str]:
    valid: set[str] = set()
    for approval in approvals:
        who = approval.approver_id.strip()
        if (
            approval.segment_id != facts.segment_id
            or not who
            or who in policy.system_principals
            or (not policy.officer_may_approve and who == facts.officer_id)
            or not due <= approval.approved_at <= now
        ):
            continue
        valid.add(who)
    return frozenset(valid)
