"""Raspberry Pi camera through picamera2 with the hardware H.264 encoder.

The ONLY module that imports picamera2, and only when a :class:`PicameraCamera` is created
(picamera2 does not import off a Pi). The OSD is drawn on the YUV420 main stream in
picamera2's ``pre_callback``, so the hardware encoder sees it on every frame.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from lerec.device.clock import Clock
from lerec.device.errors import BackendUnavailable, HardwareError
from lerec.device.hw.sim_camera import osd_zone
from lerec.device.media.config import VideoConfig
from lerec.device.media.osd import draw_osd
from lerec.device.media.output import Output, monotonic_us

log = logging.getLogger(__name__)


def _boottime_to_monotonic_us() -> int:
    """Offset that turns libcamera's sensor timestamps (CLOCK_BOOTTIME) into monotonic µs."""
    return int(monotonic_us() - time.clock_gettime_ns(time.CLOCK_BOOTTIME) // 1000)


class PicameraCamera:
    """Implements :class:`lerec.device.hw.base.Camera` on a Pi camera module."""

    def __init__(self, config: VideoConfig, clock: Clock, device_id: str,
                 officer_id: str = "") -> None:
        try:
            import picamera2
            import picamera2.encoders
            import picamera2.outputs
        except ImportError as exc:
            raise BackendUnavailable(
                "picamera2", "runs only on Raspberry Pi OS: apt install python3-picamera2 and "
                "create the venv with --system-site-packages") from exc
        self._p2 = picamera2
        self.width, self.height, self.fps = config.width, config.height, config.fps
        self._config = config
        self._clock = clock
        self._device_id = device_id
        self._officer_id = officer_id
        self._tz = osd_zone(config.osd_timezone)
        self._cam: Any = None
        self._frame_no = 0

    def set_officer(self, officer_id: str) -> None:
        self._officer_id = officer_id

    def _draw(self, request: Any) -> None:
        with self._p2.MappedArray(request, "main") as m:
            draw_osd(m.array[: self.height], self._clock.now(), self._tz, self._frame_no,
                     self._device_id, self._officer_id)
        self._frame_no += 1

    def start(self, output: Output) -> None:
        p2 = self._p2
        cfg = self._config
        offset = _boottime_to_monotonic_us()

        class _Bridge(p2.outputs.Output):  # type: ignore[misc,name-defined]
            def outputframe(self, frame: Any, keyframe: bool = True,
                            timestamp: int | None = None, packet: Any = None,
                            audio: bool = False) -> None:
                ts = None if timestamp is None else timestamp + offset
                output.outputframe(bytes(frame), keyframe, ts)

        try:
            cam = p2.Picamera2()
            video_cfg = cam.create_video_configuration(
                main={"size": (cfg.width, cfg.height), "format": "YUV420"},
                controls={"FrameRate": cfg.fps})
            cam.configure(video_cfg)
            cam.pre_callback = self._draw
            encoder = p2.encoders.H264Encoder(bitrate=cfg.bitrate, repeat=True,
                                              iperiod=cfg.gop)
            cam.start_recording(encoder, _Bridge())
        except Exception as exc:
            raise HardwareError("camera", str(exc)) from exc
        self._cam = cam
        log.info("picamera2 started %dx%d@%d", cfg.width, cfg.height, cfg.fps)

    def stop(self) -> None:
        if self._cam is not None:
            self._cam.stop_recording()
            self._cam.close()
            self._cam = None
