"""The real mosquitto restarts with its persistence wiped (a fresh broker: no stored session,
no subscription, nothing queued). The hub must subscribe again by itself: a segment in flight
during the restart and one sealed afterwards are both stored exactly once and receipted.

(test_broker_restart.py restarts a broker that keeps its persistence, where the hub's
subscriptions survive in its stored session: that passes even if the hub never resubscribed.)
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time

from lerec.hub import fleet
from lerec.protocol import DeviceConfig, Receipt, decode_signed, keys, topics
from support.rig import fake_segment, raw_client, stored_segments

SIZE = 600_000


def _wipe_restart(rig) -> None:
    """Stop mosquitto, delete everything it persisted, start it again on the same port."""
    rig.broker.stop()
    persist = rig.broker.data_dir / "persist"
    assert persist.is_dir()
    shutil.rmtree(persist)
    rig.broker.start()  # renders the config again and creates an empty persistence folder
    assert not any((rig.broker.data_dir / "persist").iterdir())


def test_hub_resubscribes_after_a_broker_restart_with_fresh_state(rig, caplog):
    caplog.set_level(logging.INFO, logger="lerec.hub.daemon.mqtt")
    hub = rig.start_hub()
    store, up = rig.recorder("rec-a", chunk_size=16 * 1024, window=4, reply_timeout=2.0,
                             max_backoff=2.0)
    contents: dict[int, bytes] = {}

    def seal() -> int:
        seg = fake_segment(store, SIZE)
        data = seg.path.read_bytes()
        row = store.seal(seg)
        contents[row.seq] = data
        return row.seq

    seal()
    up.start()
    assert up.wait_idle(60), "the first segment was not receipted"
    assert hub.service.bridge.connects == 1

    # A second segment is being uploaded when the broker goes away and comes back empty.
    seal()
    restarted = threading.Event()
    in_flight: list[int] = []

    def restart_mid_upload() -> None:
        deadline = time.monotonic() + 60
        while up.stats.chunks_sent < SIZE // (16 * 1024) + 10 and time.monotonic() < deadline:
            time.sleep(0.005)
        in_flight.extend(r.seq for r in store.pending())
        _wipe_restart(rig)
        restarted.set()

    t = threading.Thread(target=restart_mid_upload)
    t.start()
    t.join(90)
    assert restarted.is_set(), "the broker was never restarted"
    assert in_flight == [1], "the broker restarted while the second segment was uploading"

    # And one sealed after the restart.
    seal()
    assert up.wait_idle(120), "segments still pending after the broker came back empty"

    reconnects = [r.getMessage() for r in caplog.records
                  if r.getMessage().startswith("connected to broker")]
    assert len(reconnects) >= 2 and hub.service.bridge.connects >= 2
    assert "session present: False" in reconnects[-1], \
        "the broker still had the hub's session: the test did not wipe it"

    rows = stored_segments(hub)
    assert [(r.device_id, r.seq) for r in rows] == [("rec-a", s) for s in sorted(contents)]
    hub_pub = keys.ed25519_public(rig.pki.hub_signing_pub.read_bytes())
    for r in rows:
        data = contents[r.seq]
        assert r.sha256 == hashlib.sha256(data).hexdigest()
        assert hub.service.store.path_for(r.stored_ref).read_bytes() == data
        decode_signed(r.receipt, Receipt).verify(hub_pub)
    assert [store.journal.get(s).state for s in sorted(contents)] == ["receipted"] * 3
    assert hub.service.ingest.stats.segments_stored == 3, "nothing counted twice"


def test_recorder_configs_are_published_again_when_the_broker_comes_back_empty(rig):
    """The broker keeps each recorder's officer binding as a retained message. Wiped, a
    recorder connecting afterwards would get none: the hub, finding no session of its own on
    the broker, publishes every configured recorder's config again, freshly signed."""
    hub = rig.start_hub()
    svc = hub.service
    first = hub.call(fleet.assign(svc.sessions, "rec-a", "officer-1", svc.signing_key,
                                  svc.cfg.devices))
    assert hub.call(fleet.latest_configs(svc.sessions))[0].config.config_seq == \
        first.config.config_seq  # (rec-b and rec-c were never configured)
    before_ms = int(time.time() * 1000)
    _wipe_restart(rig)
    deadline = time.monotonic() + 60
    while svc.bridge.connects < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert svc.bridge.connects >= 2 and not svc.bridge.session_present

    got: list[bytes] = []
    seen = threading.Event()
    c = raw_client(rig.pki, "rec-a", rig.port)

    def on_message(_c, _u, msg):
        if msg.retain and msg.payload:
            got.append(msg.payload)
            seen.set()

    c.on_message = on_message
    c.on_connect = lambda cl, *a: cl.subscribe(topics.hub_topic("rec-a", "config"), qos=1)
    c.connect("127.0.0.1", rig.port)
    c.loop_start()
    try:
        assert seen.wait(30), "no retained config for rec-a after the broker came back empty"
    finally:
        c.disconnect()
        c.loop_stop()
    config = decode_signed(got[-1], DeviceConfig)
    config.verify(keys.ed25519_public(rig.pki.hub_signing_pub.read_bytes()))
    cfg = config.message
    assert cfg.device_id == "rec-a" and cfg.officer_id == "officer-1"
    assert cfg.config_seq > first.config.config_seq and cfg.issued_ms >= before_ms
