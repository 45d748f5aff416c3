"""Small time helpers shared by the policy modules."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from .errors import PolicyInputError

LOCAL_TZ = "Asia/Shanghai"


def require_aware(value: datetime, name: str) -> None:
    """Reject naive datetimes: recorded time is evidence and must say which clock it is."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise PolicyInputError(f"{name} must be timezone-aware, got naive {value!r}")


def local_text(value: datetime, tz: str = LOCAL_TZ) -> str:
    """``2024-10-01 00:00`` in local time, for messages shown to people."""
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
