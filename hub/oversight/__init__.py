"""Oversight of recordings around the pure policy functions (hub.policy), on the database:

* completeness — per-device sequence and hash chain, heartbeat reconciliation, alerts
  (:mod:`.completeness`, :mod:`.alerts`);
* timeliness — 第二十六条 upload deadlines on the working-day calendar with 调休 and the
  administrator's overrides (:mod:`.timeliness`, :mod:`.calendar`);
* links between segments and case steps, manual and automatic (:mod:`.links`);
* retention with two-person approval and a deletion record (:mod:`.retention`), and holds
  (保全) that keep a segment from it (:mod:`.holds`).

Every function takes an ``AsyncSession`` and works inside the caller's transaction (except
:func:`execute_deletion`, which needs the session factory); people are given by user name and
appear in the audit log as ``user:<name>``.
"""

from .alerts import AlertKind, list_alerts, resolve_alert
from .calendar import (
    declare_year,
    list_covered_years,
    list_overrides,
    load_calendar,
    remove_override,
    set_override,
    withdraw_year,
)
from .completeness import check_device, check_segment, check_tail, on_heartbeat, scan_gaps
from .errors import (
    AlreadyLinked,
    AlreadyRemoved,
    AlreadyResolved,
    DeletionRefused,
    DuplicateApproval,
    HoldRefused,
    NoteRequired,
    NotFound,
    OversightError,
)
from .holds import active_holds, is_held, place_hold, release_hold
from .hooks import IngestHooks, StoredOutcome, on_segment_stored
from .links import (
    Link,
    StepSource,
    auto_link_segment,
    auto_link_step,
    link_segment,
    links_for_case,
    links_for_segment,
    unlink,
)
from .retention import (
    Deleter,
    LocalDeleter,
    RetentionCandidate,
    approve_deletion,
    deletion_candidates,
    deletions,
    execute_deletion,
    purge_deleted_blobs,
    request_deletion,
    retention_status,
    withdraw_request,
)
from .settings import DEFAULT_SETTINGS, OversightSettings
from .timeliness import (
    OVERDUE_STATUSES,
    DeadlineItem,
    absent_items,
    at_risk_segments,
    deadline_of,
    late_segments,
    overdue_segments,
    recompute_deadlines,
)

__all__ = [
    "DEFAULT_SETTINGS", "OVERDUE_STATUSES", "AlertKind", "AlreadyLinked", "AlreadyRemoved",
    "AlreadyResolved",
    "DeadlineItem", "Deleter", "DeletionRefused", "DuplicateApproval", "HoldRefused",
    "IngestHooks", "Link", "active_holds", "is_held", "place_hold", "release_hold",
    "LocalDeleter", "NotFound", "NoteRequired", "OversightError", "OversightSettings",
    "RetentionCandidate", "StepSource", "StoredOutcome", "absent_items", "approve_deletion",
    "at_risk_segments",
    "auto_link_segment", "auto_link_step", "check_device", "check_segment", "check_tail",
    "deadline_of", "declare_year", "deletion_candidates", "deletions", "execute_deletion",
    "late_segments", "link_segment", "links_for_case", "links_for_segment", "list_alerts",
    "list_covered_years", "list_overrides", "load_calendar", "on_heartbeat", "on_segment_stored",
    "overdue_segments", "purge_deleted_blobs", "recompute_deadlines", "remove_override",
    "request_deletion", "resolve_alert", "retention_status", "scan_gaps", "set_override", "unlink",
    "withdraw_request", "withdraw_year",
]
