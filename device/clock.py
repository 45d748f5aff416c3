"""Clocks: where the recorder gets wall time and how far it trusts it.

Recorded time is evidence, so a clock reports not only ``now()`` but also its sync state
("synced", "unsynced", "holdover"), the source it follows and, when known, the estimated offset
from true time. :class:`SystemClock` reads the operating system; :class:`FakeClock` is a
settable clock for tests and simulations.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

SyncState = Literal["synced", "unsynced", "holdover"]

# systemd-timesyncd creates this file once the clock has been synchronised since boot.
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


@dataclass(frozen=True)
class ClockStatus:
    """How much the recorder can trust its clock right now."""

    sync: SyncState
    source: str
    offset_seconds: float | None = None

    @property
    def trusted(self) -> bool:
        """True when time comes from a synced source or a short holdover after one."""
        return self.sync != "unsynced"


class Clock(Protocol):
    """Wall-clock time with a sync state."""

    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...

    def status(self) -> ClockStatus:
        """Current sync state, source and estimated offset."""
        ...


def utc_from_us(us: int) -> datetime:
    """Timezone-aware UTC datetime from integer microseconds since the Unix epoch."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def us_from_utc(when: datetime) -> int:
    """Integer microseconds since the Unix epoch from an aware datetime."""
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class SystemClock:
    """The operating system clock.

    The sync state comes from systemd-timesyncd's flag file unless a component that knows
    better (e.g. the hub time message handler) sets it with :meth:`set_status`.
    """

    def __init__(self, source: str = "system", flag_file: Path = TIMESYNCD_FLAG) -> None:
        self._source = source
        self._flag_file = flag_file
        self._override: ClockStatus | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def status(self) -> ClockStatus:
        with self._lock:
            if self._override is not None:
                return self._override
        sync: SyncState = "synced" if self._flag_file.exists() else "unsynced"
        return ClockStatus(sync=sync, source=self._source)

    def set_status(self, status: ClockStatus | None) -> None:
        """Override the sync state (None returns to the flag-file probe)."""
        with self._lock:
            self._override = status


class FakeClock:
    """A settable clock for tests: ticks with real time from a chosen start, or stands still."""

    def __init__(
        self,
        start: datetime | None = None,
        *,
        ticking: bool = True,
        status: ClockStatus = ClockStatus("synced", "fake", 0.0),
    ) -> None:
        self._lock = threading.Lock()
        self._base = start if start is not None else datetime.now(UTC)
        if self._base.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start time")
        self._mono0 = time.monotonic()
        self._ticking = ticking
        self._status = status

    def now(self) -> datetime:
        with self._lock:
            if not self._ticking:
                return self._base
            return self._base + timedelta(seconds=time.monotonic() - self._mono0)

    def status(self) -> ClockStatus:
        with self._lock:
            return self._status

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (keeps ticking from there if ticking)."""
        with self._lock:
            self._base = when
            self._mono0 = time.monotonic()

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, with a negative value)."""
        self.set(self.now() + timedelta(seconds=seconds))

    def set_status(self, status: ClockStatus) -> None:
        with self._lock:
            self._status = status

    def set_sync(self, sync: SyncState) -> None:
        """Change only the sync state."""
        with self._lock:
            self._status = replace(self._status, sync=sync)
