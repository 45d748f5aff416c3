"""An asyncio face on paho-mqtt for the hub.

paho runs its network loop in its own thread; messages are handed to the event loop through a
queue. Acknowledgement is manual: a PUBACK goes to the broker only after the message has been
handled (chunk written, row committed), so a hub that dies mid-message gets it again from the
broker's persistent session instead of losing it. paho reconnects by itself with a capped
back-off; subscriptions are renewed on every connect.

A handler that fails (database or store unreachable) leaves its message unacknowledged, and the
bridge then drops the connection after a back-off: on the reconnect the broker delivers every
unacknowledged message of the persistent session again. An acknowledgement is only sent on the
connection the message came in on (after a reconnect the broker redelivers it anyway).

As a member of a shared subscription (``persistent=False``) a worker connects with a clean,
non-persisted session: a broker keeps routing a share of the group's messages to an offline
member with a stored session, so a crashed or retired worker would swallow them. What a dead
worker held unacknowledged is then gone from the broker — and recovered by the protocol: the
recorder keeps every segment until its receipt and announces again, and the hub asks for the
chunks the shared staging folder does not have.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], Awaitable[None]]


def tls_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


class _Client(mqtt.Client):
    """paho's client with a receive path that suits 256 KiB chunk messages.

    paho reads a packet's body with ``recv(remaining)`` in a loop and appends each piece to a
    ``bytes`` object. Over TLS every ``recv`` returns at most one 16 KiB record, so a 256 KiB
    chunk is copied again and again while it grows (about 2 MiB of copying per message, with
    the GIL held — time the event loop thread waits for). Here one call drains what the socket
    already holds, up to ``bufsize``, into a single buffer with ``recv_into``; paho then
    appends it once."""

    def _sock_recv(self, bufsize: int) -> bytes:
        sock = self._sock
        if bufsize <= 16384 or sock is None or not hasattr(sock, "recv_into"):
            return super()._sock_recv(bufsize)
        buf = bytearray(bufsize)
        view = memoryview(buf)
        got = 0
        while got < bufsize:
            try:
                n = sock.recv_into(view[got:])
            except (ssl.SSLWantReadError, BlockingIOError):
                if got:
                    break
                raise BlockingIOError() from None
            except ssl.SSLWantWriteError:
                if got:
                    break
                self._call_socket_register_write()
                raise BlockingIOError() from None
            if n == 0:  # closed: hand over what came first; the next call sees the end
                break
            got += n
        view.release()
        del buf[got:]
        return buf  # type: ignore[return-value]  # paho appends it to its bytes packet


class MqttBridge:
    """``async with MqttBridge(...) as bridge: await bridge.serve(handler)``."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        tls: ssl.SSLContext,
        subscriptions: list[str],
        session_expiry: int = 7 * 24 * 3600,
        max_backoff: float = 30.0,
        on_state: Callable[[bool], None] | None = None,
        persistent: bool = True,
    ) -> None:
        self.subscriptions = subscriptions
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        # (message, number of the connection it arrived on)
        self._queue: asyncio.Queue[tuple[mqtt.MQTTMessage, int]] = asyncio.Queue()
        # messages handed over by paho's thread; the event loop is woken once per batch
        self._inbox: collections.deque[tuple[mqtt.MQTTMessage, int]] = collections.deque()
        self._wake_pending = False
        self._inbox_lock = threading.Lock()
        self._connected = asyncio.Event()
        self.connects = 0
        self.failures = 0  # handler failures (messages left unacknowledged)
        self.redelivery_drops = 0  # connections dropped to have failed messages redelivered
        self.persistent = persistent
        self.max_backoff = max_backoff
        self._drop_pending = False
        self._fail_streak = 0
        self.on_state = on_state
        c = _Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        c.tls_set_context(tls)
        c.manual_ack_set(True)
        c.reconnect_delay_set(min_delay=1, max_delay=int(max_backoff))
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        self._session_expiry = session_expiry
        self.client = c

    # paho callbacks (network thread) -------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.error("broker refused the hub: %s", rc)
            return
        self.connects += 1
        log.info("connected to broker %s:%d (connect #%d, session present: %s)", self.host,
                 self.port, self.connects, getattr(_flags, "session_present", "?"))
        # Renew the subscriptions on every connect: the broker may have lost the session
        # (restart without persistence, expiry), and resubscribing an existing one is harmless.
        client.subscribe([(t, 1) for t in self.subscriptions])
        if self.on_state is not None:
            self.on_state(True)

    def _on_subscribe(self, _c: Any, _ud: Any, _mid: Any, codes: Any, _p: Any) -> None:
        # Ready only once the broker confirmed the subscriptions: before the SUBACK, messages
        # published to a fresh session would not reach the hub.
        failed = [c for c in codes if getattr(c, "is_failure", False)]
        if failed:
            log.error("broker refused hub subscriptions: %s", failed)
            return
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._connected.set)

    def _on_disconnect(self, _c: Any, _ud: Any, _flags: Any, rc: Any, _p: Any) -> None:
        log.warning("disconnected from broker: %s (reconnecting with back-off)", rc)
        if self.on_state is not None:
            self.on_state(False)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._connected.clear)

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        # One wake-up of the event loop per batch, not per message: under load paho reads many
        # messages while the loop is busy, and each wake-up is a syscall plus a GIL hand-over.
        with self._inbox_lock:
            self._inbox.append((msg, self.connects))
            if self._wake_pending:
                return
            self._wake_pending = True
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._take_inbox)

    def _take_inbox(self) -> None:
        with self._inbox_lock:
            batch, self._wake_pending = list(self._inbox), False
            self._inbox.clear()
        for item in batch:
            self._queue.put_nowait(item)

    # asyncio side --------------------------------------------------------------------------

    async def __aenter__(self) -> MqttBridge:
        self._loop = asyncio.get_running_loop()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry if self.persistent else 0
        delay = 0.5
        while True:
            try:
                self.client.connect(self.host, self.port, clean_start=not self.persistent,
                                    properties=props)
                break
            except OSError as exc:
                log.warning("broker %s:%d unreachable (%s); retrying", self.host, self.port, exc)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 30.0)
        self.client.loop_start()
        await asyncio.wait_for(self._connected.wait(), timeout=30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _schedule_drop(self) -> None:
        """Reconnect (after a growing back-off) so the broker redelivers what failed."""
        if self._drop_pending:
            return
        self._drop_pending = True
        delay = min(0.25 * 2 ** min(self._fail_streak, 10), self.max_backoff)
        assert self._loop is not None
        self._loop.call_later(delay * (0.5 + random.random()), self._drop)

    def _drop(self) -> None:
        self._drop_pending = False
        sock = self.client.socket()
        if sock is None:
            return
        log.warning("dropping the broker connection so unacknowledged messages are redelivered")
        self.redelivery_drops += 1
        try:
            sock.shutdown(socket.SHUT_RDWR)  # paho notices and reconnects with its back-off
        except OSError:
            pass

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            log.warning("publish to %s failed: %s", topic, mqtt.error_string(info.rc))

    async def serve(self, handler: Handler) -> None:
        """Handle messages until cancelled. Each message is acknowledged after its handler."""
        pending: set[asyncio.Task[None]] = set()

        async def one(msg: mqtt.MQTTMessage, connection: int) -> None:
            try:
                await handler(msg.topic, msg.payload)
            except Exception:
                log.exception("handler failed on %s; message left unacknowledged, to be "
                              "redelivered", msg.topic)
                self.failures += 1
                self._fail_streak += 1
                self._schedule_drop()
                return
            self._fail_streak = 0
            if connection == self.connects:
                self.client.ack(msg.mid, msg.qos)

        while True:
            msg, connection = await self._queue.get()
            task = asyncio.create_task(one(msg, connection), name=f"msg-{msg.topic}")
            pending.add(task)
            task.add_done_callback(pending.discard)
