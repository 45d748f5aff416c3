"""The recording pipeline: one output that owns the pre-record ring and the segment files.

Camera and microphone threads call :meth:`RecordingPipeline.outputframe`; packets and commands
(start, stop, mark) go through one queue to one writer thread ("lerec-writer"), so their order
is exact: a recording starts with the ring's content and continues with the very next packet,
and a rollover closes a file at a keyframe and opens the next one with that keyframe, so no
frame is lost or duplicated between segments.

The segment and pre-record lengths can change while the pipeline runs
(:meth:`RecordingPipeline.reconfigure`, used for the hub's config): the change is queued like a
packet, so it takes effect on the writer thread between two packets.

- Segment length: a segment closes at the first keyframe (audio-only: audio packet) at or after
  the segment length *in effect when that keyframe arrives*, counted from the segment's first
  packet (pre-record included). A shorter length therefore closes the open segment at the next
  keyframe once it is at least the new length long; a segment already longer than that is
  closed at the next keyframe: it is never cut shorter than what is already written, and
  nothing written is dropped. A longer length lets the open segment run on to it.
- Pre-record: the ring's window changes. Shrinking drops the older packets at once; growing
  lets the ring fill up from then on (a recording started soon after gets only what the ring
  has: nothing is invented). A recording in progress is not affected.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lerec.device.clock import Clock, us_from_utc, utc_from_us
from lerec.device.errors import DeviceError
from lerec.device.media.config import check_prerecord_seconds, check_segment_seconds
from lerec.device.media.mp4file import SegmentFile, StreamSetup
from lerec.device.media.output import MediaPacket, monotonic_us
from lerec.device.media.prerecord import PrerecordBuffer
from lerec.device.media.segment import EndReason, FinishedSegment, SegmentSink

log = logging.getLogger(__name__)

# Late audio for a closed-off segment is awaited at most this long (in video time).
AUDIO_GRACE_US = 500_000


@dataclass(frozen=True)
class PipelineSettings:
    spool_dir: Path
    device_id: str
    officer_id: str
    prerecord_seconds: float
    segment_seconds: float
    video: tuple[int, int, int] | None       # (width, height, fps)
    audio: tuple[int, int, int] | None       # (sample_rate, channels, bitrate)
    fsync: bool = True


@dataclass(frozen=True)
class _Start:
    audio_only: bool
    pressed_us: int  # monotonic time of the press (the writer may handle it later)


@dataclass(frozen=True)
class _Stop:
    reason: EndReason
    done: threading.Event


@dataclass(frozen=True)
class _Mark:
    pass


@dataclass(frozen=True)
class _Reconfigure:
    segment_seconds: float | None
    prerecord_seconds: float | None
    done: threading.Event


_SHUTDOWN = object()


class RecordingPipeline:
    """An :class:`~lerec.device.media.output.Output` that records on command."""

    def __init__(self, settings: PipelineSettings, clock: Clock, sink: SegmentSink,
                 on_rollover: Callable[[], None] | None = None) -> None:
        check_segment_seconds(settings.segment_seconds)
        check_prerecord_seconds(settings.prerecord_seconds)
        self.settings = settings   # replaced (never mutated) when the lengths change
        self._clock = clock
        self._sink = sink
        self._on_rollover = on_rollover
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._ring = PrerecordBuffer(settings.prerecord_seconds)
        self._current: SegmentFile | None = None
        self._closing: SegmentFile | None = None
        self._closing_boundary = 0
        self._recording = False
        self._audio_only = False
        self._important_pending = False
        self._prerecord_us = 0
        self._press_mono = 0
        self._last_mono = 0         # capture time of the newest packet (writer thread)
        self._names: set[str] = set()
        self._segment_us = self._length_us(settings.segment_seconds)
        self.failed: BaseException | None = None

    # -------------------------------------------------------------- output contract

    def start(self) -> None:
        self.settings.spool_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="lerec-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish any recording (reason "shutdown") and end the writer thread."""
        if self._thread is None:
            return
        self.stop_recording("shutdown", wait=True)
        self._queue.put(_SHUTDOWN)
        self._thread.join(timeout=10)
        self._thread = None

    def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                    audio: bool = False) -> None:
        now_mono = monotonic_us()
        mono = now_mono if timestamp is None else timestamp
        wall = us_from_utc(self._clock.now()) - (now_mono - mono)
        self._queue.put(MediaPacket(bytes(frame), keyframe, mono, wall, audio))

    # -------------------------------------------------------------- commands

    def start_recording(self, audio_only: bool = False) -> None:
        self._queue.put(_Start(audio_only, monotonic_us()))

    def stop_recording(self, reason: EndReason = "button", wait: bool = False,
                       timeout: float = 10.0) -> None:
        done = threading.Event()
        self._queue.put(_Stop(reason, done))
        if wait and self._thread is not None:
            done.wait(timeout)

    def mark_important(self) -> None:
        self._queue.put(_Mark())

    def reconfigure(self, *, segment_seconds: float | None = None,
                    prerecord_seconds: float | None = None, wait: bool = False,
                    timeout: float = 10.0) -> None:
        """Change the segment and/or pre-record length (None keeps it); thread-safe.

        Raises ValueError, changing nothing, for a length outside the bounds of
        :class:`~lerec.device.media.config.RecorderConfig`. The change is applied on the
        writer thread, in order with the packets (see the module docstring for the rule);
        ``wait`` blocks until it is (a pipeline not started yet applies it when it starts).
        """
        seg = None if segment_seconds is None else check_segment_seconds(segment_seconds)
        pre = None if prerecord_seconds is None else check_prerecord_seconds(prerecord_seconds)
        done = threading.Event()
        self._queue.put(_Reconfigure(seg, pre, done))
        if wait and self._thread is not None:
            done.wait(timeout)

    @property
    def segment_seconds(self) -> float:
        """The segment length in effect on the writer thread."""
        return self.settings.segment_seconds

    @property
    def prerecord_seconds(self) -> float:
        """The pre-record length in effect on the writer thread."""
        return self.settings.prerecord_seconds

    @property
    def recording(self) -> bool:
        return self._recording

    # -------------------------------------------------------------- writer thread

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _SHUTDOWN:
                return
            try:
                self._handle(item)
            except DeviceError as exc:
                log.error("recording failed: %s", exc)
                self.failed = exc
                self._abort()
            except Exception as exc:  # keep the writer alive; the file stays as .part
                log.exception("unexpected error in the writer thread")
                self.failed = exc
                self._abort()

    def _handle(self, item: object) -> None:
        if isinstance(item, MediaPacket):
            # the ring runs all the time, so a new press right after a stop still gets its
            # pre-record (clips may then overlap by up to the pre-record window)
            self._ring.add(item)
            self._last_mono = item.mono_us
            if self._recording:
                self._record(item)
        elif isinstance(item, _Start):
            self._begin(item.audio_only, item.pressed_us)
        elif isinstance(item, _Stop):
            try:
                self._end(item.reason)
            finally:
                item.done.set()
        elif isinstance(item, _Mark):
            if self._current is not None:
                self._current.mark_important()
            elif self._recording:
                self._important_pending = True
        elif isinstance(item, _Reconfigure):
            try:
                self._reconfigure(item)
            finally:
                item.done.set()

    def _length_us(self, segment_seconds: float) -> int:
        # roll over at the first keyframe at or after the segment length (within half a frame)
        slack = 500_000 // self.settings.video[2] if self.settings.video else 0
        return int(segment_seconds * 1_000_000) - slack

    def _reconfigure(self, item: _Reconfigure) -> None:
        s = self.settings
        if item.segment_seconds is not None and item.segment_seconds != s.segment_seconds:
            self._segment_us = self._length_us(item.segment_seconds)
            self.settings = s = dataclasses.replace(s, segment_seconds=item.segment_seconds)
            if self._current is not None:
                written = (self._last_mono - self._current.start_mono) / 1e6
                log.info("segment length now %g s; the open segment (%.1f s so far) closes at "
                         "the first keyframe at or after %g s", s.segment_seconds, written,
                         max(written, s.segment_seconds))
            else:
                log.info("segment length now %g s", s.segment_seconds)
        if item.prerecord_seconds is not None and item.prerecord_seconds != s.prerecord_seconds:
            self._ring.set_window(item.prerecord_seconds)
            self.settings = dataclasses.replace(s, prerecord_seconds=item.prerecord_seconds)
            log.info("pre-record now %g s", item.prerecord_seconds)

    def _begin(self, audio_only: bool, pressed_us: int) -> None:
        if self._recording:
            return
        audio_only = audio_only or self.settings.video is None
        self._recording, self._audio_only = True, audio_only
        self._important_pending = False
        # the pre-record is measured to the press, not to when this thread got to it
        self._press_mono = pressed_us
        backlog = self._ring.drain(audio_only)
        log.info("recording started (%s), %d packets from the pre-record ring",
                 "audio only" if audio_only else "video", len(backlog))
        for pkt in backlog:
            self._record(pkt)

    def _end(self, reason: EndReason) -> None:
        if not self._recording:
            return
        self._recording = False
        self._finish_closing()
        if self._current is not None:
            self._deliver(self._current, reason)
            self._current = None
        log.info("recording stopped (%s)", reason)

    def _abort(self) -> None:
        self._recording = False
        self._current = self._closing = None

    def _starts_segment(self, pkt: MediaPacket) -> bool:
        return pkt.audio if self._audio_only else (pkt.keyframe and not pkt.audio)

    def _record(self, pkt: MediaPacket) -> None:
        if self._audio_only and not pkt.audio:
            return
        if self._closing is not None and pkt.audio and pkt.mono_us < self._closing_boundary:
            self._closing.write(pkt)
            return
        if self._closing is not None and (
                pkt.audio or pkt.mono_us > self._closing_boundary + AUDIO_GRACE_US):
            self._finish_closing()
        cur = self._current
        if cur is None:
            if self._starts_segment(pkt):
                self._current = self._open(pkt)
                self._current.write(pkt)
            return
        if (self._starts_segment(pkt)
                and pkt.mono_us - cur.start_mono >= self._segment_us):
            self._rollover(pkt)
            return
        if pkt.audio and pkt.mono_us < cur.start_mono:
            return
        cur.write(pkt)

    def _rollover(self, pkt: MediaPacket) -> None:
        assert self._current is not None
        old = self._current
        self._current = self._open(pkt)
        self._current.write(pkt)
        if self._audio_only or self.settings.audio is None:
            self._deliver(old, "rollover")
        else:   # wait briefly for audio captured before the boundary
            self._finish_closing()
            self._closing, self._closing_boundary = old, pkt.mono_us
        if self._on_rollover is not None:
            self._on_rollover()

    def _finish_closing(self) -> None:
        if self._closing is not None:
            closing, self._closing = self._closing, None
            self._deliver(closing, "rollover")

    def _open(self, first: MediaPacket) -> SegmentFile:
        s = self.settings
        start = utc_from_us(first.wall_us)
        stem = f"{s.device_id}_{start:%Y%m%dT%H%M%S}{start.microsecond // 1000:03d}Z"
        name, n = f"{stem}.mp4", 1
        while name in self._names or (s.spool_dir / name).exists():
            n += 1
            name = f"{stem}_{n}.mp4"
        self._names.add(name)
        prerecord = max(0, self._press_mono - first.mono_us) / 1e6
        self._press_mono = 0   # only the first segment of a recording has pre-record
        setup = StreamSetup(video=None if self._audio_only else s.video, audio=s.audio)
        seg = SegmentFile(s.spool_dir / name, setup, first, prerecord_seconds=prerecord,
                          device_id=s.device_id, officer_id=s.officer_id,
                          clock=self._clock.status(), important=self._important_pending,
                          fsync=s.fsync)
        self._important_pending = False
        log.info("segment %s opened (pre-record %.1f s)", name, prerecord)
        return seg

    def _deliver(self, seg: SegmentFile, reason: EndReason) -> None:
        finished = seg.finish(reason)
        log.info("segment %s finished: %.1f s, %d frames, %s", finished.path.name,
                 finished.duration_seconds, finished.frames, reason)
        self._notify(finished)

    def _notify(self, finished: FinishedSegment) -> None:
        try:
            self._sink.segment_finished(finished)
        except Exception:
            log.exception("segment sink failed for %s; the file stays in the spool folder",
                          finished.path)
