"""Simulated camera: a moving test pattern (or a looped video file) encoded with libx264.

Paced in real time on the monotonic clock, with the same OSD as the real camera, so it drives
the recording pipeline exactly as the Pi does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import numpy as np
from lerec.device.clock import Clock
from lerec.device.errors import HardwareError
from lerec.device.media.codecs import H264Encoder
from lerec.device.media.config import VideoConfig
from lerec.device.media.osd import draw_osd
from lerec.device.media.output import Output, monotonic_us

log = logging.getLogger(__name__)


def osd_zone(name: str | None) -> tzinfo | None:
    """The OSD time zone (None: system local)."""
    return ZoneInfo(name) if name else None


def _pattern(width: int, height: int) -> Iterator[np.ndarray]:
    """Endless moving YUV420p test pattern: scrolling luma ramp, a bouncing box, colour bars."""
    ramp = (np.arange(width * 2) * 255 // (width * 2)).astype(np.uint8)
    chroma_h, chroma_w = height // 2, width // 2
    u = np.tile(np.linspace(64, 192, chroma_w, dtype=np.uint8), (chroma_h, 1))
    v = np.tile(np.linspace(192, 64, chroma_h, dtype=np.uint8)[:, None], (1, chroma_w))
    uv = np.concatenate([u.reshape(-1), v.reshape(-1)]).reshape(height // 2, width)
    n = 0
    while True:
        frame = np.empty((height * 3 // 2, width), dtype=np.uint8)
        shift = (n * 4) % width
        frame[:height] = ramp[shift: shift + width]
        box = 48
        bx = (n * 7) % max(1, width - box)
        by = height // 3 + int((height // 4) * np.sin(n / 10))
        frame[by: by + box, bx: bx + box] = 255 - frame[by: by + box, bx: bx + box]
        frame[height:] = uv
        yield frame
        n += 1


def _file_frames(path: Path, width: int, height: int) -> Iterator[np.ndarray]:
    """Endless frames from a video file, scaled to YUV420p, looping at the end."""
    while True:
        produced = 0
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                yield frame.reformat(width, height, "yuv420p").to_ndarray()
                produced += 1
        if produced == 0:
            raise HardwareError("simulated camera", f"no video frames in {path}")


class SimCamera:
    """Implements :class:`lerec.device.hw.base.Camera` without hardware."""

    def __init__(self, config: VideoConfig, clock: Clock, device_id: str,
                 officer_id: str = "") -> None:
        self.width, self.height, self.fps = config.width, config.height, config.fps
        self._config = config
        self._clock = clock
        self._device_id = device_id
        self._officer_id = officer_id
        self._tz = osd_zone(config.osd_timezone)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.frames = 0

    def set_officer(self, officer_id: str) -> None:
        self._officer_id = officer_id

    def start(self, output: Output) -> None:
        if self._thread is not None:
            raise HardwareError("simulated camera", "already started")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, args=(output,),
                                        name="lerec-sim-camera", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self, output: Output) -> None:
        cfg = self._config
        encoder = H264Encoder(cfg.width, cfg.height, cfg.fps, cfg.bitrate, cfg.gop, cfg.preset)
        source = (_file_frames(cfg.source_file, cfg.width, cfg.height) if cfg.source_file
                  else _pattern(cfg.width, cfg.height))
        period = 1.0 / cfg.fps
        t0 = time.monotonic()
        try:
            while not self._stopping.is_set():
                due = t0 + self.frames * period
                delay = due - time.monotonic()
                if delay > 0:
                    if self._stopping.wait(delay):
                        break
                elif delay < -1.0:  # fell far behind (suspended?): resync instead of bursting
                    log.warning("simulated camera fell %.1f s behind; skipping frames", -delay)
                    t0 = time.monotonic() - self.frames * period
                mono = monotonic_us()
                yuv = next(source)
                if not yuv.flags.writeable:
                    yuv = yuv.copy()
                draw_osd(yuv[: cfg.height], self._clock.now(), self._tz, self.frames,
                         self._device_id, self._officer_id)
                for data, key, pts in encoder.encode(yuv, mono):
                    output.outputframe(data, key, pts)
                self.frames += 1
        except Exception:
            log.exception("simulated camera stopped on an error")
            raise
        finally:
            encoder.close()
