"""Small pure pieces: pre-record ring, OSD time blocks, config, clocks, backend selection."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from lerec.device.clock import ClockStatus, FakeClock, SystemClock, us_from_utc, utc_from_us
from lerec.device.errors import BackendUnavailable, DeviceError
from lerec.device.hw.factory import make_camera
from lerec.device.media.config import RecorderConfig
from lerec.device.media.osd import decode_time_blocks, draw_osd, draw_time_blocks
from lerec.device.media.output import MediaPacket
from lerec.device.media.prerecord import PrerecordBuffer
from pydantic import ValidationError


def _video(t_ms: int, key: bool) -> MediaPacket:
    return MediaPacket(b"v", key, t_ms * 1000, t_ms * 1000, audio=False)


def _audio(t_ms: int) -> MediaPacket:
    return MediaPacket(b"a", True, t_ms * 1000, t_ms * 1000, audio=True)


def test_prerecord_ring_is_keyframe_aligned_and_keeps_audio():
    ring = PrerecordBuffer(2.0)
    for t in range(0, 5000, 100):           # 10 fps, keyframe every second, audio in between
        ring.add(_video(t, key=t % 1000 == 0))
        ring.add(_audio(t + 50))
    packets = ring.drain(audio_only=False)
    assert packets[0].keyframe and not packets[0].audio
    assert packets[0].mono_us == 2_000_000   # newest keyframe at least 2 s before 4.95 s
    assert any(p.audio for p in packets)
    assert all(p.mono_us >= packets[0].mono_us for p in packets)
    audio = ring.drain(audio_only=True)
    assert audio and all(p.audio for p in audio)
    assert audio[0].mono_us >= 4_950_000 - 2_000_000


def test_prerecord_zero_keeps_latest_gop():
    ring = PrerecordBuffer(0.0)
    for t in range(0, 2500, 100):
        ring.add(_video(t, key=t % 1000 == 0))
    assert ring.drain(audio_only=False)[0].mono_us == 2_000_000


def test_time_blocks_round_trip():
    y = np.full((360, 640), 128, dtype=np.uint8)
    ms = 1_790_000_123_456
    draw_time_blocks(y, ms)
    assert decode_time_blocks(y) == ms
    y[340:352, :] = 128                       # destroyed -> None, never a wrong value
    assert decode_time_blocks(y) is None


def test_osd_draws_text_and_time():
    y = np.full((360, 640), 128, dtype=np.uint8)
    when = datetime(2026, 3, 1, 8, 30, 0, 123_000, tzinfo=UTC)
    draw_osd(y, when, timezone(timedelta(hours=8)), 7, "dev-1", "A1")
    assert decode_time_blocks(y) == us_from_utc(when) // 1000
    assert (y[:20] > 200).any() and (y[:20] < 30).any()   # text on a dark band


def test_config_rejects_unknown_keys_and_describes_fields(tmp_path):
    with pytest.raises(ValidationError):
        RecorderConfig.model_validate(
            {"device_id": "d", "storage": {"spool_dir": str(tmp_path)}, "colour": "red"})
    cfg = RecorderConfig.model_validate({"device_id": "d",
                                         "storage": {"spool_dir": str(tmp_path)}})
    assert cfg.prerecord_seconds == 30 and cfg.segment_seconds == 300
    for model in (RecorderConfig, type(cfg.video), type(cfg.audio), type(cfg.gpio),
                  type(cfg.storage)):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_fake_clock_is_settable():
    start = datetime(2030, 1, 1, tzinfo=UTC)
    clock = FakeClock(start, ticking=False)
    assert clock.now() == start
    clock.advance(1.5)
    assert clock.now() == start + timedelta(seconds=1.5)
    clock.set_sync("holdover")
    assert clock.status().sync == "holdover" and clock.status().trusted
    clock.set_sync("unsynced")
    assert not clock.status().trusted
    assert utc_from_us(us_from_utc(start)) == start


def test_system_clock(tmp_path):
    clock = SystemClock(flag_file=tmp_path / "synchronized")
    assert clock.now().tzinfo is not None
    assert clock.status().sync == "unsynced"
    (tmp_path / "synchronized").touch()
    assert clock.status().sync == "synced"
    clock.set_status(ClockStatus("holdover", "hub", 0.2))
    assert clock.status() == ClockStatus("holdover", "hub", 0.2)


def _on_a_pi() -> bool:
    try:
        return "Raspberry Pi" in Path("/proc/device-tree/model").read_text()
    except OSError:
        return False


def test_picamera2_backend_off_a_pi_is_a_clear_error(tmp_path):
    if _on_a_pi():
        pytest.skip("this checks the off-Pi error")  # pragma: no cover
    cfg = RecorderConfig.model_validate({"device_id": "d", "video": {"backend": "picamera2"},
                                         "storage": {"spool_dir": str(tmp_path)}})
    with pytest.raises(BackendUnavailable) as info:
        make_camera(cfg, FakeClock())
    assert isinstance(info.value, DeviceError) and isinstance(info.value, ImportError)
    assert info.value.backend == "picamera2"


@pytest.mark.pi
@pytest.mark.skipif(not _on_a_pi() or not os.environ.get("LEREC_PI_CAMERA"),
                    reason="needs a Raspberry Pi with a camera (set LEREC_PI_CAMERA=1)")
def test_picamera2_records_a_segment(tmp_path):  # pragma: no cover - hardware only
    import time

    from lerec.device.media.pipeline import PipelineSettings, RecordingPipeline

    cfg = RecorderConfig.model_validate({"device_id": "pi", "video": {"backend": "picamera2"},
                                         "storage": {"spool_dir": str(tmp_path)}})
    got = []
    cam = make_camera(cfg, FakeClock())
    pipe = RecordingPipeline(
        PipelineSettings(tmp_path, "pi", "", 1.0, 60.0, (cam.width, cam.height, cam.fps),
                         None), FakeClock(), type("S", (), {"segment_finished":
                                                            lambda self, s: got.append(s)})())
    pipe.start()
    cam.start(pipe)
    time.sleep(2)
    pipe.start_recording()
    time.sleep(2)
    pipe.stop_recording(wait=True)
    cam.stop()
    pipe.stop()
    assert got and got[0].frames > 0
