"""The pre-record ring: keeps the last N seconds of packets, keyframe-aligned, audio included.

Like picamera2's CircularOutput, but as a plain data structure driven by the pipeline's writer
thread. It always keeps at least one whole GOP, so even with a 0 s pre-record a recording can
start at once, from the latest keyframe.

The window can change while the ring runs (:meth:`PrerecordBuffer.set_window`, the hub's
config): a shorter window drops the older packets at once; a longer one fills up as packets
arrive, since what was dropped is gone (nothing is invented).
"""

from __future__ import annotations

from collections import deque

from lerec.device.media.output import MediaPacket


class PrerecordBuffer:
    def __init__(self, seconds: float) -> None:
        self.window_us = int(seconds * 1_000_000)
        self._packets: deque[MediaPacket] = deque()
        self._keyframes: deque[int] = deque()   # mono_us of video keyframes in the ring

    def __len__(self) -> int:
        return len(self._packets)

    def set_window(self, seconds: float) -> None:
        """Keep ``seconds`` from now on: shrinking trims now (relative to the newest packet),
        growing lets the ring fill up over the following packets."""
        self.window_us = int(seconds * 1_000_000)
        if self._packets:
            self._trim(self._packets[-1].mono_us)

    def add(self, pkt: MediaPacket) -> None:
        self._packets.append(pkt)
        if pkt.keyframe and not pkt.audio:
            self._keyframes.append(pkt.mono_us)
        self._trim(pkt.mono_us)

    def _trim(self, newest_us: int) -> None:
        limit = newest_us - self.window_us
        if self._keyframes:
            # keep from the newest keyframe that is at least the window old
            while len(self._keyframes) >= 2 and self._keyframes[1] <= limit:
                self._keyframes.popleft()
            first_key = self._keyframes[0]
            while self._packets and self._packets[0].mono_us < first_key:
                self._packets.popleft()
        else:
            while self._packets and self._packets[0].mono_us < limit:
                self._packets.popleft()

    def drain(self, audio_only: bool) -> list[MediaPacket]:
        """Return the buffered packets a recording should start with (the ring keeps them).

        Video mode: from the oldest keyframe on (audio older than it dropped). Audio-only:
        audio packets from the window.
        """
        packets = list(self._packets)
        keyframes = self._keyframes
        if audio_only:
            if not packets:
                return []
            limit = packets[-1].mono_us - self.window_us
            return [p for p in packets if p.audio and p.mono_us >= limit]
        if not keyframes:
            return []
        start = keyframes[0]
        return [p for p in packets if p.mono_us >= start]
