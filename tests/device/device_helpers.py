"""Helpers for the recorder tests (imported by name: tests run in importlib mode)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import av
from gpiozero.pins.mock import MockFactory
from lerec.device.clock import FakeClock
from lerec.device.controls import Controls
from lerec.device.hw.factory import make_camera, make_microphone
from lerec.device.media.config import RecorderConfig
from lerec.device.media.osd import decode_time_blocks
from lerec.device.media.recorder import Recorder
from lerec.device.media.segment import FinishedSegment


class CollectingSink:
    """A SegmentSink that keeps what it gets and lets a test wait for it."""

    def __init__(self) -> None:
        self.segments: list[FinishedSegment] = []
        self._cond = threading.Condition()

    def segment_finished(self, seg: FinishedSegment) -> None:
        with self._cond:
            self.segments.append(seg)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[FinishedSegment]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.segments) >= count, timeout), (
                f"expected {count} segments, got {len(self.segments)}")
            return list(self.segments)


def make_config(spool: Path, **overrides: object) -> RecorderConfig:
    data: dict[str, object] = {
        "device_id": "dev-0042",
        "officer_id": "A12345",
        "prerecord_seconds": 2.0,
        "segment_seconds": 60.0,
        "gpio": {"pin_factory": "mock", "long_press_seconds": 0.5},
        "storage": {"spool_dir": str(spool), "low_space_bytes": 0, "floor_bytes": 0},
    }
    data.update(overrides)
    return RecorderConfig.model_validate(data)


def build_recorder(config: RecorderConfig, pin_factory: MockFactory, sink: CollectingSink,
                   clock: FakeClock) -> tuple[Recorder, Controls]:
    controls = Controls(config.gpio, pin_factory)
    recorder = Recorder(config, make_camera(config, clock), make_microphone(config), controls,
                        sink, clock)
    return recorder, controls




@dataclass
class Decoded:
    video_codec: str | None
    audio_codec: str | None
    frame_ms: list[int]          # burned-in capture time of every decoded video frame
    audio_seconds: float
    duration: float              # container duration in seconds


def decode(path: Path) -> Decoded:
    with av.open(str(path)) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        duration = (c.duration or 0) / 1e6
        vcodec = v.codec_context.name if v is not None else None
        acodec = a.codec_context.name if a is not None else None
    frame_ms: list[int] = []
    audio_samples, rate = 0, 1
    with av.open(str(path)) as c:
        for frame in c.decode(*c.streams):
            if isinstance(frame, av.VideoFrame):
                ms = decode_time_blocks(frame.to_ndarray(format="gray"))
                assert ms is not None, "burned-in timestamp unreadable"
                frame_ms.append(ms)
            else:
                audio_samples += frame.samples
                rate = frame.sample_rate
    return Decoded(vcodec, acodec, frame_ms, audio_samples / rate, duration)


def rising_edges(states: list) -> int:
    """Count off->on transitions in a MockPin state history."""
    values = [bool(s.state) for s in states]
    return sum(1 for prev, cur in zip(values, values[1:]) if cur and not prev)
