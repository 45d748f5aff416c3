"""A button press on a simulated recorder ends as a verified, stored, receipted clip.

Real parts only: gpiozero's MockFactory pins for the button, PyAV/libx264 for the H.264 MP4
with the time burned in, the recorder's clip store and uploader, mosquitto with the deploy/
TLS+ACL config, the hub with SQLite and the local store.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import av
from gpiozero.pins.mock import MockFactory

from lerec.device.app import RecorderApp
from lerec.device.media.osd import decode_time_blocks
from lerec.device.settings import DeviceSettings

from support.rig import stored_segments


def settings_for(rig, device_id: str, root: Path) -> DeviceSettings:
    f = rig.pki.device(device_id)
    return DeviceSettings.model_validate({
        "data_dir": str(root / "card"),
        "recorder": {
            "device_id": device_id, "officer_id": "zf-0007", "prerecord_seconds": 2,
            "segment_seconds": 60,
            "gpio": {"pin_factory": "mock"},
            "storage": {"spool_dir": str(root / "card" / "spool"), "low_space_bytes": 0,
                        "floor_bytes": 0},
        },
        "hub": {"host": "127.0.0.1", "port": rig.port, "ca": str(f.ca), "cert": str(f.cert),
                "key": str(f.key), "signing_key": str(f.signing_key),
                "hub_signing_pub": str(f.hub_signing_pub), "hub_box_pub": str(f.hub_box_pub),
                "heartbeat_seconds": 1, "reply_timeout_seconds": 5},
    })


def test_button_press_to_receipted_clip(rig, tmp_path):
    hub = rig.start_hub()
    settings = settings_for(rig, "rec-a", tmp_path / "rec-a")
    factory = MockFactory()
    with RecorderApp(settings, pin_factory=factory) as app:
        time.sleep(3.0)  # fill the pre-record buffer
        pressed_at = dt.datetime.now(dt.timezone.utc)
        app.press("record")
        time.sleep(3.0)
        app.press("record")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (app.store.last_seq() < 0 or app.store.pending()):
            time.sleep(0.2)
        assert app.store.last_seq() == 0 and not app.store.pending()
    rows = stored_segments(hub)
    assert [(r.device_id, r.officer_id, r.media_type) for r in rows] == [
        ("rec-a", "zf-0007", "video/mp4")]
    path = hub.service.store.path_for(rows[0].stored_ref)
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio, "sound is recorded with the picture"
        first = next(c.decode(video=0))
        burned_ms = decode_time_blocks(first.to_ndarray(format="gray"))
    burned = dt.datetime.fromtimestamp(burned_ms / 1000, dt.timezone.utc)
    assert burned < pressed_at - dt.timedelta(seconds=1), "clip starts before the press"
    assert not list((tmp_path / "rec-a" / "card" / "sealed").glob("*.seg"))
    assert not list((tmp_path / "rec-a" / "card" / "spool").glob("*.mp4*"))


def test_demo_command_runs_the_whole_system(tmp_path):
    """README command (a), minus the serving: broker, hub, admin, two recorders."""
    demo = Path(sys.executable).parent / "lerec-demo"
    proc = subprocess.run(
        [str(demo), "--data", str(tmp_path / "demo"), "--once", "--mqtt-port", "0",
         "--admin-port", "0"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rec-001 seq 0" in proc.stdout and "rec-002 seq 0" in proc.stdout
    assert (tmp_path / "demo" / "hub" / "lerec.db").exists()
    # the admin service signs requesters' exports with the hub CA's C2PA signer (第二十九条)
    from lerec.hub.admin.__main__ import _settings, parser
    from lerec.hub.admin.exporting import unconfigured_reason

    settings = _settings(parser().parse_args(["serve", "--config",
                                              str(tmp_path / "demo" / "hub.toml")]))
    assert settings.c2pa_cert is not None and unconfigured_reason(settings) is None
