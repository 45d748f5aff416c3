"""Prometheus metrics of the hub, and a small asyncio HTTP endpoint serving ``/metrics``.

Each :class:`HubMetrics` owns its own registry (several hubs can run in one test process).
Counters are fed by the ingest core; the gap, overdue and last-seen gauges are recomputed from
the database every ``refresh_seconds`` by :func:`refresh_fleet_gauges`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any, NamedTuple

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from sqlalchemy import select

from .oversight.absent import present_numbers
from .oversight.settings import DEFAULT_SETTINGS
from .policy.gaps import GapKind

log = logging.getLogger(__name__)

GAP_KINDS = tuple(k.value for k in GapKind)


class HubMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.segments_stored = Counter(
            "lerec_segments_stored", "Segments verified, stored and receipted", registry=r)
        self.bytes_stored = Counter(
            "lerec_bytes_stored", "Plaintext bytes of stored segments", registry=r)
        self.rejections = Counter(
            "lerec_verification_failures", "Messages refused by the hub, by reason code",
            ["reason"], registry=r)
        self.replays = Counter(
            "lerec_replays", "Replayed messages recognised (manifest of a stored segment, chunk "
            "already held or of a stored segment)", ["kind"], registry=r)
        self.receipts_resent = Counter(
            "lerec_receipts_resent", "Receipts sent again for replayed manifests", registry=r)
        self.messages = Counter(
            "lerec_messages", "Messages handled, by kind", ["kind"], registry=r)
        self.broker_connects = Counter(
            "lerec_broker_connects", "Successful (re)connections to the broker", registry=r)
        self.broker_connected = Gauge(
            "lerec_broker_connected", "1 while connected to the broker", registry=r)
        self.transfers_open = Gauge(
            "lerec_transfers_open", "Segments being received (staging)", registry=r)
        self.chunk_workers = Gauge(
            "lerec_chunk_workers_running", "Chunk worker processes running", registry=r)
        self.chunk_worker_failures = Gauge(
            "lerec_chunk_worker_failures", "Chunk workers that died or hung since the hub "
            "started (their chunks were staged on the event loop)", registry=r)
        self.last_seen = Gauge(
            "lerec_device_last_seen_timestamp_seconds", "Last message from a recorder (Unix s)",
            ["device"], registry=r)
        self._seen: dict[str, float] = {}  # what last_seen holds, per device
        self.pending = Gauge(
            "lerec_device_pending_segments", "Segments a recorder reports still holding",
            ["device"], registry=r)
        self.gaps = Gauge(
            "lerec_gap_segments", "Sequence numbers in open gap alerts, per device and kind "
            "(missing, chain_broken, not_uploaded); numbers that arrived since are not "
            "counted, nor alerts the hub or an administrator resolved", ["device", "kind"],
            registry=r)
        self.overdue = Gauge(
            "lerec_overdue_segments", "Segments certainly past their upload deadline "
            "(第二十六条: 2 working days) and not stored (the rule of the overdue list), "
            "except those whose absent-number alert an administrator resolved", registry=r)
        self.deadline_unknown = Gauge(
            "lerec_deadline_unknown_segments", "Segments not stored whose upload deadline the "
            "working-day calendar cannot compute (a year it does not cover), except those "
            "whose absent-number alert an administrator resolved", registry=r)
        self.overdue_resolved = Gauge(
            "lerec_overdue_resolved_segments", "Segments of the overdue list (past their "
            "deadline or deadline unknown, not stored) whose absent-number alert an "
            "administrator resolved: still absent, handled", registry=r)
        for kind in ("manifest", "chunk"):
            self.replays.labels(kind)

    def saw(self, device_id: str, at: float | None = None) -> None:
        """A message from ``device_id`` at ``at`` (Unix s; default now): the last-seen gauge
        only moves forward (the database's value, written by heartbeats, may be older)."""
        at = time.time() if at is None else at
        if at > self._seen.get(device_id, 0.0):
            self._seen[device_id] = at
            self.last_seen.labels(device_id).set(at)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def refresh_fleet_gauges(metrics: HubMetrics, sessions: Any,
                               now: dt.datetime | None = None,
                               settings: Any = DEFAULT_SETTINGS) -> None:
    """Recompute the fleet gauges from the database, reading only what is bounded by the
    fleet and its open problems, never a device's whole history:

    * ``lerec_gap_segments``: the open gap alerts (``hub.oversight.completeness`` raises and
      resolves them), each absent-number alert counting only its numbers still absent;
    * ``lerec_overdue_segments`` / ``lerec_deadline_unknown_segments``: the rule of
      :func:`hub.oversight.timeliness.overdue_segments`, without the runs an administrator
      handled, which ``lerec_overdue_resolved_segments`` counts (see :func:`count_overdue`);
    * ``lerec_device_last_seen_timestamp_seconds``: ``devices.last_seen_at`` (never moved back
      from a later message the ingest counted since).

    ``settings``: the hub's :class:`~hub.oversight.settings.OversightSettings`."""
    await _refresh(metrics, sessions, now or dt.datetime.now(dt.UTC), settings)


async def _refresh(metrics: HubMetrics, sessions: Any, now: dt.datetime, settings: Any) -> None:
    from .db.models import Device

    async with sessions() as s:
        devices = (await s.execute(select(Device.device_id, Device.last_seen_at))).all()
        gaps = await count_open_gaps(s)
        overdue, unknown, resolved = await count_overdue(s, now, settings)
    for device_id in {d.device_id for d in devices} | {dev for dev, _ in gaps} | \
            _labelled(metrics.gaps, "device"):
        for kind in GAP_KINDS:
            metrics.gaps.labels(device_id, kind).set(gaps.get((device_id, kind), 0))
    for d in devices:
        if d.last_seen_at is None:
            continue
        metrics.saw(d.device_id, d.last_seen_at.timestamp())
    metrics.overdue.set(overdue)
    metrics.deadline_unknown.set(unknown)
    metrics.overdue_resolved.set(resolved)


def _labelled(gauge: Gauge, label: str) -> set[str]:
    """Values of ``label`` the gauge has children for (to zero those that went away)."""
    out = set()
    for fam in gauge.collect():
        for sample in fam.samples:
            if label in sample.labels:
                out.add(sample.labels[label])
    return out


async def count_open_gaps(session: Any) -> dict[tuple[str, str], int]:
    """(device, kind) -> sequence numbers in open gap alerts. An absent-number alert
    (``missing``, ``not_uploaded``) counts only its numbers that have not arrived since (it
    stays open until all of them did); a ``chain_broken`` alert counts the numbers it names.
    Alerts resolved by the hub or by an administrator are not counted. Reads the open alerts
    and, for each absent-number one, the present numbers inside it."""
    from .db.oversight_models import Alert

    rows = (await session.execute(
        select(Alert.device_id, Alert.kind, Alert.first_seq, Alert.last_seq).where(
            Alert.resolved_at.is_(None), Alert.kind.in_(GAP_KINDS),
            Alert.device_id.is_not(None), Alert.first_seq.is_not(None),
            Alert.last_seq.is_not(None))
    )).all()
    out: dict[tuple[str, str], int] = {}
    for r in rows:
        n = r.last_seq - r.first_seq + 1
        if r.kind != "chain_broken":
            n -= len(await present_numbers(session, r.device_id, r.first_seq, r.last_seq))
        out[(r.device_id, r.kind)] = out.get((r.device_id, r.kind), 0) + max(n, 0)
    return out


class OverdueCounts(NamedTuple):
    """Sequence numbers of the overdue list, by how they stand (see :func:`count_overdue`)."""

    overdue: int  # certainly past their deadline, not handled
    unknown: int  # deadline the calendar cannot compute, not handled
    resolved: int  # either of the above, handled by an administrator


async def count_overdue(session: Any, now: dt.datetime, settings: Any) -> OverdueCounts:
    """Numbers over every recorder of the items of
    :func:`hub.oversight.timeliness.overdue_segments` (counted from the same
    :func:`~hub.oversight.timeliness.absent_items`): status ``overdue`` and ``calendar_error``
    of the runs no administrator handled, and those of the runs an administrator handled
    (their alert resolved with a note: still absent, but dealt with)."""
    from .oversight.timeliness import CALENDAR_ERROR, OVERDUE_STATUSES, absent_items
    from .policy.deadlines import UploadStatus

    overdue = unknown = resolved = 0
    for item in await absent_items(session, now, settings):
        n = item.last_seq - item.first_seq + 1
        if item.status not in OVERDUE_STATUSES:
            continue
        if item.handled:
            resolved += n
        elif item.status == CALENDAR_ERROR:
            unknown += n
        elif item.status == UploadStatus.OVERDUE.value:
            overdue += n
    return OverdueCounts(overdue, unknown, resolved)


async def serve_metrics(metrics: HubMetrics, host: str, port: int,
                        started: asyncio.Future[int] | None = None) -> None:
    """Serve ``GET /metrics`` until cancelled; ``started`` receives the bound port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            line = request.split(b"\r\n", 1)[0].split()
            if len(line) >= 2 and line[0] == b"GET" and line[1].split(b"?")[0] == b"/metrics":
                body, status, ctype = metrics.render(), b"200 OK", CONTENT_TYPE_LATEST.encode()
            else:
                body, status, ctype = b"not found; try /metrics\n", b"404 Not Found", b"text/plain"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype +
                         b"\r\nContent-Length: " + str(len(body)).encode() +
                         b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    bound = server.sockets[0].getsockname()[1]
    log.info("metrics at http://%s:%d/metrics", host, bound)
    if started is not None and not started.done():
        started.set_result(bound)
    async with server:
        await server.serve_forever()
