"""Chain of custody at app level, through the real broker and hub.

- ``kill -9`` of a ``lerec-recorder simulate`` process mid-recording, then a restart: the
  partial segment is recovered, sealed with ``recovered = True``, uploaded, plays at the hub
  and ends at most 2 s before the kill.
- A sealed segment tampered with on the card is refused by the hub (fatal 'tampered'), kept on
  the card, journaled as refused, shown by ``lerec-recorder status`` and logged by the hub.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
from gpiozero.pins.mock import MockFactory
from lerec.device.app import RecorderApp
from lerec.device.media.osd import decode_time_blocks
from support.rig import stored_segments
from test_app_support import app_settings, hub_rejections, settings_dict, to_toml, wait_for

LEREC_RECORDER = Path(sys.executable).parent / "lerec-recorder"


def _start(config: Path, log: Path) -> subprocess.Popen[str]:
    with open(log, "a") as err:   # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [str(LEREC_RECORDER), "--config", str(config), "simulate"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("keys:"), line + log.read_text()[-3000:]
    return proc


def _key(proc: subprocess.Popen[str], key: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(key + "\n")
    proc.stdin.flush()


def test_kill_9_mid_recording_then_restart_recovers_and_uploads(rig, tmp_path):
    hub = rig.start_hub()
    config = tmp_path / "recorder.toml"
    config.write_text(to_toml(settings_dict(rig, "rec-a", tmp_path,
                                            recorder={"segment_seconds": 120})))
    log = tmp_path / "recorder.log"
    proc = _start(config, log)
    try:
        time.sleep(2.0)
        _key(proc, "r")
        time.sleep(5.0)
        kill_ms = time.time_ns() // 1_000_000
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    spool = tmp_path / "card" / "spool"
    assert len(list(spool.glob("*.mp4.part"))) == 1, list(spool.iterdir())
    assert stored_segments(hub) == []

    proc = _start(config, log)
    try:
        rows = wait_for(lambda: stored_segments(hub), 60)
        _key(proc, "q")
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(rows) == 1 and rows[0].recovered, log.read_text()[-3000:]
    assert not list(spool.iterdir()), "nothing left in the spool"
    with av.open(str(hub.service.store.path_for(rows[0].stored_ref))) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        frames = [decode_time_blocks(f.to_ndarray(format="gray")) for f in c.decode(video=0)]
    assert len(frames) > 3 * 15
    assert kill_ms - frames[-1] <= 2000, f"lost {kill_ms - frames[-1]} ms"
    status = subprocess.run([str(LEREC_RECORDER), "--config", str(config), "status"],
                            check=False, capture_output=True, text=True, timeout=30)
    assert "0 pending" in status.stdout and "1 receipted" in status.stdout, status.stdout


def test_segment_tampered_on_the_card_is_refused_and_kept(rig, tmp_path):
    hub = rig.start_hub()
    data = settings_dict(rig, "rec-b", tmp_path)
    settings = app_settings(rig, "rec-b", tmp_path)
    with RecorderApp(settings, pin_factory=MockFactory()) as app:
        app.uploader.paused.set()       # hold the upload until the file is tampered with
        app.press("record")
        time.sleep(2.0)
        app.press("record")
        row = wait_for(lambda: app.store.pending() and app.store.pending()[0], 30)
        with open(row.wire_path, "r+b") as f:
            f.seek(row.wire_length // 2)
            byte = f.read(1)
            f.seek(row.wire_length // 2)
            f.write(bytes([byte[0] ^ 0x40]))
        app.uploader.paused.clear()
        assert wait_for(lambda: app.store.journal.get(row.seq).state == "refused", 60)
        assert app.store.journal.refusal(row.seq)[0] == "tampered"
        assert app.heartbeat().pending_segments == 0
    assert row.wire_path.exists(), "a refused segment stays on the card"
    assert stored_segments(hub) == []
    rejections = [r for r in hub_rejections(hub) if r.segment_id == row.segment_id]
    # chunks already in flight when the hub discarded the segment are refused as 'no_transfer'
    assert rejections[0].code == "tampered"
    assert {r.code for r in rejections[1:]} <= {"no_transfer"}

    config = tmp_path / "recorder.toml"
    config.write_text(to_toml(data))
    out = subprocess.run([str(LEREC_RECORDER), "--config", str(config), "status"],
                         check=False, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert f"REFUSED  seq {row.seq:6d}  {row.segment_id}  [tampered]" in out.stdout, out.stdout
    assert "1 refused" in out.stdout
