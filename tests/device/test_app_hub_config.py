"""Officer binding and time from the hub's signed, retained config; heartbeats at the hub.

The assignment goes through the real ``lerec-hub assign`` command against the rig's database
and broker; the skewed hub time is a DeviceConfig signed with the hub key from the PKI.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory
from lerec.device.app import RecorderApp
from lerec.device.clock import ClockStatus, FakeClock
from lerec.protocol import DeviceConfig, keys, sign_message, topics
from support.rig import raw_client, stored_segments
from test_app_support import app_settings, beeps, hub_device, wait_for

LEREC_HUB = Path(sys.executable).parent / "lerec-hub"


def _hub_toml(rig, path: Path) -> Path:
    cfg, b = rig.hub.cfg, rig.hub.cfg.broker
    path.write_text(f"""
hub_id = "hub"
database_url = "{cfg.database_url}"
storage_dir = "{cfg.storage_dir}"
signing_key = "{cfg.signing_key}"
box_key = "{cfg.box_key}"
[broker]
host = "127.0.0.1"
port = {b.port}
ca = "{b.ca}"
cert = "{b.cert}"
key = "{b.key}"
""")
    return path


def _assign(toml: Path, device_id: str, officer: str) -> None:
    out = subprocess.run([str(LEREC_HUB), "--config", str(toml), "assign", device_id, officer],
                         check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def _record(app: RecorderApp, seconds: float = 1.5) -> int:
    before = app.store.last_seq()
    app.press("record")
    time.sleep(seconds)
    app.press("record")
    assert wait_for(lambda: app.store.last_seq() > before and not app.store.pending(), 40)
    return app.store.last_seq()


def test_officer_assignment_reaches_the_next_manifest_and_survives_a_reboot(rig, tmp_path):
    hub = rig.start_hub()
    toml = _hub_toml(rig, tmp_path / "hub.toml")
    settings = app_settings(rig, "rec-a", tmp_path)
    with RecorderApp(settings, pin_factory=MockFactory()) as app:
        assert app.officer_id == "unassigned"
        assert wait_for(lambda: app.uploader.connected.is_set(), 15)
        first = _record(app)
        _assign(toml, "rec-a", "zf-0101")
        assert wait_for(lambda: app.officer_id == "zf-0101", 15)
        # the assign was published live: it is also a reading of the hub's clock
        assert wait_for(lambda: app.clock.status().source == "hub", 5)
        assert app.clock.status().sync == "synced"
        assert abs(app.clock.status().offset_seconds) < 5
        second = _record(app)
        _assign(toml, "rec-a", "zf-0202")
        assert wait_for(lambda: app.officer_id == "zf-0202", 15)
        third = _record(app)
        assert app.camera._officer_id == "zf-0202", "burned into the OSD from now on"
        assert app.heartbeat().officer_id == "zf-0202"
    rows = {r.seq: r for r in stored_segments(hub)}
    assert [rows[s].officer_id for s in (first, second, third)] == [
        "unassigned", "zf-0101", "zf-0202"]
    assert rows[second].clock_state == "synced"

    # reboot with the broker down: the binding comes from the card, not from the hub
    rig.broker.stop()
    with RecorderApp(settings, pin_factory=MockFactory()) as app:
        assert app.officer_id == "zf-0202"


def test_hub_time_ten_minutes_off_flags_the_clock(rig, tmp_path):
    hub = rig.start_hub()
    clock = FakeClock(status=ClockStatus("unsynced", "none"))
    settings = app_settings(rig, "rec-b", tmp_path)
    factory = MockFactory()
    gpio = settings.recorder.gpio
    with RecorderApp(settings, pin_factory=factory, clock=clock) as app:
        assert wait_for(lambda: app.uploader.connected.is_set(), 15)
        # a retained config is replayed at connect: it binds, but is no time reading
        key = keys.ed25519_private(rig.pki.hub_signing_key.read_bytes())
        now_ms = int(time.time() * 1000)

        def publish(seq: int, issued_ms: int) -> None:
            cfg = DeviceConfig("rec-b", "zf-0303", seq, issued_ms, 300, 30, 1, 3000)
            c = raw_client(rig.pki, "hub", rig.port)
            c.connect("127.0.0.1", rig.port)
            c.loop_start()
            c.publish(topics.hub_topic("rec-b", "config"), sign_message(cfg, key), qos=1,
                      retain=True).wait_for_publish(10)
            c.loop_stop()
            c.disconnect()

        publish(1, now_ms)   # in sync
        assert wait_for(lambda: clock.status().sync == "synced", 10)
        time.sleep(1.0)
        buzzer, power = factory.pin(gpio.buzzer), factory.pin(gpio.power_led)
        buzzer.clear_states()
        power.clear_states()
        publish(2, int(time.time() * 1000) - 600_000)   # the hub says: 10 minutes earlier
        assert wait_for(lambda: clock.status().sync == "unsynced", 10)
        assert clock.status().offset_seconds == pytest.approx(600, abs=5)
        assert wait_for(lambda: not app.recorder.state.clock_trusted, 5)
        assert wait_for(lambda: len(beeps(buzzer.states)) >= 3, 10), buzzer.states
        lengths = beeps(buzzer.states)
        # CLOCK_UNTRUSTED: short 0.05 s, long 0.3 s, short 0.05 s. A sleep never ends early,
        # but a loaded CI machine may wake the buzzer thread late (up to ~0.15 s); the short
        # beeps (<= 0.2 s) stay clearly apart from the long one (>= 0.28 s).
        short, long_, short2 = lengths[:3]
        assert 0.04 <= short <= 0.2 and 0.04 <= short2 <= 0.2, lengths
        assert 0.28 <= long_ <= 0.6, lengths
        assert wait_for(lambda: len(power.states) > 2, 10), "power LED blinks"
        hb = app.heartbeat()
        assert hb.clock.state == "unsynced"
        assert hb.clock.offset_ms == pytest.approx(600_000, abs=5000)
        seq = _record(app)
        dev = wait_for(lambda: (d := hub_device(hub, "rec-b")) is not None
                       and d.last_seq_reported == seq and d, 10)
        assert dev.last_seen_at is not None, "heartbeats reach the hub"
    row = next(r for r in stored_segments(hub) if r.seq == seq)
    assert row.clock_state == "unsynced"
    assert row.clock_offset_ms == pytest.approx(600_000, abs=5000)
    assert row.officer_id == "zf-0303"


def test_heartbeats_carry_the_recorder_state(rig, tmp_path):
    hub = rig.start_hub()
    settings = app_settings(rig, "rec-c", tmp_path)
    with RecorderApp(settings, pin_factory=MockFactory()) as app:
        assert wait_for(lambda: hub_device(hub, "rec-c").last_seen_at is not None, 15)
        seen = hub_device(hub, "rec-c").last_seen_at
        app.press("record")
        assert wait_for(lambda: app.heartbeat().state == "recording", 5)
        hb = app.heartbeat()
        assert hb.last_seq == -1 and hb.battery_pct is None and hb.free_bytes > 0
        assert hb.storage == "ok" and hb.firmware.startswith("lerec-recorder/")
        time.sleep(1.5)
        app.press("record")
        assert wait_for(lambda: hub_device(hub, "rec-c").last_seq_reported == 0, 30)
        assert hub_device(hub, "rec-c").last_seen_at > seen, "every heartbeat_seconds"
        app.uploader.paused.set()
        seq = _record_paused(app)
        hb = app.heartbeat()
        assert (hb.last_seq, hb.pending_segments) == (seq, 1) and hb.pending_bytes > 0
        app.uploader.paused.clear()


def _record_paused(app: RecorderApp) -> int:
    before = app.store.last_seq()
    app.press("record")
    time.sleep(1.0)
    app.press("record")
    assert wait_for(lambda: app.store.last_seq() > before, 30)
    return app.store.last_seq()


def test_hub_pushes_its_time_to_a_managed_recorder_that_connects_unsynced(rig, tmp_path):
    """The retained config a recorder finds at connect binds it but is no time reading; the
    hub answers the recorder's first (unsynced) heartbeat with a fresh, live config."""
    hub = rig.start_hub()
    _assign(_hub_toml(rig, tmp_path / "hub.toml"), "rec-c", "zf-0404")
    time.sleep(1.0)  # the assignment is now only a retained message on the broker
    clock = FakeClock(status=ClockStatus("unsynced", "none"))
    settings = app_settings(rig, "rec-c", tmp_path)
    with RecorderApp(settings, pin_factory=MockFactory(), clock=clock) as app:
        assert wait_for(lambda: app.officer_id == "zf-0404", 15), "bound by the retained config"
        assert wait_for(lambda: clock.status().sync == "synced", 20), clock.status()
        assert clock.status().source == "hub"
        assert app.officer_id == "zf-0404", "the time sync keeps the hub's binding"
    assert hub.service.timesync.pushed >= 1
