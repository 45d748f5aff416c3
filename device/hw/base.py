"""The hardware interfaces the recording pipeline depends on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from lerec.device.media.output import Output

# (int16 samples shaped (n, channels), monotonic microseconds of the first sample)
AudioCallback = Callable[[np.ndarray, int], None]


class Camera(Protocol):
    """A camera with its H.264 encoder: pushes encoded packets into an output.

    Packets are Annex B access units, SPS/PPS on every keyframe, no B-frames; timestamps in
    monotonic microseconds. Every frame carries the OSD (time, device, officer).
    """

    width: int
    height: int
    fps: int

    def start(self, output: Output) -> None: ...

    def stop(self) -> None: ...

    def set_officer(self, officer_id: str) -> None: ...


class Microphone(Protocol):
    """A PCM source: calls ``callback(samples, mono_us)`` in real time from its own thread."""

    sample_rate: int
    channels: int

    def start(self, callback: AudioCallback) -> None: ...

    def stop(self) -> None: ...
