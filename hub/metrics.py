"""Prometheus metrics of the hub, and a small asyncio HTTP endpoint serving ``/metrics``.

Each :class:`HubMetrics` owns its own registry (several hubs can run in one test process).
Counters are fed by the ingest core; the gap and overdue gauges are recomputed from the
database every ``refresh_seconds`` by :func:`refresh_fleet_gauges`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from sqlalchemy import select

log = logging.getLogger(__name__)


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
        self.pending = Gauge(
            "lerec_device_pending_segments", "Segments a recorder reports still holding",
            ["device"], registry=r)
        self.gaps = Gauge(
            "lerec_gap_segments", "Sequence numbers in gaps, per device and kind "
            "(missing, chain_broken, not_uploaded)", ["device", "kind"], registry=r)
        self.overdue = Gauge(
            "lerec_overdue_segments", "Segments certainly past their upload deadline "
            "(第二十六条: 2 working days) and not stored", registry=r)
        for kind in ("manifest", "chunk"):
            self.replays.labels(kind)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def refresh_fleet_gauges(metrics: HubMetrics, sessions: Any,
                               now: dt.datetime | None = None) -> None:
    """Recompute gaps per device (hub.policy.find_gaps over the stored manifests) and the
    overdue count. Overdue is a sound lower bound: a *missing* seq ended before the next stored
    segment started, and a *not uploaded* seq ended before the last heartbeat that reported it
    (approximated by the device's last_seen_at, which is later, hence never over-counts)."""
    await _refresh(metrics, sessions, now or dt.datetime.now(dt.UTC))


async def _refresh(metrics: HubMetrics, sessions: Any, now: dt.datetime) -> None:
    from .db.models import Device, Segment
    from .policy import (
        ArrivedManifest,
        CalendarNotCovered,
        GapKind,
        WorkdayCalendar,
        find_gaps,
        upload_deadline,
    )

    cal = WorkdayCalendar()
    overdue = 0
    async with sessions() as s:
        devices = (await s.execute(select(Device))).scalars().all()
        for dev in devices:
            rows = (await s.execute(
                select(Segment.seq, Segment.prev_hash, Segment.manifest_hash, Segment.start_at,
                       Segment.end_at, Segment.officer_id).where(Segment.device_id == dev.device_id)
            )).all()
            arrived = [ArrivedManifest(r.seq, r.prev_hash, r.manifest_hash, r.start_at, r.end_at,
                                       r.officer_id) for r in rows]
            try:
                gaps = find_gaps(dev.device_id, arrived, dev.last_seq_reported)
            except Exception as exc:  # bad data must not stop the metrics
                log.warning("gap check of %s failed: %s", dev.device_id, exc)
                continue
            counts = {k.value: 0 for k in GapKind}
            for g in gaps:
                counts[g.kind.value] += len(g.seqs)
                ref = g.window_end if g.kind == GapKind.MISSING else dev.last_seen_at
                if g.kind == GapKind.CHAIN_BROKEN or ref is None:
                    continue
                try:
                    if now > upload_deadline(ref, cal):
                        overdue += len(g.seqs)
                except CalendarNotCovered as exc:
                    log.warning("overdue check skipped: %s", exc)
            for kind, n in counts.items():
                metrics.gaps.labels(dev.device_id, kind).set(n)
            if dev.last_seen_at is not None:
                metrics.last_seen.labels(dev.device_id).set(dev.last_seen_at.timestamp())
    metrics.overdue.set(overdue)


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
