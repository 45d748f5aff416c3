"""Which recorder configs the broker still retains.

Each recorder's officer binding and settings reach it as a retained, signed config message
(``lerec/v1/hub/<device>/config``). A broker that lost its persistence (a wiped volume, a
fresh broker after a failover) lost them too, and a recorder connecting afterwards would get
no binding. Whether that happened cannot be told from the hub's own session: a worker of a
shared subscription always connects with a clean one. So the hub asks the broker itself: a
short-lived connection subscribes to every config topic, and the broker sends what it retains.

MQTT has no "that was all" marker for retained messages. The check publishes a probe to a
topic its own subscription matches, after the SUBACK: the broker queues the retained
messages when it handles the SUBSCRIBE, so the probe comes back after them (messages to one
client are delivered in order). A probe that never comes back is an error, never an empty
answer.
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from lerec.protocol import topics

#: the filter of every recorder's config topic
CONFIG_FILTER = topics.hub_topic("+", "config")


class ConfigCheckError(RuntimeError):
    """The broker could not be asked (refused, unreachable, or no answer in time)."""


def retained_configs(
    host: str, port: int, tls: ssl.SSLContext, client_id: str, timeout: float = 20.0,
    cancel: threading.Event | None = None,
) -> dict[str, bytes]:
    """``{device_id: payload}`` of every config the broker retains (blocking; run it in a
    thread; ``cancel`` ends the wait early). Raises :class:`ConfigCheckError` if the broker
    does not answer completely."""
    probe_device = f".check-{uuid.uuid4().hex[:12]}"  # (device ids never start with '.')
    probe = topics.hub_topic(probe_device, "config")
    found: dict[str, bytes] = {}
    done = threading.Event()
    failed: list[str] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.tls_set_context(tls)

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            failed.append(f"connection refused: {rc}")
            done.set()
            return
        client.subscribe(CONFIG_FILTER, qos=1)

    def on_subscribe(client: mqtt.Client, _u: Any, _m: Any, codes: Any, _p: Any) -> None:
        if any(code.is_failure for code in codes):
            failed.append(f"subscription refused: {codes}")
            done.set()
            return
        client.publish(probe, b"", qos=1)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == probe:
            done.set()
            return
        parts = msg.topic.split("/")
        if msg.retain and msg.payload and len(parts) == 5:
            found[parts[3]] = bytes(msg.payload)

    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    try:
        c.connect(host, port, clean_start=True)
    except OSError as exc:
        raise ConfigCheckError(f"broker {host}:{port} unreachable: {exc}") from exc
    c.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while not done.wait(0.1):
            if cancel is not None and cancel.is_set():
                raise ConfigCheckError("cancelled")
            if time.monotonic() > deadline:
                raise ConfigCheckError(f"the broker did not answer within {timeout:g} s")
        if failed:
            raise ConfigCheckError(failed[0])
        return dict(found)
    finally:
        c.disconnect()
        c.loop_stop()
