"""Pure policy decisions of the hub: working days and deadlines, clip-to-case linking,
retention and completeness. No database, no network; the only IO is reading the
administrator's working-day override table (:func:`load_override_table`)."""

from .deadlines import UploadStatus, archive_deadline, classify, upload_deadline
from .errors import CalendarConfigError, CalendarNotCovered, PolicyError, PolicyInputError
from .gaps import ArrivedManifest, Gap, GapKind, find_gaps
from .linking import CaseStep, LinkDecision, LinkReason, Segment, decide_links, link_segment
from .overrides import OverrideTable, load_override_table, parse_override_table
from .retention import (
    Approval,
    RetentionAction,
    RetentionDecision,
    RetentionPolicy,
    SegmentFacts,
    decide,
)
from .workdays import Basis, DayStatus, Override, WorkdayCalendar

__all__ = [
    "Approval",
    "ArrivedManifest",
    "Basis",
    "CalendarConfigError",
    "CalendarNotCovered",
    "CaseStep",
    "DayStatus",
    "Gap",
    "GapKind",
    "LinkDecision",
    "LinkReason",
    "Override",
    "OverrideTable",
    "PolicyError",
    "PolicyInputError",
    "RetentionAction",
    "RetentionDecision",
    "RetentionPolicy",
    "Segment",
    "SegmentFacts",
    "UploadStatus",
    "WorkdayCalendar",
    "archive_deadline",
    "classify",
    "decide",
    "decide_links",
    "find_gaps",
    "link_segment",
    "load_override_table",
    "parse_override_table",
    "upload_deadline",
]
