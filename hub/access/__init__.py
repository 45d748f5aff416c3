"""Access to case records (第二十九条): pure rules (:mod:`.rules`) and the async service."""

from .rules import (
    MAX_GRANT_DAYS,
    Confidentiality,
    Decision,
    Grant,
    Marking,
    Principal,
    Role,
    decide_access,
    decide_approval,
    decide_request,
)
from .service import (
    AccessError,
    approve,
    check_access,
    list_requests,
    mark_confidential,
    refuse,
    request_access,
    revoke,
    status_now,
)

__all__ = [
    "MAX_GRANT_DAYS", "AccessError", "Confidentiality", "Decision", "Grant", "Marking",
    "Principal", "Role", "approve", "check_access", "decide_access", "decide_approval",
    "decide_request", "list_requests", "mark_confidential", "refuse", "request_access",
    "revoke", "status_now",
]
