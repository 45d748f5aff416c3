"""What the ingest daemon calls: on a stored segment, on a heartbeat, and periodically.

``on_segment_stored`` and ``on_heartbeat`` take the caller's session and run in its
transaction. :class:`IngestHooks` wraps them for :class:`lerec.hub.daemon.ingest.Ingest`, which
calls ``on_stored(row)`` after the segment's own transaction committed. The hooks never raise
into the ingest path (a failure is logged, and the next :func:`scan_gaps` catches up).

Stored segments are checked in batches: ``on_stored`` queues its segment and returns once a
transaction that checked it has committed. Segments that arrive while a batch is being checked
form the next batch (up to ``MAX_BATCH``), which loads the working-day calendar once and
commits once; with twenty recorders finishing segments at the same time that is a fraction of
the statements and thread trips of a transaction per segment. A batch that fails is retried one
segment at a time, so one bad segment cannot hold back the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from typing import Any

from lerec.protocol import SegmentManifest
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.engine import background_writes
from ..db.models import Segment
from ..db.oversight_models import Alert, SegmentDeadline, SegmentLink
from ..db.types import utcnow
from ..policy.workdays import WorkdayCalendar
from .calendar import load_calendar
from .completeness import check_segment, on_heartbeat, report_replaced, scan_gaps
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
    cal: WorkdayCalendar | None = None,
) -> StoredOutcome:
    """A segment was verified and stored: compute and store its upload deadline (an alert if
    the calendar does not cover the period), check the device's sequence and hash chain
    (alerts for gaps and replaced segments; resolves gaps it fills) from the segment's
    neighbourhood only (:func:`check_segment`), and link it to case steps when a ``source`` is
    given. ``segment`` may be detached (the ingest's row). ``cal``: the working-day calendar, if
the caller loaded it in this transaction already."""
    now = now or utcnow()
    row = await session.get(Segment, segment.segment_id)
    if row is None:
        raise LookupError(f"segment {segment.segment_id} is not stored")
    deadline = await record_deadline(session, row, now, settings, cal)
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

    #: Most segments checked in one transaction. Each costs a few milliseconds of the event
    #: loop's time, mostly per statement: 8 together take about two thirds of the CPU per
    #: segment of 2 together, and hold the database's write lock for some 40 ms (ingest
    #: transactions, which recorders wait on, go first when both are queued).
    MAX_BATCH = 8

    def __init__(
        self,
        sessions: Any,
        settings: OversightSettings = DEFAULT_SETTINGS,
        source: StepSource | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.source = source
        self._queued: list[tuple[Segment, asyncio.Future[None]]] = []
        self._checker: asyncio.Task[None] | None = None
        self.batches = 0  # transactions that checked stored segments (tests, logs)

    async def on_stored(self, segment: Segment) -> None:
        """Check a stored segment; returns when a committed transaction has checked it (or
        the failure was logged)."""
        done = asyncio.get_running_loop().create_future()
        self._queued.append((segment, done))
        if self._checker is None or self._checker.done():
            self._checker = asyncio.create_task(self._check_queued(), name="oversight-stored")
        await asyncio.shield(done)

    async def _check_queued(self) -> None:
        while self._queued:
            batch = self._queued[:self.MAX_BATCH]
            del self._queued[:len(batch)]
            try:
                await self._check_batch([seg for seg, _ in batch])
            except Exception:
                if len(batch) == 1:
                    log.exception("oversight of stored segment %s failed; the next scan "
                                  "retries", batch[0][0].segment_id)
                else:
                    log.warning("oversight of %d stored segments failed together; checking "
                                "them one by one", len(batch), exc_info=True)
                    for seg, _ in batch:
                        try:
                            await self._check_batch([seg])
                        except Exception:
                            log.exception("oversight of stored segment %s failed; the next "
                                          "scan retries", seg.segment_id)
            finally:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _check_batch(self, segments: list[Segment]) -> None:
        with background_writes():  # behind the ingest's transactions (receipts wait on those)
            await self._check_batch_now(segments)

    async def _check_batch_now(self, segments: list[Segment]) -> None:
        async with self.sessions() as s, s.begin():
            cal = await load_calendar(s)
            for seg in segments:
                await on_segment_stored(s, seg, source=self.source, settings=self.settings,
                                        cal=cal)
        self.batches += 1

    async def on_replaced(self, manifest: SegmentManifest, stored: Segment) -> None:
        """The ingest refused a second, different segment for a stored sequence number or
        segment id: raise its alert (:func:`report_replaced`)."""
        try:
            async with self.sessions() as s, s.begin():
                await report_replaced(s, manifest, stored)
        except Exception:
            log.exception("could not raise the alert for a replaced segment %s of %s",
                          manifest.segment_id, manifest.device_id)

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
