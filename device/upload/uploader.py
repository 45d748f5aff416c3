"""The recorder's uploader.

For each pending segment (important ones first, then oldest first) it announces the signed
manifest; the hub answers with the chunk ranges it still needs (:class:`Want`), a signed
:class:`Receipt` or a :class:`Reject`. Chunks go out at QoS 1 with a bounded window of
unacknowledged publishes. If anything goes quiet — lost connection, hub restart — the recorder
announces again after a jittered back-off and the hub answers with what is still missing, so
transfers resume instead of starting over. The local copy is deleted only by
:meth:`ClipStore.accept_receipt`, after the hub's signature and the receipt's fields check out.
"""

from __future__ import annotations

import logging
import queue
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from lerec.protocol import (
    Chunk,
    DeviceConfig,
    Message,
    ProtocolError,
    Receipt,
    Reject,
    Signed,
    Want,
    decode_any,
    encode_message,
    topics,
)
from lerec.protocol.codec import sha256
from paho.mqtt.enums import CallbackAPIVersion

from ..store import ClipStore, JournalRow, ReceiptError

log = logging.getLogger(__name__)


def tls_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


@dataclass
class UploaderStats:
    uploaded: int = 0
    bytes_sent: int = 0
    chunks_sent: int = 0
    announces: int = 0
    refused: int = 0
    connects: int = 0


class _Retry(Exception):
    """The current attempt gave up; try the segment again after a back-off."""


def jitter(delay: float) -> float:
    return delay * (0.5 + random.random())


class Uploader:
    """``with Uploader(store, ...) as up:`` runs the network and upload threads."""

    def __init__(
        self,
        store: ClipStore,
        *,
        host: str,
        port: int,
        tls: ssl.SSLContext,
        hub_signing_public: Ed25519PublicKey,
        reply_timeout: float = 10.0,
        window: int = 16,
        max_backoff: float = 30.0,
        heartbeat: Callable[[], Message] | None = None,
        heartbeat_seconds: float = 30.0,
        on_config: Callable[[DeviceConfig], None] | None = None,
        on_signed_config: Callable[[DeviceConfig, bytes, bool], None] | None = None,
        on_refused: Callable[[JournalRow, str, str], None] | None = None,
    ) -> None:
        """``on_config(cfg)`` gets every verified config addressed to this recorder (the
        retained one at each connect included); ``on_signed_config(cfg, wire, live)`` too, with
        the signed bytes and whether it was delivered live: only then is its ``issued_ms`` a
        fresh reading of the hub's clock (a retained copy replayed at connect may be old). ``on_refused(row, code, reason)`` follows a fatal
        refusal by the hub (the segment stays on the card, journaled as refused)."""
        self.store = store
        self.device_id = store.device_id
        self.host, self.port = host, port
        self.hub_key = hub_signing_public
        self.reply_timeout = reply_timeout
        self.window = window
        self.max_backoff = max_backoff
        self.heartbeat = heartbeat
        self.heartbeat_seconds = heartbeat_seconds
        self.on_config = on_config
        self.on_signed_config = on_signed_config
        self.on_refused = on_refused
        self._beat_now = threading.Event()
        self.stats = UploaderStats()
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._replies: queue.Queue[Message | Signed[Message]] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._backoff = 0.5
        self.paused = threading.Event()  # tests: hold uploads while set
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"rec-{self.device_id}", protocol=mqtt.MQTTv5
        )
        c.tls_set_context(tls)
        c.max_queued_messages_set(0)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_connect_fail = lambda *_: self._schedule_retry()
        self.client = c
        self._failures = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        # paho's own network thread (loop_start) owns the socket; publishing from the upload
        # thread is safe only then. Reconnects: paho retries, with our jittered back-off.
        self._schedule_retry(reset=True)
        self.client.connect_async(self.host, self.port, keepalive=20)
        self.client.loop_start()
        for name, target in (("upload", self._upload_loop), ("heartbeat", self._heartbeat_loop)):
            if name == "heartbeat" and self.heartbeat is None:
                continue
            t = threading.Thread(target=target, name=f"{name}-{self.device_id}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._beat_now.set()
        with self.store.changed:
            self.store.changed.notify_all()
        for t in self._threads:
            t.join(timeout=15)
        self._threads.clear()
        try:
            self.client.disconnect()
        except (OSError, ValueError) as exc:  # already gone
            log.debug("disconnect: %s", exc)
        self.client.loop_stop()

    def drop_connection(self) -> None:
        """Cut the TCP connection abruptly (tests: simulate a network loss mid-transfer)."""
        sock = self.client.socket()
        if sock is not None:
            try:
                import socket as _socket

                sock.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass

    # -- network (paho thread) ---------------------------------------------------------------

    def _schedule_retry(self, reset: bool = False) -> None:
        """Next reconnect after a jittered, exponentially growing, capped delay."""
        self._failures = 0 if reset else self._failures + 1
        delay = jitter(min(0.5 * 2**self._failures, self.max_backoff))
        self.client.reconnect_delay_set(min_delay=delay, max_delay=delay)  # type: ignore[arg-type]

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.error("broker refused recorder %s: %s", self.device_id, rc)
            return
        self.stats.connects += 1
        self._schedule_retry(reset=True)
        client.subscribe(
            [(topics.hub_topic(self.device_id, "reply"), 1),
             (topics.hub_topic(self.device_id, "config"), 1)]
        )
        self.connected.set()
        self._beat_now.set()  # tell the hub at once what this recorder holds
        log.info("recorder %s connected to %s:%d", self.device_id, self.host, self.port)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connected.clear()
        self._schedule_retry()
        if not self._stop.is_set():
            log.warning("recorder %s lost the broker: %s", self.device_id, rc)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            decoded = decode_any(msg.payload)
        except ProtocolError as exc:
            log.warning("ignoring undecodable message on %s: %s", msg.topic, exc)
            return
        if msg.topic.endswith("/config"):
            self._apply_config(decoded, live=not msg.retain)
        else:
            self._replies.put(decoded)

    def _apply_config(self, decoded: Message | Signed[Message], live: bool = False) -> None:
        if not isinstance(decoded, Signed) or not isinstance(decoded.message, DeviceConfig):
            log.warning("ignoring config message of the wrong type")
            return
        try:
            cfg = decoded.verify(self.hub_key)
        except ProtocolError as exc:
            log.error("ignoring config with a bad hub signature: %s", exc)
            return
        if cfg.device_id != self.device_id:
            log.error("ignoring config addressed to %s", cfg.device_id)
            return
        if self.on_config is not None:
            self.on_config(cfg)
        if self.on_signed_config is not None:
            self.on_signed_config(cfg, decoded.wire, live)

    # -- upload thread -----------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        """Every ``heartbeat_seconds`` (re-read each time: the hub may change it), and at once
        after each connect, even while a long upload is running."""
        while not self._stop.is_set():
            if self.connected.is_set():
                self._send_heartbeat()
            self._beat_now.wait(timeout=self.heartbeat_seconds)
            self._beat_now.clear()

    def beat_now(self) -> None:
        """Send a heartbeat now (state changed: recording stopped, card full, ...)."""
        self._beat_now.set()

    def _upload_loop(self) -> None:
        while not self._stop.is_set():
            if not self.connected.wait(timeout=0.5) or self.paused.is_set():
                continue
            pending = self.store.pending()
            if not pending:
                with self.store.changed:
                    self.store.changed.wait(timeout=1.0)
                continue
            row = pending[0]
            try:
                self._upload(row)
                self._backoff = 0.5
            except _Retry as exc:
                log.info("upload of %s paused: %s", row.segment_id, exc)
                self._stop.wait(jitter(self._backoff))
                self._backoff = min(self._backoff * 2, self.max_backoff)
            except Exception:
                log.exception("upload of %s failed", row.segment_id)
                self._stop.wait(jitter(self._backoff))
                self._backoff = min(self._backoff * 2, self.max_backoff)

    def _send_heartbeat(self) -> None:
        assert self.heartbeat is not None
        try:
            wire = self.store.sign(self.heartbeat())
            self.client.publish(topics.device_topic(self.device_id, "heartbeat"), wire, qos=1)
        except Exception:
            log.exception("heartbeat failed")

    def _publish(self, kind: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        if not self.connected.is_set():
            raise _Retry("not connected")
        info = self.client.publish(topics.device_topic(self.device_id, kind), payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise _Retry(f"publish failed: {mqtt.error_string(info.rc)}")
        return info

    def _wait_reply(self, segment_id: str, timeout: float) -> Message | Signed[Message]:
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Retry("no answer from the hub")
            try:
                reply = self._replies.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if not self.connected.is_set():
                    raise _Retry("connection lost") from None
                continue
            msg = reply.message if isinstance(reply, Signed) else reply
            if getattr(msg, "segment_id", None) in (segment_id, ""):
                return reply
            log.debug("stale reply for %s ignored", getattr(msg, "segment_id", "?"))
        raise _Retry("stopping")

    def _upload(self, row: JournalRow) -> None:
        manifest = self.store.manifest(row)
        self.stats.announces += 1
        self._publish("manifest", row.manifest)
        while True:
            reply = self._wait_reply(row.segment_id, self.reply_timeout)
            if isinstance(reply, Signed) and isinstance(reply.message, Receipt):
                try:
                    self.store.accept_receipt(reply.wire)
                except ReceiptError as exc:
                    log.error("%s", exc)
                    raise _Retry("receipt did not verify") from None
                self.stats.uploaded += 1
                return
            if isinstance(reply, Reject):
                if reply.fatal:
                    self.stats.refused += 1
                    self.store.mark_refused(row, reply.code, reply.reason)
                    if self.on_refused is not None:
                        self.on_refused(row, reply.code, reply.reason)
                    return
                if reply.code == "no_transfer":
                    self._publish("manifest", row.manifest)
                    continue
                raise _Retry(f"hub asked to retry: [{reply.code}] {reply.reason}")
            if isinstance(reply, Want):
                self._send_chunks(row, manifest, reply.missing)
                # All wanted chunks are out; the receipt (or another Want) should follow.
                continue
            log.warning("unexpected reply %r", type(reply).__name__)

    def _send_chunks(self, row: JournalRow, manifest: Any, missing: Any) -> None:
        inflight: list[mqtt.MQTTMessageInfo] = []
        for start, end in missing:
            for index in range(start, min(end, manifest.chunk_count)):
                while self.paused.is_set() and not self._stop.is_set():
                    time.sleep(0.05)
                data = self.store.read_chunk(row, index)
                chunk = Chunk(self.device_id, row.segment_id, index, sha256(data), data)
                inflight.append(self._publish("chunk", encode_message(chunk)))
                self.stats.chunks_sent += 1
                self.stats.bytes_sent += len(data)
                if len(inflight) >= self.window:
                    self._await(inflight.pop(0))
        for info in inflight:
            self._await(info)

    def _await(self, info: mqtt.MQTTMessageInfo) -> None:
        deadline = time.monotonic() + self.reply_timeout
        while not info.is_published():
            if not self.connected.is_set() or time.monotonic() > deadline or self._stop.is_set():
                raise _Retry("chunk not acknowledged")
            time.sleep(0.002)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is pending (tests, demo)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.store.pending():
                return True
            time.sleep(0.05)
        return False
