"""Card full, on a real 8 MB filesystem (tmpfs, mounted by the test as root).

The recorder warns at the low-space mark (power LED blinks, LOW_SPACE beeps), keeps recording
down to the floor, then stops with the distinct STORAGE_FULL signal and tells the hub
(heartbeat state 'stopped_full', storage 'full'). Nothing pending is lost: the segments
waiting for upload stay, the segment recorded so far is sealed, and once the hub is back every
one of them is uploaded, in one unbroken chain.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import threading
import time
from pathlib import Path

import av
import pytest
from gpiozero.pins.mock import MockFactory
from lerec.device.app import RecorderApp
from lerec.device.settings import seal_reserve_bytes
from lerec.protocol import Heartbeat, decode_signed, keys, topics
from support.rig import fake_segment, make_store, raw_client, stored_segments
from test_app_support import app_settings, beeps, long_beeps, wait_for

CARD_BYTES = 8 * 1024 * 1024


@pytest.fixture
def small_card(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.fail("mounting the 8 MB test card (tmpfs) needs root; run the suite as root")
    card = tmp_path / "card"
    card.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={CARD_BYTES}", "tmpfs", str(card)],
                   check=True)
    try:
        yield card
    finally:
        subprocess.run(["umount", "-l", str(card)], check=False)


def _heartbeats(rig, device_id: str) -> tuple[list[Heartbeat], object]:
    """Listen as the hub to the recorder's heartbeats (verified with its key)."""
    got: list[Heartbeat] = []
    pub = keys.ed25519_public(rig.pki.device(device_id).signing_pub.read_bytes())
    c = raw_client(rig.pki, "hub", rig.port)
    ready = threading.Event()
    c.on_connect = lambda cl, *_: (cl.subscribe(topics.device_topic(device_id, "heartbeat"), 1),
                                   ready.set())
    c.on_message = lambda _c, _u, m: got.append(decode_signed(m.payload, Heartbeat).verify(pub))
    c.connect("127.0.0.1", rig.port)
    c.loop_start()
    assert ready.wait(10)
    return got, c


def test_card_full_stops_at_the_floor_and_loses_nothing(rig, tmp_path, small_card):
    extra = {"data_dir": str(small_card), "recorder": {
        "segment_seconds": 3, "prerecord_seconds": 0,
        "storage": {"spool_dir": str(small_card / "spool"), "low_space_bytes": 4_000_000,
                    "floor_bytes": 2_600_000, "check_interval_seconds": 0.3}}}
    settings = app_settings(rig, "rec-a", tmp_path, **extra)
    assert settings.recorder.storage.floor_bytes >= seal_reserve_bytes(settings.recorder)
    # segments recorded earlier, still waiting for the hub (which is down)
    early = make_store(rig.pki, "rec-a", small_card)
    waiting = [early.seal(fake_segment(early, 1_200_000)) for _ in range(3)]
    early.close()
    contents = {r.segment_id: hashlib.sha256(r.wire_path.read_bytes()).digest() for r in waiting}
    assert 4_000_000 < (free0 := os.statvfs(small_card).f_bavail * 4096) < 5_000_000, free0

    heartbeats, listener = _heartbeats(rig, "rec-a")
    factory = MockFactory()
    gpio = settings.recorder.gpio
    try:
        with RecorderApp(settings, pin_factory=factory) as app:
            buzzer, power = factory.pin(gpio.buzzer), factory.pin(gpio.power_led)
            time.sleep(1.0)
            buzzer.clear_states()
            power.clear_states()
            app.press("record")
            assert wait_for(lambda: app.recorder.state.recording, 5)
            assert wait_for(lambda: app.recorder.state.space == "low", 60), "warned first"
            assert app.recorder.state.recording, "keeps recording below the low-space mark"
            assert wait_for(lambda: app.recorder.state.space == "full", 90), "stopped at floor"
            assert not app.recorder.state.recording
            # Beeps so far: START 0.1 s, LOW_SPACE 2 x 0.4 s, STORAGE_FULL 3 x 0.6 s. A sleep
            # never ends early, but a loaded CI machine may wake the buzzer thread late (up to
            # ~0.15 s), so a 0.4 s beep is taken as 0.38-0.58 s and a 0.6 s one as >= 0.58 s:
            # still apart. Wait for the pattern, then a settle in which a repeat would show.
            assert wait_for(lambda: long_beeps(buzzer.states[1:], 0.58) >= 3, 15), \
                beeps(buzzer.states)
            time.sleep(1.0)
            lengths = beeps(buzzer.states)
            low_at = next(i for i, b in enumerate(lengths) if 0.38 <= b < 0.58)
            assert 0.38 <= lengths[low_at + 1] < 0.58, lengths           # LOW_SPACE: 2 x 0.4
            assert long_beeps(buzzer.states[1:], 0.58) == 3, lengths   # STORAGE_FULL: 3 x 0.6
            assert len(power.states) > 4, "power LED blinks while space is low or full"
            hb = app.heartbeat()
            assert (hb.state, hb.storage) == ("stopped_full", "full")
            assert wait_for(lambda: any(h.state == "stopped_full" and h.storage == "full"
                                        for h in heartbeats), 10), "the hub is told"
            assert any(h.storage == "low" and h.state == "recording" for h in heartbeats)

            # a press now is refused with the storage-full signal; nothing starts
            buzzer.clear_states()
            app.press("record")
            # the STORAGE_FULL pattern takes 2.2 s: wait for it, then a settle
            assert wait_for(lambda: long_beeps(buzzer.states, 0.55) >= 3, 15), \
                beeps(buzzer.states)
            time.sleep(0.5)
            assert not app.recorder.state.recording
            assert long_beeps(buzzer.states, 0.55) == 3, beeps(buzzer.states)

            # nothing lost: the waiting segments are untouched, every recording is sealed
            # (sealing runs in the background: wait for it rather than trusting the sleeps)
            spool = small_card / "spool"
            assert wait_for(lambda: not list(spool.iterdir()) and not app.sink.waiting, 30), \
                ("no plaintext or .part left", list(spool.iterdir()), app.sink.waiting)
            pending = app.store.pending()
            for r in waiting:
                assert r.wire_path.exists()
                assert hashlib.sha256(r.wire_path.read_bytes()).digest() == contents[r.segment_id]
            recorded = [r for r in pending if r.segment_id not in contents]
            assert len(recorded) >= 2
            total = len(pending)
            assert [r.seq for r in pending] == list(range(total))

            # the hub comes up: everything is uploaded, the card empties, recording can resume
            hub = rig.start_hub()
            assert wait_for(lambda: not app.store.pending(), 120), app.store.pending()
            assert wait_for(lambda: app.recorder.state.space == "ok", 10)
            assert wait_for(lambda: app.heartbeat().state == "idle", 5)
    finally:
        listener.loop_stop()
        listener.disconnect()
    rows = stored_segments(hub)
    assert [r.seq for r in rows] == list(range(total))
    for prev, cur in itertools.pairwise(rows):
        assert cur.prev_hash == hashlib.sha256(prev.manifest).digest()
    videos = [r for r in rows if r.media_type == "video/mp4" and r.segment_id not in contents]
    assert len(videos) == len(recorded)
    frames = 0
    for row in videos:   # every recorded segment plays, the one cut by the floor included
        with av.open(str(hub.service.store.path_for(row.stored_ref))) as c:
            assert c.streams.video[0].codec_context.name == "h264"
            frames += sum(1 for _ in c.decode(video=0))
    assert frames >= 5 * settings.recorder.video.fps, frames
