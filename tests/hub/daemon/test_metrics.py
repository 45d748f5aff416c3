"""The hub serves Prometheus metrics and structured logs: scraped over HTTP from a running hub."""

from __future__ import annotations

import json
import logging
import urllib.request

from lerec.hub.daemon.logs import JsonFormatter
from lerec.protocol import topics
from prometheus_client.parser import text_string_to_metric_families
from support.rig import fake_segment, raw_client


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
    c.publish(topics.device_topic("rec-a", "manifest"), row.manifest, qos=1).wait_for_publish(5)
    c.publish(topics.device_topic("rec-a", "heartbeat"), b"\xa0garbage", qos=1).wait_for_publish(5)
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
