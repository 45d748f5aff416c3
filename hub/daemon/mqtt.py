"""An asyncio face on paho-mqtt for the hub.

paho runs its network loop in its own thread; messages are handed to the event loop through a
queue. Acknowledgement is manual: a PUBACK goes to the broker only after the message has been
handled (chunk written, row committed), so a hub that dies mid-message gets it again from the
broker's persistent session instead of losing it. paho reconnects by itself with a capped
back-off; subscriptions are renewed on every connect.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
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
    ) -> None:
        self.subscriptions = subscriptions
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue()
        self._connected = asyncio.Event()
        self.connects = 0
        self.on_state = on_state
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        c.tls_set_context(tls)
        c.manual_ack_set(True)
        c.reconnect_delay_set(min_delay=1, max_delay=int(max_backoff))
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
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
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._connected.set)

    def _on_disconnect(self, _c: Any, _ud: Any, _flags: Any, rc: Any, _p: Any) -> None:
        log.warning("disconnected from broker: %s (reconnecting with back-off)", rc)
        if self.on_state is not None:
            self.on_state(False)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._connected.clear)

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._queue.put_nowait, msg)

    # asyncio side --------------------------------------------------------------------------

    async def __aenter__(self) -> MqttBridge:
        self._loop = asyncio.get_running_loop()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry
        delay = 0.5
        while True:
            try:
                self.client.connect(self.host, self.port, clean_start=False, properties=props)
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

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            log.warning("publish to %s failed: %s", topic, mqtt.error_string(info.rc))

    async def serve(self, handler: Handler) -> None:
        """Handle messages until cancelled. Each message is acknowledged after its handler."""
        pending: set[asyncio.Task[None]] = set()

        async def one(msg: mqtt.MQTTMessage) -> None:
            try:
                await handler(msg.topic, msg.payload)
            except Exception:
                log.exception("handler failed on %s; message will be redelivered", msg.topic)
                return
            self.client.ack(msg.mid, msg.qos)

        while True:
            msg = await self._queue.get()
            task = asyncio.create_task(one(msg), name=f"msg-{msg.topic}")
            pending.add(task)
            task.add_done_callback(pending.discard)
