"""What the ingest daemon calls: on a stored segment, on a heartbeat, and periodically.

``on_segment_stored`` and ``on_heartbeat`` take the caller's session and run in its
transaction. :class:`IngestHooks` wraps them for :class:`lerec.hub.daemon.ingest.Ingest`, which
calls ``on_stored(row)`` after the segment's own transaction committed: each hook opens its
own transaction and never raises into the ingest path (a failure is logged, and the next
:func:`scan_gaps` catches up).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Segment
from ..db.oversight_models import Alert, SegmentDeadline, SegmentLink
from ..db.types import utcnow
from .completeness import check_segment, on_heartbeat, scan_gaps
from .links import StepSource, auto_link_segment
from .settings import DEFAULT_SETTINGS, OversightSettings
from .timeliness import record_deadline

log = logging.getLogger(__name__)


@dataclasses.dataclass
class StoredOutcome:
    deadline: SegmentDeadline
    alerts: list[Alert]
    links: list[SegmentLink]


async def on_segment_stored(
    session: AsyncSession,
    segment: Segment,
    *,
    source: StepSource | None = None,
    now: dt.datetime | None = None,
    settings: OversightSettings = DEFAULT_SETTINGS,
) -> StoredOutcome:
    """A segment was verified and stored: compute and store its upload deadline (an alert if
    the calendar does not cover the period), check the device's sequence and hash chain
    (alerts for gaps and replaced segments; resolves gaps it fills) from the segment's
    neighbourhood only (:func:`check_segment`), and link it to case steps when a ``source`` is
    given. ``segment`` may be detached (the ingest's row)."""
    now = now or utcnow()
    row = await session.get(Segment, segment.segment_id)
    if row is None:
        raise LookupError(f"segment {segment.segment_id} is not stored")
    deadline = await record_deadline(session, row, now, settings)
    # In the same transaction as the deadline row: a segment with a deadline row was checked
    # (scan_gaps relies on it to find segments whose hook never completed).
    alerts = await check_segment(session, row.device_id, row.seq, now, settings)
    links = await auto_link_segment(session, row, source, now, settings) if source else []
    return StoredOutcome(deadline, alerts, links)


class IngestHooks:
    """Oversight hooks for the ingest daemon, over a session factory.

    * ``Ingest(on_stored=hooks.on_stored)`` (or set ``ingest.on_stored``),
    * ``await hooks.on_heartbeat(device_id, hb.last_seq)`` after a verified heartbeat,
    * ``tg.create_task(hooks.run_scanner(), name="oversight-scan")`` in the service TaskGroup.
    """

    def __init__(
        self,
        sessions: Any,
        settings: OversightSettings = DEFAULT_SETTINGS,
        source: StepSource | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.source = source

    async def on_stored(self, segment: Segment) -> None:
        try:
            async with self.sessions() as s, s.begin():
                await on_segment_stored(s, segment, source=self.source, settings=self.settings)
        except Exception:
            log.exception("oversight of stored segment %s failed; the next scan retries",
                          segment.segment_id)

    async def on_heartbeat(self, device_id: str, last_seq: int) -> None:
        try:
            async with self.sessions() as s, s.begin():
                await on_heartbeat(s, device_id, last_seq, settings=self.settings)
        except Exception:
            log.exception("oversight of heartbeat from %s failed", device_id)

    async def scan(self, full: bool = False) -> list[Alert]:
        async with self.sessions() as s, s.begin():
            return await scan_gaps(s, settings=self.settings, full=full)

    async def run_scanner(self, every: float = 300.0, full_every: float = 24 * 3600.0) -> None:
        """Scan at start and then every ``every`` seconds, until cancelled. The start-up scan
        and one every ``full_every`` seconds are full recomputations over every device's whole
        history (they also catch rows altered directly in the database); the others only look
        at what the per-segment hooks may have missed."""
        last_full: float | None = None
        while True:
            now = asyncio.get_running_loop().time()
            full = last_full is None or now - last_full >= full_every
            try:
                await self.scan(full=full)
                if full:
                    last_full = now
            except Exception:
                log.exception("oversight scan failed")
            await asyncio.sleep(every)
