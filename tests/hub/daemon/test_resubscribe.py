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

import pytest
from support.rig import fake_segment, raw_client, stored_segments

from lerec.hub import fleet
from lerec.protocol import DeviceConfig, Receipt, decode_signed, keys, topics

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


def _config_delivered(rig, *, retained: bool) -> bytes | None:
    """The config rec-a gets within 30 s of subscribing (only a retained one if ``retained``)."""
    got: list[bytes] = []
    seen = threading.Event()
    c = raw_client(rig.pki, "rec-a", rig.port)

    def on_message(_c, _u, msg):
        if msg.payload and (msg.retain or not retained):
            got.append(msg.payload)
            seen.set()

    c.on_message = on_message
    c.on_connect = lambda cl, *a: cl.subscribe(topics.hub_topic("rec-a", "config"), qos=1)
    c.connect("127.0.0.1", rig.port)
    c.loop_start()
    try:
        seen.wait(30)
    finally:
        c.disconnect()
        c.loop_stop()
    return got[-1] if got else None


def _wait(pred, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(pred())


@pytest.mark.parametrize("share_group", [None, "ingest"], ids=["persistent", "shared"])
def test_recorder_configs_are_published_again_when_the_broker_comes_back_empty(rig,
                                                                               share_group):
    """The broker keeps each recorder's officer binding as a retained message. Wiped, a
    recorder connecting afterwards would get none: the hub asks the broker, after every
    connect, which configs it retains, and publishes the missing ones again, freshly signed.
    Also as a worker of a shared subscription, which never finds a session of its own on the
    broker and so cannot tell a wiped broker from its own session."""
    hub = rig.start_hub(share_group=share_group)
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

    # The hub asks the broker what it retains before it publishes again: a recorder that
    # subscribed first gets the config live, one that connects later gets it retained.
    assert _config_delivered(rig, retained=False), \
        "no config for rec-a after the broker came back empty"
    got = _config_delivered(rig, retained=True)
    assert got, "the config published again is not retained"
    config = decode_signed(got, DeviceConfig)
    config.verify(keys.ed25519_public(rig.pki.hub_signing_pub.read_bytes()))
    cfg = config.message
    assert cfg.device_id == "rec-a" and cfg.officer_id == "officer-1"
    assert cfg.config_seq > first.config.config_seq and cfg.issued_ms >= before_ms


def test_a_broker_that_kept_its_configs_gets_none_again(rig, caplog):
    """A broker restarted with its persistence still retains every config: the check after
    the reconnect publishes nothing (no new config is signed)."""
    caplog.set_level(logging.INFO, logger="lerec.hub.daemon.service")
    hub = rig.start_hub()
    svc = hub.service
    assert _wait(lambda: svc.config_checks >= 1)
    first = hub.call(fleet.assign(svc.sessions, "rec-a", "officer-1", svc.signing_key,
                                  svc.cfg.devices))
    hub.call(svc.bridge.publish(topics.hub_topic("rec-a", "config"), first.wire, retain=True))
    assert _config_delivered(rig, retained=True) == first.wire
    rig.broker.restart()
    assert _wait(lambda: svc.bridge.connects >= 2 and svc.config_checks >= 2)
    assert "the broker retains the current config of all 1 recorder(s)" in caplog.text
    latest = hub.call(fleet.latest_configs(svc.sessions))
    assert [c.config.config_seq for c in latest] == [first.config.config_seq]
    assert _config_delivered(rig, retained=True) == first.wire
