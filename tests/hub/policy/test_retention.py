"""Retention decisions: linked never deleted, protected flags, period, two distinct approvers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from lerec.hub.policy import (
    Approval,
    PolicyInputError,
    RetentionAction,
    RetentionPolicy,
    SegmentFacts,
    decide,
)

ENDED = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
POLICY = RetentionPolicy()
DUE = ENDED + timedelta(days=184)
LATER = DUE + timedelta(days=3)
FACTS = SegmentFacts("seg-1", ENDED, arrived_at=ENDED, officer_id="wang")


def ok(who: str, at: datetime = DUE + timedelta(days=1), segment: str = "seg-1") -> Approval:
    return Approval(segment, who, at)


@pytest.mark.parametrize(
    ("facts", "approvals", "now", "action"),
    [
        (FACTS, [], DUE - timedelta(seconds=1), RetentionAction.KEEP),
        (FACTS, [], DUE, RetentionAction.ELIGIBLE),
        (FACTS, [ok("zhang")], LATER, RetentionAction.ELIGIBLE),
        (FACTS, [ok("zhang"), ok("li")], LATER, RetentionAction.DELETE),
        # The same person approving twice is still one approver.
        (FACTS, [ok("zhang"), ok("zhang"), ok(" zhang ")], LATER, RetentionAction.ELIGIBLE),
        # The system never counts.
        (FACTS, [ok("zhang"), ok("system")], LATER, RetentionAction.ELIGIBLE),
        # Nor does the officer who recorded the segment.
        (FACTS, [ok("zhang"), ok("wang")], LATER, RetentionAction.ELIGIBLE),
        # Approvals for another segment, given in advance, or in the future do not count.
        (FACTS, [ok("zhang"), ok("li", segment="seg-2")], LATER, RetentionAction.ELIGIBLE),
        (
            FACTS,
            [ok("zhang"), ok("li", at=DUE - timedelta(days=1))],
            LATER,
            RetentionAction.ELIGIBLE,
        ),
        (
            FACTS,
            [ok("zhang"), ok("li", at=LATER + timedelta(days=1))],
            LATER,
            RetentionAction.ELIGIBLE,
        ),
        (FACTS, [ok("zhang"), ok("")], LATER, RetentionAction.ELIGIBLE),
        # Linked segments are never deleted, whatever the approvals.
        (
            replace(FACTS, linked_case_ids=frozenset({"2024-017"})),
            [ok("zhang"), ok("li")],
            LATER + timedelta(days=3650),
            RetentionAction.KEEP,
        ),
        (replace(FACTS, important=True), [ok("zhang"), ok("li")], LATER, RetentionAction.KEEP),
        (replace(FACTS, access_hold=True), [ok("zhang"), ok("li")], LATER, RetentionAction.KEEP),
    ],
)
def test_decide(
    facts: SegmentFacts, approvals: list[Approval], now: datetime, action: RetentionAction
) -> None:
    decision = decide(facts, approvals, now, POLICY)
    assert decision.action is action
    assert decision.reason_zh and decision.reason_en


def test_delete_names_the_approvers() -> None:
    decision = decide(FACTS, [ok("zhang"), ok("li"), ok("li")], LATER)
    assert decision.action == "delete"
    assert decision.approvers == {"zhang", "li"}
    assert "li、zhang" in decision.reason_zh


def test_linked_reason_names_the_case() -> None:
    decision = decide(replace(FACTS, linked_case_ids=frozenset({"2024-017"})), [], LATER)
    assert "2024-017" in decision.reason_zh and "2024-017" in decision.reason_en


def test_period_counts_from_the_latest_anchor() -> None:
    late = replace(FACTS, arrived_at=ENDED + timedelta(days=5))
    assert decide(late, [], DUE + timedelta(days=4)).action is RetentionAction.KEEP
    assert decide(late, [], DUE + timedelta(days=5)).action is RetentionAction.ELIGIBLE
    unlinked = replace(FACTS, unlinked_at=ENDED + timedelta(days=100))
    assert decide(unlinked, [], DUE).eligible_from == DUE + timedelta(days=100)


def test_six_calendar_months_always_fit_in_the_default() -> None:
    # 1 July -> 1 January is the longest six-month span: 184 days.
    july = datetime(2024, 7, 1, tzinfo=UTC)
    assert (
        decide(
            replace(FACTS, ended_at=july, arrived_at=None),
            [],
            datetime(2024, 12, 31, 23, 59, tzinfo=UTC),
        ).action
        is RetentionAction.KEEP
    )


def test_policy_is_configurable() -> None:
    lax = RetentionPolicy(
        keep_unlinked_for=timedelta(days=30),
        protect_important=False,
        protect_access_hold=False,
        officer_may_approve=True,
        required_approvals=3,
    )
    facts = replace(FACTS, important=True, access_hold=True)
    now = ENDED + timedelta(days=40)
    approvals = [ok(w, at=ENDED + timedelta(days=35)) for w in ("wang", "zhang", "li")]
    assert decide(facts, approvals[:2], now, lax).action is RetentionAction.ELIGIBLE
    assert decide(facts, approvals, now, lax).action is RetentionAction.DELETE


def test_fewer_than_two_approvers_cannot_be_configured() -> None:
    with pytest.raises(PolicyInputError):
        RetentionPolicy(required_approvals=1)


def test_naive_now_is_rejected() -> None:
    with pytest.raises(PolicyInputError):
        decide(FACTS, [], datetime(2025, 1, 1))
