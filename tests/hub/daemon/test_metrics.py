"""The hub serves Prometheus metrics and structured logs: scraped over HTTP from a running hub."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import urllib.request

from lerec.hub.daemon.logs import JsonFormatter
from lerec.hub.db import Device, Segment, make_engine, migrate, sessionmaker, sqlite_url
from lerec.hub.db.oversight_models import Alert
from lerec.hub.db.sqlite_async import async_creator
from lerec.hub.metrics import HubMetrics, refresh_fleet_gauges
from lerec.hub.oversight import (
    OversightSettings,
    on_heartbeat,
    overdue_segments,
    resolve_alert,
    scan_gaps,
    set_override,
)
from lerec.protocol import ZERO_HASH, topics
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, select
from support.rig import fake_segment, make_uploader, raw_client, stored_segments
from support.withhold import heartbeat_of, make_holding_store

BEIJING = dt.timezone(dt.timedelta(hours=8))
#: A working Monday long past (covered by the statutory calendar): segments recorded then are
#: past their upload deadline whatever day the test runs.
LONG_AGO = dt.datetime(2025, 3, 3, 9, 0, tzinfo=BEIJING)
GRACE = dt.timedelta(seconds=0.5)


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_endpoint_counts_segments_rejections_replays_and_last_seen(rig):
    hub = rig.start_hub(metrics={"port": 0, "refresh_seconds": 0.2})
    port = hub.service.metrics_port
    assert port
    store, up = rig.recorder("rec-a")
    row = store.seal(fake_segment(store, 200_000))
    with up:
        assert up.wait_idle(30)
    # A replayed manifest and a forged message through the real broker.
    c = raw_client(rig.pki, "rec-a", rig.port)
    c.connect("127.0.0.1", rig.port)
    c.loop_start()
    # Acknowledged by the broker before the disconnect (which would drop them in flight).
    c.publish(topics.device_topic("rec-a", "manifest"), row.manifest, qos=1).wait_for_publish(30)
    c.publish(topics.device_topic("rec-a", "heartbeat"), b"\xa0garbage", qos=1).wait_for_publish(30)
    c.disconnect()
    c.loop_stop()
    ingest = hub.service.ingest

    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (ingest.stats.manifests_replayed
                                               and ingest.stats.rejected):
        time.sleep(0.05)
    m = scrape(port)
    assert m[("lerec_segments_stored_total", ())] == 1
    assert m[("lerec_bytes_stored_total", ())] == 200_000
    assert m[("lerec_replays_total", (("kind", "manifest"),))] == 1
    assert m[("lerec_verification_failures_total", (("reason", "undecodable"),))] >= 1
    assert m[("lerec_device_last_seen_timestamp_seconds", (("device", "rec-a"),))] > 0
    assert m[("lerec_broker_connected", ())] == 1
    assert m[("lerec_chunk_workers_running", ())] == 1, "started with the hub"
    assert m[("lerec_chunk_worker_failures", ())] == 0
    assert ("lerec_overdue_segments", ()) in m
    assert m[("lerec_gap_segments", (("device", "rec-a"), ("kind", "missing")))] == 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain")


def test_json_log_lines_carry_reason_codes():
    rec = logging.LogRecord("lerec.hub.daemon.ingest", logging.WARNING, __file__, 1,
                            "rejected message from %s: [%s] %s", ("rec-a", "schema", "bad"), None)
    rec.code = "schema"
    line = json.loads(JsonFormatter().format(rec))
    assert line["level"] == "WARNING"
    assert line["message"] == "rejected message from rec-a: [schema] bad"
    assert line["code"] == "schema"
    assert line["ts"].endswith("Z")


def gauge(m: dict, name: str, **labels: str) -> float:
    return m[(name, tuple(sorted(labels.items())))]


def wait_scrape(port: int, check, timeout: float = 30.0) -> dict:
    """Scrape until ``check(metrics)`` holds (the gauges refresh every 0.2 s). A gauge not
    exported yet (KeyError in ``check``) counts as not holding; the caller's assertions on the
    returned scrape then say what is wrong."""
    deadline = time.monotonic() + timeout
    while True:
        m = scrape(port)
        try:
            ok = check(m)
        except KeyError:
            ok = False
        if ok or time.monotonic() > deadline:
            return m
        time.sleep(0.1)


def listed_overdue(hub, handled: bool = False) -> tuple[int, int]:
    """(overdue, calendar_error) sequence numbers of the hub's own overdue list, of the runs
    no administrator handled (``handled``: of those an administrator handled)."""

    async def q():
        async with hub.service.sessions() as s:
            items = await overdue_segments(s, settings=hub.service.oversight.settings)
        n = {"overdue": 0, "calendar_error": 0}
        for i in items:
            if i.handled == handled:
                n[i.status] += i.last_seq - i.first_seq + 1
        return n["overdue"], n["calendar_error"]

    return hub.call(q())


def open_alerts(hub, device_id: str) -> list[Alert]:
    async def q():
        async with hub.service.sessions() as s:
            return list((await s.execute(select(Alert).where(
                Alert.device_id == device_id, Alert.resolved_at.is_(None)
            ).order_by(Alert.first_seq))).scalars())

    return hub.call(q())


def holding_recorder(rig, device_id: str):
    store = make_holding_store(rig.pki, device_id, rig.root / device_id)
    up = make_uploader(rig.pki, store, rig.port, heartbeat=heartbeat_of(store, "officer-7"),
                       heartbeat_seconds=0.2)
    rig.uploaders.append(up)
    return store, up


def start_hub_with_metrics(rig):
    return rig.start_hub(metrics={"port": 0, "refresh_seconds": 0.2})


def use_small_grace(hub) -> None:
    """The daemon's oversight settings (read at every check): a segment a heartbeat reported
    is a not-uploaded gap after half a second instead of two hours. Set once the recorder's
    uploads have been receipted (``up.wait_idle``): set before, a segment still in transit
    on a loaded machine would outlast the half second and raise a not-uploaded alert of its
    own."""
    hub.service.oversight.settings = OversightSettings(not_uploaded_grace=GRACE)


def test_withheld_segments_raise_gap_and_overdue_gauges_until_uploaded(rig):
    """Seq 1 (recorded long ago) is skipped while seq 2 arrives: a missing number, overdue.
    Seq 3 (recorded now) is reported by heartbeats but not uploaded: a not-uploaded gap once
    the grace period is over, not overdue. Both gauges go back to zero once they arrive."""
    hub = start_hub_with_metrics(rig)
    port = hub.service.metrics_port
    store, up = holding_recorder(rig, "rec-a")
    for i in range(3):
        store.seal(fake_segment(store, 50_000, start=LONG_AGO + dt.timedelta(minutes=10 * i)),
                   officer_id="officer-7")
    store.seal(fake_segment(store, 50_000), officer_id="officer-7")
    store.hold([1, 3])
    with up:
        assert up.wait_idle(30)
        use_small_grace(hub)
        assert [r.seq for r in stored_segments(hub)] == [0, 2]
        # The not-uploaded alert comes with a heartbeat after the grace period.
        deadline = time.monotonic() + 30
        while len(open_alerts(hub, "rec-a")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        # Both alerts in one refresh (a refresh may have run between the two being raised).
        m = wait_scrape(port, lambda m: gauge(m, "lerec_gap_segments", device="rec-a",
                                              kind="not_uploaded") == 1
                        and gauge(m, "lerec_gap_segments", device="rec-a", kind="missing") == 1
                        and m[("lerec_overdue_segments", ())] == 1)
        assert gauge(m, "lerec_gap_segments", device="rec-a", kind="missing") == 1
        assert gauge(m, "lerec_gap_segments", device="rec-a", kind="not_uploaded") == 1
        assert gauge(m, "lerec_gap_segments", device="rec-a", kind="chain_broken") == 0
        assert gauge(m, "lerec_gap_segments", device="rec-b", kind="missing") == 0
        assert [(a.kind, a.first_seq, a.last_seq) for a in open_alerts(hub, "rec-a")] == [
            ("missing", 1, 1), ("not_uploaded", 3, 3)]
        # Seq 1 ended before seq 2 started (2025-03-03): certainly overdue. Seq 3 was first
        # reported just now: its deadline is days away.
        assert m[("lerec_overdue_segments", ())] == 1
        overdue, unknown = listed_overdue(hub)
        assert (m[("lerec_overdue_segments", ())],
                m[("lerec_deadline_unknown_segments", ())]) == (overdue, unknown)

        store.release()
        assert up.wait_idle(30)
        m = wait_scrape(port, lambda m: gauge(m, "lerec_gap_segments", device="rec-a",
                                              kind="missing") == 0
                        and m[("lerec_overdue_segments", ())] == 0
                        and gauge(m, "lerec_gap_segments", device="rec-a",
                                  kind="not_uploaded") == 0)
    assert [r.seq for r in stored_segments(hub)] == [0, 1, 2, 3]
    assert open_alerts(hub, "rec-a") == []
    assert gauge(m, "lerec_gap_segments", device="rec-a", kind="missing") == 0
    assert gauge(m, "lerec_gap_segments", device="rec-a", kind="not_uploaded") == 0
    assert m[("lerec_overdue_segments", ())] == 0
    assert listed_overdue(hub) == (0, 0)


def test_gap_gauge_drops_a_gap_an_administrator_resolved_overdue_follows_the_list(rig):
    """An administrator resolves the alert of a segment that will never come (设备损坏): the
    gap gauge no longer counts it, nor does the overdue gauge; the overdue list still holds it,
    marked handled, and the resolved-overdue gauge counts it."""
    hub = start_hub_with_metrics(rig)
    port = hub.service.metrics_port
    store, up = holding_recorder(rig, "rec-b")
    for i in range(4):
        store.seal(fake_segment(store, 40_000, start=LONG_AGO + dt.timedelta(minutes=10 * i)),
                   officer_id="officer-7")
    store.hold([1, 2])
    with up:
        assert up.wait_idle(30)
        use_small_grace(hub)
        m = wait_scrape(port, lambda m: gauge(m, "lerec_gap_segments", device="rec-b",
                                              kind="missing") == 2
                        and m[("lerec_overdue_segments", ())] == 2)
        assert gauge(m, "lerec_gap_segments", device="rec-b", kind="missing") == 2
        assert m[("lerec_overdue_segments", ())] == 2 == listed_overdue(hub)[0]

        # Seq 2 arrives: the alert (1-2) stays open, but counts only what is still absent.
        store.release([2])
        m = wait_scrape(port, lambda m: gauge(m, "lerec_gap_segments", device="rec-b",
                                              kind="missing") == 1
                        and m[("lerec_overdue_segments", ())] == 1)
        assert gauge(m, "lerec_gap_segments", device="rec-b", kind="missing") == 1
        assert [(a.first_seq, a.last_seq) for a in open_alerts(hub, "rec-b")] == [(1, 2)]
        assert m[("lerec_overdue_segments", ())] == 1 == listed_overdue(hub)[0]

        (alert,) = open_alerts(hub, "rec-b")

        async def resolve():
            async with hub.service.sessions() as s, s.begin():
                await resolve_alert(s, alert.id, "alice", "设备损坏，该段未能录制")

        hub.call(resolve())
        m = wait_scrape(port, lambda m: gauge(m, "lerec_gap_segments", device="rec-b",
                                              kind="missing") == 0
                        and m[("lerec_overdue_segments", ())] == 0)
    assert gauge(m, "lerec_gap_segments", device="rec-b", kind="missing") == 0
    assert m[("lerec_overdue_segments", ())] == 0 == listed_overdue(hub)[0]
    assert m[("lerec_overdue_resolved_segments", ())] == 1 == listed_overdue(hub, True)[0]


def test_overdue_gauge_uses_the_administrators_calendar(rig):
    """A segment skipped 15 days ago is overdue by the statutory calendar; the administrator
    declares every day since rest days (override table): by the hub's calendar it is not overdue
    any more, and the gauge says so as the overdue list does."""
    hub = start_hub_with_metrics(rig)
    port = hub.service.metrics_port
    store, up = holding_recorder(rig, "rec-c")
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=15)
    for i in range(3):
        store.seal(fake_segment(store, 40_000, start=start + dt.timedelta(minutes=10 * i)),
                   officer_id="officer-7")
    store.hold([1])
    with up:
        assert up.wait_idle(30)
        use_small_grace(hub)
        # The missing alert is raised by the stored-segment hook, after the segment (and so
        # possibly after the overdue count) is visible: wait for both in one refresh.
        m = wait_scrape(port, lambda m: m[("lerec_overdue_segments", ())] == 1
                        and gauge(m, "lerec_gap_segments", device="rec-c", kind="missing") == 1)
        assert gauge(m, "lerec_gap_segments", device="rec-c", kind="missing") == 1
        assert m[("lerec_overdue_segments", ())] == 1 == listed_overdue(hub)[0]

        first = (start + dt.timedelta(minutes=20)).astimezone(BEIJING).date()
        last = dt.datetime.now(BEIJING).date() + dt.timedelta(days=2)

        async def rest_days():
            async with hub.service.sessions() as s, s.begin():
                day = first + dt.timedelta(days=1)
                while day <= last:
                    await set_override(s, day, False, "防汛停工", "alice")
                    day += dt.timedelta(days=1)

        hub.call(rest_days())
        m = wait_scrape(port, lambda m: m[("lerec_overdue_segments", ())] == 0)
    assert m[("lerec_overdue_segments", ())] == 0 == listed_overdue(hub)[0]
    assert gauge(m, "lerec_gap_segments", device="rec-c", kind="missing") == 1


def _segment_rows(device_id: str, seqs, start: dt.datetime, prev: bytes):
    """Rows of a recorder's chained segments, as ingest stores them."""
    import hashlib

    rows = []
    for seq in seqs:
        manifest = f"manifest {device_id} {seq}".encode()
        at = start + dt.timedelta(minutes=10 * seq)
        rows.append({
            "segment_id": f"{device_id}-{seq}", "device_id": device_id, "seq": seq,
            "officer_id": "officer-7", "start_at": at, "end_at": at + dt.timedelta(minutes=5),
            "media_type": "video/mp4", "length": 1000, "sha256": "0" * 64,
            "important": False, "recovered": False, "clock_state": "synced",
            "clock_offset_ms": 0, "prev_hash": prev, "manifest": manifest,
            "manifest_hash": hashlib.sha256(manifest).digest(), "receipt": b"r",
            "stored_ref": f"ref-{device_id}-{seq}", "received_at": at})
        prev = hashlib.sha256(manifest).digest()
    return rows, prev


async def test_refresh_reads_open_problems_not_the_whole_history(tmp_path):
    """The work SQLite does for one refresh (virtual machine steps, counted by its progress
    handler: not a timing) stays the same when a recorder's history grows twentyfold while the
    open problems stay the same. Reading every segment (or aggregating over all of them) would
    grow with it."""
    url = sqlite_url(tmp_path / "hub.db")
    steps = [0]
    connect = async_creator(url)

    async def counting_connect():
        conn = await connect()
        await conn.set_progress_handler(lambda: steps.__setitem__(0, steps[0] + 1), 1)
        return conn

    engine = make_engine(url, async_creator=counting_connect)
    try:
        await migrate(engine)
        sessions = sessionmaker(engine)
        t0 = LONG_AGO
        now = t0 + dt.timedelta(days=60)
        async with sessions() as s, s.begin():
            for d in ("rec-a", "rec-b"):
                s.add(Device(device_id=d, signing_key=bytes(32), officer_id="officer-7"))
        # rec-a: 0-39 with 5 skipped; 40 reported long ago and 41 an hour ago, neither
        # uploaded (41 still within its grace period). rec-b: complete.
        a_rows, _ = _segment_rows("rec-a", range(40), t0, ZERO_HASH)
        b_rows, b_prev = _segment_rows("rec-b", range(50), t0, ZERO_HASH)
        async with sessions() as s, s.begin():
            await s.execute(insert(Segment), [r for r in a_rows if r["seq"] != 5] + b_rows)
            await on_heartbeat(s, "rec-a", 40, t0 + dt.timedelta(days=1))
            await on_heartbeat(s, "rec-a", 41, now - dt.timedelta(hours=1))
            await scan_gaps(s, now)

        async def listed() -> int:
            async with sessions() as s:
                return sum(i.last_seq - i.first_seq + 1 for i in await overdue_segments(s, now)
                           if i.status == "overdue")

        async def refresh() -> tuple[int, dict]:
            metrics = HubMetrics()
            before = steps[0]
            await refresh_fleet_gauges(metrics, sessions, now)
            work = steps[0] - before
            get = metrics.registry.get_sample_value
            return work, {
                "missing": get("lerec_gap_segments", {"device": "rec-a", "kind": "missing"}),
                "not_uploaded": get("lerec_gap_segments",
                                    {"device": "rec-a", "kind": "not_uploaded"}),
                "b": get("lerec_gap_segments", {"device": "rec-b", "kind": "missing"}),
                "overdue": get("lerec_overdue_segments", {}),
            }

        await refresh()  # statements compiled, calendar years looked up
        small, gauges = await refresh()
        assert gauges == {"missing": 1, "not_uploaded": 1, "b": 0, "overdue": 2}
        assert await listed() == 2

        more, _ = _segment_rows("rec-b", range(50, 1000), t0, b_prev)
        async with sessions() as s, s.begin():
            await s.execute(insert(Segment), more)
            await scan_gaps(s, now)
        large, gauges_after = await refresh()
        assert gauges_after == gauges
        assert large <= small * 1.2 + 20, (small, large)
    finally:
        await engine.dispose()
