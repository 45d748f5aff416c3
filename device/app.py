"""The complete recorder: recording pipeline -> clip store -> uploader, with hub config.

One object owns the parts and their threads; the same wiring runs on a Raspberry Pi (real
camera, microphone and GPIO) and simulated on a PC (PyAV test pattern, tone, MockFactory),
chosen by the config file alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
import queue
import threading
import time
from typing import Any

from lerec.protocol import UNASSIGNED, ClockInfo, DeviceConfig, Heartbeat, keys

from .clock import Clock, ClockStatus, SystemClock
from .controls import Controls
from .hw.factory import make_camera, make_microphone, make_pin_factory
from .media.recorder import Recorder
from .media.segment import FinishedSegment
from .settings import DeviceSettings
from .store import ClipStore
from .upload import Uploader, tls_context

log = logging.getLogger(__name__)

FIRMWARE = "lerec-recorder/0.1"


class _SealingSink:
    """Receives finished segments from the pipeline and seals them on a thread of its own
    (sealing reads and encrypts the whole file; the pipeline must not wait for it)."""

    def __init__(self, store: ClipStore, officer: Callable[[], str]) -> None:
        self.store = store
        self.officer = officer
        self._q: queue.Queue[FinishedSegment | None] = queue.Queue()
        self._t = threading.Thread(target=self._run, name="lerec-sealer", daemon=True)
        self._t.start()

    def segment_finished(self, seg: FinishedSegment) -> None:
        self._q.put(seg)

    def _run(self) -> None:
        while (seg := self._q.get()) is not None:
            try:
                self.store.seal(seg, officer_id=self.officer())
            except Exception:
                log.exception("could not seal %s; it stays in the spool for the next boot",
                              seg.path)

    def close(self) -> None:
        self._q.put(None)
        self._t.join(timeout=60)


class RecorderApp:
    def __init__(self, settings: DeviceSettings, *, clock: Clock | None = None,
                 pin_factory: Any = None) -> None:
        self.settings = settings
        cfg = settings.recorder
        hub = settings.hub
        self.device_id = cfg.device_id
        self.clock = clock or SystemClock()
        self.officer_id = cfg.officer_id or UNASSIGNED
        self.config_seq = -1
        self.store = ClipStore(
            settings.data_dir,
            device_id=cfg.device_id,
            signing_key=keys.ed25519_private(hub.signing_key.read_bytes()),
            hub_box_public=keys.x25519_public(hub.hub_box_pub.read_bytes()),
            hub_signing_public=keys.ed25519_public(hub.hub_signing_pub.read_bytes()),
            chunk_size=hub.chunk_bytes,
            low_space_bytes=cfg.storage.low_space_bytes,
            floor_bytes=cfg.storage.floor_bytes,
        )
        self.pin_factory = pin_factory or make_pin_factory(cfg)
        self.controls = Controls(cfg.gpio, self.pin_factory)
        self.camera = make_camera(cfg, self.clock)
        self.sink = _SealingSink(self.store, lambda: self.officer_id)
        self.recorder = Recorder(cfg, self.camera, make_microphone(cfg), self.controls,
                                 self.sink, self.clock)
        self.uploader = Uploader(
            self.store, host=hub.host, port=hub.port,
            tls=tls_context(hub.ca, hub.cert, hub.key),
            hub_signing_public=keys.ed25519_public(hub.hub_signing_pub.read_bytes()),
            reply_timeout=hub.reply_timeout_seconds, heartbeat=self.heartbeat,
            heartbeat_seconds=hub.heartbeat_seconds, on_config=self.apply_config,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "RecorderApp":
        recovered = self.store.recover(officer_id=self.officer_id)
        if recovered:
            log.warning("sealed %d segment(s) left by a power cut", len(recovered))
        self.recorder.start()
        self.uploader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.recorder.close()
        self.sink.close()
        self.uploader.stop()
        self.controls.close()
        self.store.close()

    # -- buttons (simulation drives the same gpiozero pins a finger would) --------------------

    def press(self, button: str = "record", hold: float = 0.05) -> None:
        pin_no = {"record": self.settings.recorder.gpio.record_button,
                  "mark": self.settings.recorder.gpio.mark_button}[button]
        pin = self.pin_factory.pin(pin_no)
        pin.drive_low()
        time.sleep(hold)
        pin.drive_high()

    # -- hub link ----------------------------------------------------------------------------

    def apply_config(self, cfg: DeviceConfig) -> None:
        """Officer binding and time from the hub's retained, signed config."""
        if cfg.config_seq <= self.config_seq:
            return
        self.config_seq = cfg.config_seq
        if cfg.officer_id != self.officer_id:
            log.info("officer binding changed: %s -> %s", self.officer_id, cfg.officer_id)
            self.officer_id = cfg.officer_id
            if self.camera is not None:
                self.camera.set_officer("" if cfg.officer_id == UNASSIGNED else cfg.officer_id)
        offset = (self.clock.now().timestamp() * 1000 - cfg.issued_ms) / 1000
        trusted = abs(offset) * 1000 <= cfg.max_clock_offset_ms
        status = ClockStatus("synced" if trusted else "unsynced", "hub", offset)
        setter = getattr(self.clock, "set_status", None)
        if setter is not None:
            setter(status)
        if not trusted:
            log.warning("clock differs from the hub by %.1f s: flagged as untrusted", offset)

    def heartbeat(self) -> Heartbeat:
        st = self.recorder.state
        status = self.clock.status()
        space = self.store.space()
        state = ("stopped_full" if st.space == "full" else
                 "audio_only" if st.recording and st.audio_only else
                 "recording" if st.recording else "idle")
        return Heartbeat(
            device_id=self.device_id, officer_id=self.officer_id,
            time_ms=int(self.clock.now().timestamp() * 1000), state=state,
            last_seq=self.store.last_seq(), pending_segments=len(self.store.pending()),
            pending_bytes=self.store.journal.pending_bytes(), free_bytes=space.free_bytes,
            storage=space.state,
            clock=ClockInfo(status.sync, status.source[:64] or "none",
                            int((status.offset_seconds or 0) * 1000),
                            0 if status.trusted else 3_600_000),
            battery_pct=None, firmware=FIRMWARE,
        )
