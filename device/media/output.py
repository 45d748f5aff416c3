"""The output contract (picamera2 style) and the packet the pipeline passes around.

An output is anything with ``start()``, ``stop()`` and
``outputframe(frame, keyframe=True, timestamp=None, audio=False)``. ``frame`` is one encoded
packet (H.264 Annex B access unit or one raw AAC frame), ``timestamp`` the capture time in
microseconds on ``time.monotonic()`` (so file timing never jumps when the wall clock is
corrected), ``audio`` tells the two streams apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


def monotonic_us() -> int:
    """Microseconds on the monotonic clock: the time base of every packet timestamp."""
    return time.monotonic_ns() // 1000


class Output(Protocol):
    """Receives encoded packets."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def outputframe(
        self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
        audio: bool = False,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class MediaPacket:
    """One encoded packet with its capture time on both clocks."""

    data: bytes
    keyframe: bool
    mono_us: int
    wall_us: int
    audio: bool
