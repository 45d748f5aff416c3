"""Oversight settings, declared once. The daemon or admin service loads them from its own
config file and passes them in; every function here takes ``settings`` with this default."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from ..policy.deadlines import AT_RISK_WITHIN, UPLOAD_WORKING_DAYS
from ..policy.linking import DEFAULT_TOLERANCE
from ..policy.retention import RetentionPolicy

_DEFAULT_RETENTION = RetentionPolicy()


class OversightSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    not_uploaded_grace: timedelta = Field(
        timedelta(hours=2),
        description="How long a segment the recorder reported (heartbeat last_seq) may stay "
        "in transit before a 'reported but not uploaded' alert is raised.",
    )
    upload_working_days: int = Field(
        UPLOAD_WORKING_DAYS, ge=1, description="第二十六条: upload within this many working days."
    )
    at_risk_within: timedelta = Field(
        AT_RISK_WITHIN, description="A segment not uploaded with less than this left is at risk."
    )
    link_tolerance: timedelta = Field(
        DEFAULT_TOLERANCE,
        description="Auto-link: a segment may start/end this much outside a step's window.",
    )
    keep_unlinked_for: timedelta = Field(
        _DEFAULT_RETENTION.keep_unlinked_for,
        description="Retention of segments linked to no case before deletion may be asked.",
    )
    required_approvals: int = Field(
        _DEFAULT_RETENTION.required_approvals, ge=2,
        description="Distinct people who must approve a deletion (never fewer than two).",
    )
    officer_may_approve: bool = Field(
        False, description="Whether the officer who recorded a segment may approve its deletion."
    )
    system_principals: frozenset[str] = Field(
        frozenset({"system", "hub"}),
        description="Principals that are not people; their approvals never count.",
    )

    def retention_policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            keep_unlinked_for=self.keep_unlinked_for,
            required_approvals=self.required_approvals,
            system_principals=self.system_principals,
            officer_may_approve=self.officer_may_approve,
        )


DEFAULT_SETTINGS = OversightSettings.model_validate({})
