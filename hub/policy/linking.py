"""Automatic linking of recorded segments to case steps.

A segment links to a case step when

* the segment has an officer (an unassigned segment never links automatically: an
  administrator must link it by hand), and
* that officer is among the step's assignees, and
* the segment's time window ``[start, end]`` overlaps the step's window widened by
  ``tolerance`` on both sides ``[step.start - tolerance, step.end + tolerance]``; a step with
  no end is still open and extends indefinitely. Touching at a boundary counts as overlap.

Every candidate gets one :class:`LinkDecision` with a machine-readable :class:`LinkReason`
and a Chinese explanation for the administrator. Decisions are ordered by step start, then
case id, then step id, so the result does not depend on the order of the candidates.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ._time import require_aware
from .errors import PolicyInputError

DEFAULT_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class Segment:
    """One recorded segment as the linker sees it."""

    device_id: str
    officer_id: str | None  # None: nobody was bound to the recorder ("unassigned")
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        require_aware(self.start, "Segment.start")
        require_aware(self.end, "Segment.end")
        if self.end < self.start:
            raise PolicyInputError(f"segment ends before it starts: {self.start} > {self.end}")


@dataclass(frozen=True)
class CaseStep:
    """One step of a case (e.g. 现场检查) with its time window and assigned officers."""

    case_id: str
    step_id: str
    start: datetime
    end: datetime | None  # None: the step is still open
    assignees: frozenset[str]

    def __post_init__(self) -> None:
        require_aware(self.start, "CaseStep.start")
        if self.end is not None:
            require_aware(self.end, "CaseStep.end")
            if self.end < self.start:
                raise PolicyInputError(f"step ends before it starts: {self.start} > {self.end}")


class LinkReason(enum.StrEnum):
    LINKED = "linked"
    UNASSIGNED = "unassigned"
    NOT_ASSIGNEE = "not_assignee"
    NO_OVERLAP = "no_overlap"


_REASON_ZH = {
    LinkReason.LINKED: "执法人员为该环节承办人，且录制时间与环节时间重叠，已自动关联",
    LinkReason.UNASSIGNED: "该记录未绑定执法人员，不自动关联，请管理员人工关联",
    LinkReason.NOT_ASSIGNEE: "录制该记录的执法人员不是该环节的承办人",
    LinkReason.NO_OVERLAP: "录制时间与该环节的时间不重叠（已计入容差）",
}


@dataclass(frozen=True)
class LinkDecision:
    """Whether ``step`` is linked to the segment, and why."""

    step: CaseStep
    linked: bool
    code: LinkReason
    reason: str  # Chinese, for the administrator


def decide_links(
    segment: Segment,
    steps: Iterable[CaseStep],
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> tuple[LinkDecision, ...]:
    """One decision per candidate step, in deterministic order."""
    if tolerance < timedelta(0):
        raise PolicyInputError(f"tolerance must not be negative, got {tolerance}")
    ordered = sorted(steps, key=lambda s: (s.start, s.case_id, s.step_id))
    return tuple(_decide(segment, step, tolerance) for step in ordered)


def link_segment(
    segment: Segment,
    steps: Iterable[CaseStep],
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> tuple[CaseStep, ...]:
    """The steps the segment links to automatically, in deterministic order."""
    return tuple(d.step for d in decide_links(segment, steps, tolerance) if d.linked)


def _decide(segment: Segment, step: CaseStep, tolerance: timedelta) -> LinkDecision:
    if segment.officer_id is None:
        code = LinkReason.UNASSIGNED
    elif segment.officer_id not in step.assignees:
        code = LinkReason.NOT_ASSIGNEE
    elif not _overlaps(segment, step, tolerance):
        code = LinkReason.NO_OVERLAP
    else:
        code = LinkReason.LINKED
    return LinkDecision(step, code is LinkReason.LINKED, code, _REASON_ZH[code])


def _overlaps(segment: Segment, step: CaseStep, tolerance: timedelta) -> bool:
    if segment.end < step.start - tolerance:
        return False
    return step.end is None or segment.start <= step.end + tolerance
