"""Linking segments to case steps: officer must be an assignee, windows must overlap."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from lerec.hub.policy import (
    CaseStep,
    LinkReason,
    PolicyInputError,
    Segment,
    decide_links,
    link_segment,
)

SH = ZoneInfo("Asia/Shanghai")
M = timedelta(minutes=1)
T0 = datetime(2024, 10, 9, 9, 0, tzinfo=SH)


def seg(start_min: int, end_min: int, officer: str | None = "wang") -> Segment:
    return Segment("dev-01", officer, T0 + start_min * M, T0 + end_min * M)


def step(
    step_id: str, start_min: int, end_min: int | None, *assignees: str, case_id: str = "2024-017"
) -> CaseStep:
    end = None if end_min is None else T0 + end_min * M
    return CaseStep(case_id, step_id, T0 + start_min * M, end, frozenset(assignees))


INSPECTION = step("inspection", 0, 60, "wang", "li")


@pytest.mark.parametrize(
    ("segment", "candidate", "code"),
    [
        (seg(10, 20), INSPECTION, LinkReason.LINKED),  # inside
        (seg(-30, 5), INSPECTION, LinkReason.LINKED),  # overlaps the start
        (seg(-30, -5), INSPECTION, LinkReason.LINKED),  # ends exactly at start - tolerance
        (seg(-30, -6), INSPECTION, LinkReason.NO_OVERLAP),  # one minute too early
        (seg(65, 90), INSPECTION, LinkReason.LINKED),  # starts exactly at end + tolerance
        (seg(66, 90), INSPECTION, LinkReason.NO_OVERLAP),  # one minute too late
        (seg(-10, 120), INSPECTION, LinkReason.LINKED),  # covers the whole step
        (seg(10, 20, "zhao"), INSPECTION, LinkReason.NOT_ASSIGNEE),
        (seg(10, 20, None), INSPECTION, LinkReason.UNASSIGNED),
        (seg(600, 700), step("service", 0, None, "wang"), LinkReason.LINKED),  # open step
        (seg(-30, -6), step("service", 0, None, "wang"), LinkReason.NO_OVERLAP),
    ],
)
def test_decisions(segment: Segment, candidate: CaseStep, code: LinkReason) -> None:
    (decision,) = decide_links(segment, [candidate])
    assert decision.code is code
    assert decision.linked is (code is LinkReason.LINKED)
    assert decision.step == candidate
    assert decision.reason  # Chinese explanation for the administrator


def test_tolerance_is_configurable() -> None:
    assert link_segment(seg(-30, -6), [INSPECTION], tolerance=10 * M) == (INSPECTION,)
    assert link_segment(seg(-30, -1), [INSPECTION], tolerance=timedelta(0)) == ()
    assert link_segment(seg(-30, 0), [INSPECTION], tolerance=timedelta(0)) == (INSPECTION,)
    with pytest.raises(PolicyInputError):
        link_segment(seg(0, 1), [INSPECTION], tolerance=-M)


def test_unassigned_segment_links_to_nothing() -> None:
    steps = [INSPECTION, step("inquiry", 0, 30, "wang")]
    assert link_segment(seg(10, 20, None), steps) == ()
    assert all(d.code is LinkReason.UNASSIGNED for d in decide_links(seg(10, 20, None), steps))
    assert "人工关联" in decide_links(seg(10, 20, None), steps)[0].reason


def test_several_cases_and_deterministic_order() -> None:
    steps = [
        step("inquiry", 20, 40, "wang", case_id="2024-018"),
        step("inspection", 0, 60, "wang"),
        step("seizure", 20, 50, "wang", case_id="2024-016"),
        step("other", 0, 60, "li", case_id="2024-001"),
        step("later", 200, 260, "wang"),
    ]
    expected = (
        ("2024-017", "inspection"),
        ("2024-016", "seizure"),
        ("2024-018", "inquiry"),
    )
    for _ in range(10):
        random.shuffle(steps)
        linked = link_segment(seg(25, 35), steps)
        assert tuple((s.case_id, s.step_id) for s in linked) == expected
        decisions = decide_links(seg(25, 35), steps)
        assert [d.step.step_id for d in decisions] == [
            "other",
            "inspection",
            "seizure",
            "inquiry",
            "later",
        ]


def test_invalid_windows_and_naive_times_are_rejected() -> None:
    with pytest.raises(PolicyInputError):
        seg(10, 5)
    with pytest.raises(PolicyInputError):
        step("x", 10, 5, "wang")
    with pytest.raises(PolicyInputError):
        Segment("dev-01", "wang", datetime(2024, 1, 1), datetime(2024, 1, 1, 1))
