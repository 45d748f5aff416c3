"""The complete recorder: recording pipeline -> clip store -> uploader, with hub config.

One object owns the parts and their threads; the same wiring runs on a Raspberry Pi (real
camera, microphone and GPIO) and simulated on a PC (PyAV test pattern, tone, MockFactory),
chosen by the config file alone.

What the hub's signed config does here: the officer binding goes into every manifest sealed
from then on (the officer bound when the segment started, or when record was pressed for a
segment that opens with pre-record) and into the OSD, and is kept on
the card so it survives a reboot; a config delivered live (not the retained copy replayed at
connect) is a reading of the hub's clock: the offset goes into the clock status, and beyond
``max_clock_offset_ms`` the clock is flagged untrusted (LED + buzzer via the recorder, and
``ClockInfo.state = 'unsynced'`` in the next manifests). The config's heartbeat interval,
segment length and pre-record length replace the file's (see
:meth:`RecorderApp.apply_recording_lengths`); the config kept on the card applies them again at
boot, before anything is recorded.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from lerec.protocol import (
    UNASSIGNED,
    ClockInfo,
    DeviceConfig,
    Heartbeat,
    ProtocolError,
    decode_signed,
    keys,
)

from .clock import Clock, ClockStatus, SystemClock
from .controls import Controls
from .hw.factory import make_camera, make_microphone, make_pin_factory
from .media.recorder import Recorder
from .media.segment import FinishedSegment
from .settings import DeviceSettings
from .store import ClipStore, StoreFull
from .store.journal import JournalRow
from .upload import Uploader, tls_context

log = logging.getLogger(__name__)

FIRMWARE = "lerec-recorder/0.1"
#: While a segment waits for space to be sealed, sealing is retried this often.
SEAL_RETRY_SECONDS = 2.0


def verified_config(settings: DeviceSettings, wire: bytes | None) -> DeviceConfig | None:
    """The hub's config kept on the card, if its signature checks out and it is ours."""
    if wire is None:
        return None
    try:
        cfg = decode_signed(wire, DeviceConfig).verify(
            keys.ed25519_public(settings.hub.hub_signing_pub.read_bytes()))
    except ProtocolError as exc:
        log.error("ignoring the saved hub config: %s", exc)
        return None
    return cfg if cfg.device_id == settings.recorder.device_id else None


class _SealingSink:
    """Receives finished segments from the pipeline and seals them on a thread of its own
    (sealing reads and encrypts the whole file; the pipeline must not wait for it).

    A segment that does not fit (:class:`StoreFull`) stays in the spool and in a waiting list;
    it is sealed as soon as receipts free space. Nothing recorded is dropped.
    """

    def __init__(self, store: ClipStore, officer_at: Callable[[dt.datetime], str]) -> None:
        self.store = store
        self.officer_at = officer_at
        self.waiting: list[FinishedSegment] = []
        self._q: queue.Queue[FinishedSegment | None] = queue.Queue()
        self._t = threading.Thread(target=self._run, name="lerec-sealer", daemon=True)
        self._t.start()

    def segment_finished(self, seg: FinishedSegment) -> None:
        self._q.put(seg)

    def _seal(self, seg: FinishedSegment) -> bool:
        try:
            # the officer bound when record was pressed (the pre-record before it included)
            pressed = seg.start_time + dt.timedelta(seconds=seg.prerecord_seconds)
            self.store.seal(seg, officer_id=self.officer_at(pressed))
            return True
        except StoreFull as exc:
            log.error("%s", exc)
            return False
        except Exception:
            log.exception("could not seal %s; it stays in the spool for the next boot",
                          seg.path)
            return True  # not retried now; recover() handles it at boot

    def _run(self) -> None:
        while True:
            try:
                seg = self._q.get(timeout=SEAL_RETRY_SECONDS if self.waiting else None)
            except queue.Empty:
                self.waiting = [s for s in self.waiting if not self._seal(s)]
                continue
            if seg is None:
                return
            if self.waiting or not self._seal(seg):
                self.waiting.append(seg)   # keep the order: oldest is sealed first
                self.waiting = [s for s in self.waiting if not self._seal(s)]

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
        # officer binding: (device time it took effect, officer), oldest first
        self._lock = threading.Lock()
        self.config_seq = -1
        self._time_seq = -1
        first = cfg.officer_id or UNASSIGNED
        # the lengths in effect (asked of the pipeline): the file's until the hub's config
        self.segment_seconds = cfg.segment_seconds
        self.prerecord_seconds = cfg.prerecord_seconds
        saved = self._saved_config()
        if saved is not None:
            self.config_seq, first = saved.config_seq, saved.officer_id
        self._bindings: list[tuple[dt.datetime, str]] = [
            (dt.datetime.min.replace(tzinfo=dt.UTC), first)]
        self.pin_factory = pin_factory or make_pin_factory(cfg)
        self.controls = Controls(cfg.gpio, self.pin_factory)
        self.camera = make_camera(cfg, self.clock)
        if self.camera is not None and first != (cfg.officer_id or UNASSIGNED):
            self.camera.set_officer("" if first == UNASSIGNED else first)
        self.sink = _SealingSink(self.store, self.officer_at)
        self.recorder = Recorder(cfg, self.camera, make_microphone(cfg), self.controls,
                                 self.sink, self.clock)
        self.uploader = Uploader(
            self.store, host=hub.host, port=hub.port,
            tls=tls_context(hub.ca, hub.cert, hub.key),
            hub_signing_public=keys.ed25519_public(hub.hub_signing_pub.read_bytes()),
            reply_timeout=hub.reply_timeout_seconds, max_backoff=hub.max_backoff_seconds,
            heartbeat=self.heartbeat, heartbeat_seconds=hub.heartbeat_seconds,
            on_signed_config=self._on_config,
            on_refused=self._refused,
        )
        if saved is not None:   # the hub's settings survive a reboot (the retained copy
            # replayed at connect has the same config_seq and is not applied again)
            self.uploader.heartbeat_seconds = float(saved.heartbeat_seconds)
            self.apply_recording_lengths(saved.segment_seconds, saved.prerecord_seconds,
                                         f"saved hub config {saved.config_seq}")
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None

    @property
    def officer_id(self) -> str:
        """The officer bound to this recorder now."""
        with self._lock:
            return self._bindings[-1][1]

    def officer_at(self, when: dt.datetime) -> str:
        """The officer bound to this recorder at device time ``when``."""
        with self._lock:
            i = bisect.bisect_right([t for t, _ in self._bindings], when) - 1
            return self._bindings[max(i, 0)][1]

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        recovered = self.store.recover(officer_id=self.officer_id)
        if recovered:
            log.warning("sealed %d segment(s) left by a power cut", len(recovered))
        self.recorder.start()
        self.uploader.start()
        self._watch = threading.Thread(target=self._watch_state, name="lerec-app-watch",
                                       daemon=True)
        self._watch.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.join(timeout=5)
        self.recorder.close()
        self.sink.close()
        self.uploader.stop()
        self.controls.close()
        self.store.close()

    def _watch_state(self) -> None:
        """Send a heartbeat as soon as what the hub should know changes (recording started or
        stopped, card low or full, clock trust)."""
        last: tuple[object, ...] | None = None
        while not self._stop.wait(0.25):
            st = self.recorder.state
            now = (st.recording, st.audio_only, st.space, st.clock_trusted)
            if last is not None and now != last:
                self.uploader.beat_now()
            last = now

    # -- buttons (simulation drives the same gpiozero pins a finger would) --------------------

    def press(self, button: str = "record", hold: float = 0.05) -> None:
        pin_no = {"record": self.settings.recorder.gpio.record_button,
                  "mark": self.settings.recorder.gpio.mark_button}[button]
        pin = self.pin_factory.pin(pin_no)
        pin.drive_low()
        time.sleep(hold)
        pin.drive_high()

    # -- hub link ----------------------------------------------------------------------------

    def _saved_config(self) -> DeviceConfig | None:
        return verified_config(self.settings, self.store.saved_config())

    def _on_config(self, cfg: DeviceConfig, wire: bytes, live: bool) -> None:
        if self.apply_config(cfg):
            self.store.save_config(wire)
        if live:
            self.apply_hub_time(cfg)

    def apply_config(self, cfg: DeviceConfig) -> bool:
        """Officer binding, heartbeat interval, segment and pre-record length from the hub's
        signed config (the uploader has checked the hub's signature and the device id)."""
        with self._lock:
            if cfg.config_seq <= self.config_seq:
                return False
            self.config_seq = cfg.config_seq
            previous = self._bindings[-1][1]
            if cfg.officer_id != previous:
                self._bindings.append((self.clock.now(), cfg.officer_id))
        self.uploader.heartbeat_seconds = float(cfg.heartbeat_seconds)
        self.apply_recording_lengths(cfg.segment_seconds, cfg.prerecord_seconds,
                                     f"hub config {cfg.config_seq}")
        if cfg.officer_id != previous:
            log.info("officer binding changed: %s -> %s (config %d)", previous, cfg.officer_id,
                     cfg.config_seq)
            if self.camera is not None:
                self.camera.set_officer("" if cfg.officer_id == UNASSIGNED else cfg.officer_id)
            self.uploader.beat_now()
        return True

    def apply_recording_lengths(self, segment_seconds: float, prerecord_seconds: float,
                                source: str = "hub config") -> tuple[float, float]:
        """Record with these segment and pre-record lengths from now on (where they differ
        from the current ones); returns the lengths in effect. Never raises: a value this
        recorder must not use (the bounds of the config file, or segments too long for the
        room the storage floor keeps to seal them: :meth:`DeviceSettings.check_segment_seconds`)
        is logged and ignored, the current value stays. How the open segment and the
        pre-record ring take the change: :mod:`lerec.device.media.pipeline`."""
        with self._lock:
            old = (self.segment_seconds, self.prerecord_seconds)
            (seg, pre), problems = self.settings.recording_lengths(
                segment_seconds, prerecord_seconds, current=old)
            for problem in problems:
                log.error("%s: ignored, keeping segment %g s, pre-record %g s: %s", source,
                          old[0], old[1], problem)
            if (seg, pre) == old:
                return old
            try:
                self.recorder.reconfigure(segment_seconds=seg if seg != old[0] else None,
                                          prerecord_seconds=pre if pre != old[1] else None)
            except ValueError as exc:   # checked above already; never let it stop the app
                log.error("%s: ignored: %s", source, exc)
                return old
            self.segment_seconds, self.prerecord_seconds = seg, pre
        log.info("%s: segment length %g s -> %g s, pre-record %g s -> %g s", source, old[0], seg,
                 old[1], pre)
        return seg, pre

    def apply_hub_time(self, cfg: DeviceConfig) -> None:
        """A live config is a fresh reading of the hub's clock: measure our offset from it."""
        with self._lock:
            if cfg.config_seq <= self._time_seq:
                return   # the same config again (e.g. republished): not a new time reading
            self._time_seq = cfg.config_seq
        offset = (self.clock.now().timestamp() * 1000 - cfg.issued_ms) / 1000
        trusted = abs(offset) * 1000 <= cfg.max_clock_offset_ms
        status = ClockStatus("synced" if trusted else "unsynced", "hub", offset)
        setter = getattr(self.clock, "set_status", None)
        if setter is not None:
            setter(status)
        if trusted:
            log.info("clock within %.3f s of the hub: synced", offset)
        else:
            log.warning("clock differs from the hub by %.1f s (limit %.1f s): flagged as "
                        "untrusted", offset, cfg.max_clock_offset_ms / 1000)
        self.uploader.beat_now()

    def _refused(self, row: JournalRow, code: str, reason: str) -> None:
        log.error("segment seq %d refused by the hub [%s]: %s; kept on the card, shown by "
                  "'lerec-recorder status'", row.seq, code, reason)
        self.uploader.beat_now()

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
            storage="full" if st.space == "full" else space.state,
            clock=ClockInfo(status.sync, status.source[:64] or "none",
                            int((status.offset_seconds or 0) * 1000),
                            0 if status.trusted else 3_600_000),
            battery_pct=None, firmware=FIRMWARE,
        )
