"""The recorder: controls + state machine + recording pipeline, wired together.

::

    with Recorder(config, camera, microphone, controls, sink, clock) as recorder:
        ...   # buttons now record; segments arrive at sink.segment_finished()

Threads: "lerec-control" (state machine, clock and free-space checks), "lerec-writer"
(pipeline), plus the camera's and microphone's capture threads and "lerec-buzzer".
The recorder starts and stops the hardware it is given but does not close it.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time

from lerec.device.clock import Clock
from lerec.device.controls import Controls
from lerec.device.hw.base import Camera, Microphone
from lerec.device.media.audio import AudioEncoderStage
from lerec.device.media.config import RecorderConfig
from lerec.device.media.pipeline import PipelineSettings, RecordingPipeline
from lerec.device.media.segment import EndReason, SegmentSink
from lerec.device.state import (
    Beep,
    ClockTrusted,
    ClockUntrusted,
    Effect,
    Event,
    LowSpace,
    MarkImportant,
    PowerOff,
    PowerOn,
    RecorderState,
    SegmentRollover,
    SetLeds,
    SpaceFloorReached,
    SpaceOk,
    StartRecording,
    StopRecording,
    step,
)

log = logging.getLogger(__name__)

_STOP_REASONS: dict[str, EndReason] = {
    "button": "button", "storage-full": "storage-full", "power-off": "power-off"}


class Recorder:
    def __init__(self, config: RecorderConfig, camera: Camera | None,
                 microphone: Microphone | None, controls: Controls, sink: SegmentSink,
                 clock: Clock) -> None:
        self.config = config
        self._camera = camera if config.mode == "video" else None
        self._mic = microphone
        self._controls = controls
        self._clock = clock
        cam = self._camera
        a = config.audio
        settings = PipelineSettings(
            spool_dir=config.storage.spool_dir, device_id=config.device_id,
            officer_id=config.officer_id, prerecord_seconds=config.prerecord_seconds,
            segment_seconds=config.segment_seconds,
            video=(cam.width, cam.height, cam.fps) if cam is not None else None,
            audio=(microphone.sample_rate, microphone.channels, a.bitrate)
            if microphone is not None else None,
            fsync=config.storage.fsync_every_fragment)
        self.pipeline = RecordingPipeline(settings, clock, sink,
                                          on_rollover=lambda: self.post(SegmentRollover()))
        self._audio = AudioEncoderStage(microphone, a.bitrate) if microphone else None
        self._events: queue.Queue[Event | None] = queue.Queue()
        self._state = RecorderState()
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._space_level: type[Event] | None = None
        self._clock_trusted: bool | None = None

    # -------------------------------------------------------------- lifecycle

    def __enter__(self) -> Recorder:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if self._camera is None and self._audio is None:
            raise ValueError("a recorder needs a camera or a microphone")
        self.pipeline.start()
        if self._camera is not None:
            self._camera.start(self.pipeline)
        if self._audio is not None:
            self._audio.start(self.pipeline)
        self.post(PowerOn(audio_only=self.config.mode == "audio"))   # first in the queue
        self._controls.attach(self.post)
        self._thread = threading.Thread(target=self._run, name="lerec-control", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop recording (the open segment is finished and delivered) and stop everything."""
        if self._thread is None:
            return
        self._controls.attach(None)
        self.post(PowerOff())
        self._events.put(None)
        self._thread.join(timeout=10)
        self._thread = None
        if self._camera is not None:
            self._camera.stop()
        if self._audio is not None:
            self._audio.stop()
        self.pipeline.stop()

    def reconfigure(self, *, segment_seconds: float | None = None,
                    prerecord_seconds: float | None = None, wait: bool = False) -> None:
        """Change the segment and/or pre-record length while running (None keeps it); raises
        ValueError for a value out of bounds. See :meth:`RecordingPipeline.reconfigure`."""
        self.pipeline.reconfigure(segment_seconds=segment_seconds,
                                  prerecord_seconds=prerecord_seconds, wait=wait)

    # -------------------------------------------------------------- events

    def post(self, event: Event) -> None:
        """Feed an event to the state machine (thread-safe, never blocks)."""
        self._events.put(event)

    @property
    def state(self) -> RecorderState:
        with self._state_lock:
            return self._state

    def _run(self) -> None:
        poll = min(self.config.clock_check_seconds, self.config.storage.check_interval_seconds)
        next_clock = next_space = 0.0
        while True:
            now = time.monotonic()
            if now >= next_clock:
                self._check_clock()
                next_clock = now + self.config.clock_check_seconds
            if now >= next_space:
                self._check_space()
                next_space = now + self.config.storage.check_interval_seconds
            try:
                event = self._events.get(timeout=poll)
            except queue.Empty:
                continue
            if event is None:
                return
            with self._state_lock:
                self._state, effects = step(self._state, event)
            log.debug("%s -> %s", event, effects)
            for effect in effects:
                try:
                    self._apply(effect)
                except Exception:
                    log.exception("could not carry out %s", effect)

    def _apply(self, effect: Effect) -> None:
        match effect:
            case StartRecording(audio_only=audio_only):
                self.pipeline.start_recording(audio_only)
            case StopRecording(reason=reason):
                self.pipeline.stop_recording(_STOP_REASONS.get(reason, "shutdown"))
            case MarkImportant():
                self.pipeline.mark_important()
            case SetLeds(power=p, video=v, audio=a):
                self._controls.set_leds(p, v, a)
            case Beep(pattern=pattern):
                self._controls.beep(pattern)

    def _check_clock(self) -> None:
        trusted = self._clock.status().trusted
        if trusted != self._clock_trusted:
            self._clock_trusted = trusted
            self.post(ClockTrusted() if trusted else ClockUntrusted())

    def _check_space(self) -> None:
        st = self.config.storage
        try:
            free = shutil.disk_usage(st.spool_dir).free
        except OSError as exc:
            log.warning("cannot read free space of %s: %s", st.spool_dir, exc)
            return
        level: type[Event] = (SpaceFloorReached if free < st.floor_bytes
                              else LowSpace if free < st.low_space_bytes else SpaceOk)
        if level is not self._space_level:
            self._space_level = level
            log.info("free space %d bytes: %s", free, level.__name__)
            self.post(level())
