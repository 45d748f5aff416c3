"""Publish a few messages as the hub from a short-lived process (the fleet commands).

Uses the hub's client certificate with its own client id, so it does not disturb the daemon's
persistent session. Waits for every PUBACK and reports a refused publish as an error.
"""

from __future__ import annotations

import os
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..config import BrokerSettings
from ..errors import HubError
from .mqtt import tls_context


class PublishError(HubError):
    """The broker could not be reached or refused a message."""


def publish_retained(
    broker: BrokerSettings, messages: list[tuple[str, bytes]], timeout: float = 15.0
) -> None:
    """Publish ``(topic, payload)`` pairs at QoS 1 with the retain flag (an empty payload
    clears a retained message)."""
    if not messages:
        return
    connected = threading.Event()
    failure: list[str] = []
    acks: dict[int, int] = {}
    done = threading.Condition()

    def on_connect(_c, _u, _f, rc, _p):  # type: ignore[no-untyped-def]
        if rc.is_failure:
            failure.append(f"broker refused the hub: {rc}")
        connected.set()

    def on_publish(_c, _u, mid, rc, _p):  # type: ignore[no-untyped-def]
        with done:
            acks[mid] = rc.value
            done.notify_all()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"lerec-hub-cli-{os.urandom(4).hex()}",
                    protocol=mqtt.MQTTv5)
    c.tls_set_context(tls_context(broker.ca, broker.cert, broker.key))
    c.on_connect = on_connect
    c.on_publish = on_publish
    try:
        c.connect(broker.host, broker.port)
    except OSError as exc:
        raise PublishError(
            f"cannot reach the broker at {broker.host}:{broker.port} ({exc}); the change is saved "
            "in the database: run 'lerec-hub push-configs' once the broker is up"
        ) from None
    c.loop_start()
    try:
        if not connected.wait(timeout) or failure:
            raise PublishError(failure[0] if failure else "no answer from the broker")
        mids = [c.publish(topic, payload, qos=1, retain=True).mid for topic, payload in messages]
        with done:
            if not done.wait_for(lambda: all(m in acks for m in mids), timeout):
                raise PublishError("the broker did not acknowledge every message in time")
        bad = [acks[m] for m in mids if acks[m] >= 0x80]
        if bad:
            raise PublishError(f"the broker refused {len(bad)} message(s) (reason {bad[0]}): "
                               "check that the hub certificate's ACL allows lerec/v1/hub/#")
    finally:
        c.disconnect()
        c.loop_stop()
