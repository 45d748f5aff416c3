"""The broker's side of "lets no one in", against the real mosquitto with the deploy TLS/ACL
config and a PKI of its own (revocation must not leak into other tests):

- recorder A cannot publish as recorder B (nothing reaches the hub's subscription);
- A cannot read B's replies or configs, other recorders' uploads, or the hub's topics
  (subscriptions are refused or receive nothing);
- a client without a certificate, and one with a certificate from another CA, cannot connect;
- a recorder revoked with ``lerec-hub revoke`` cannot connect once the broker restarts with the
  rewritten CRL and ACL.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from lerec.deploy.broker import Broker
from lerec.deploy.pki import init_pki, issue_device
from lerec.protocol import topics
from paho.mqtt.enums import CallbackAPIVersion
from support.hubproc import enroll, write_hub_toml
from support.rig import hub_config

A, B, R = "sec-a", "sec-b", "sec-r"


class Client:
    """A paho client that records what it receives and how its connect/subscribes went."""

    def __init__(self, port: int, ctx: ssl.SSLContext | None, client_id: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.refused = threading.Event()
        self.suback: dict[int, list[int]] = {}
        self.puback: dict[int, int] = {}
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if ctx is not None:
            c.tls_set_context(ctx)
        c.on_connect = self._on_connect
        c.on_message = lambda _c, _u, m: self.got.append((m.topic, m.payload))
        c.on_subscribe = lambda _c, _u, mid, rcs, _p: self.suback.__setitem__(
            mid, [int(rc.value) for rc in rcs])
        c.on_publish = lambda _c, _u, mid, rc, _p: self.puback.__setitem__(mid, int(rc.value))
        self.c = c
        self.port = port

    def _on_connect(self, _c, _u, _f, rc, _p) -> None:  # type: ignore[no-untyped-def]
        (self.refused if rc.is_failure else self.connected).set()

    def connect(self, timeout: float = 15.0) -> bool:
        try:
            self.c.connect("127.0.0.1", self.port, keepalive=10)
        except (OSError, ssl.SSLError):
            return False
        self.c.loop_start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected.is_set():
                return True
            if self.refused.is_set():
                return False
            time.sleep(0.02)
        return False

    def subscribe(self, filters: list[str], timeout: float = 10.0) -> list[int]:
        """Subscribe (QoS 1) and wait for the broker's SUBACK of each filter (granted or
        refused): a publish after this cannot overtake the subscription. Returns the mids."""
        mids = [self.c.subscribe(f, qos=1)[1] for f in filters]
        wait_for(lambda: all(m in self.suback for m in mids), timeout, f"SUBACK for {filters}")
        return mids

    def close(self) -> None:
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


def wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


#: After the positive control of a step has arrived: how much longer something that should
#: not arrive is given to show up.
SETTLE = 1.0


def tls(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def device(pki, port: int, d: str) -> Client:  # type: ignore[no-untyped-def]
    f = pki.device(d)
    return Client(port, tls(f.ca, f.cert, f.key), f"{d}-{os.urandom(3).hex()}")


def test_mqtt_matrix(tmp_path, report):
    pki = init_pki(tmp_path / "pki")
    for d in (A, B, R):
        issue_device(pki, d)
    cfg = hub_config(pki, 0, tmp_path / "hub", pki_dir=pki.root)
    enroll(cfg, pki, (A, B, R))
    broker = Broker(pki, tmp_path / "broker")
    broker.start()
    port = broker.port
    try:
        hub = Client(port, tls(pki.ca_cert, pki.hub_cert, pki.hub_key), "hub-watch")
        assert hub.connect()
        hub.subscribe(["lerec/v1/dev/#", "$share/g/lerec/v1/dev/#"])
        a, b = device(pki, port, A), device(pki, port, B)
        assert a.connect() and b.connect()
        # What the recorders may read (their own hub topics): a spoof published there by A
        # would show up in b.got / a.got.
        b.subscribe([topics.hub_topic(B, "reply"), topics.hub_topic(B, "config")])
        a.subscribe([topics.hub_topic(A, "reply")])

        # 1. A publishes as B, and outside any recorder prefix.
        spoofs = [topics.device_topic(B, k) for k in topics.DEVICE_KINDS] + [
            topics.hub_topic(B, "reply"), topics.hub_topic(B, "config"),
            topics.hub_topic(A, "reply"), "lerec/v1/dev/sec-b", "lerec/v1/other", "lerec/v1/dev/sec-b/manifest/x",
        ]
        for t in spoofs:
            a.c.publish(t, b"spoof-" + t.encode(), qos=1)
        # Then one A may publish, on the same connection: once the hub has it, the spoofs
        # before it have been routed too.
        a.c.publish(topics.device_topic(A, "heartbeat"), b"control-a", qos=1)
        wait_for(lambda: any(p == b"control-a" for _, p in hub.got), 10, "A's own publish")
        time.sleep(SETTLE)
        leaked_pub = [m for m in hub.got + b.got + a.got if m[1].startswith(b"spoof-")]
        report("mqtt: A publishes as B / outside its prefix", len(spoofs), len(leaked_pub),
               "nothing reaches the hub or B")

        # 2. A subscribes to what is not its own; then B and the hub publish there.
        filters = [topics.hub_topic(B, "reply"), topics.hub_topic(B, "config"),
                   f"lerec/v1/dev/{B}/#", "lerec/v1/dev/#", "lerec/v1/hub/#", "#",
                   "$share/x/lerec/v1/dev/#", "$SYS/#", "lerec/v1/+/sec-b/+"]
        mids = a.subscribe(filters)
        for k in topics.DEVICE_KINDS:
            b.c.publish(topics.device_topic(B, k), b"secret-of-b", qos=1)
        for k in ("reply", "config"):
            hub.c.publish(topics.hub_topic(B, k), b"secret-for-b", qos=1)
        # The rightful readers get them (the hub B's uploads, B what the hub sends it) ...
        uploads = {topics.device_topic(B, k) for k in topics.DEVICE_KINDS}
        to_b = {topics.hub_topic(B, k) for k in ("reply", "config")}
        wait_for(lambda: {t for t, p in hub.got if p == b"secret-of-b"} == uploads
                 and {t for t, p in b.got if p == b"secret-for-b"} == to_b,
                 10, "deliveries to the hub and to B")
        time.sleep(SETTLE)  # ... and A, subscribed as well, is given as long again
        leaked_sub = [m for m in a.got if m[1].startswith(b"secret")]
        granted = sum(1 for m in mids for rc in a.suback[m] if rc < 0x80)
        report("mqtt: A subscribes to B's / hub topics", len(filters), len(leaked_sub),
               f"{len(filters) - granted} refused in SUBACK, the rest receive nothing")
        # The matrix is not just 'deny all': the hub reads B's uploads.
        assert any(p == b"secret-of-b" for _, p in hub.got), "the hub reads B's uploads"

        # 3. No client certificate; a certificate from another CA.
        other = init_pki(tmp_path / "other-ca")
        issue_device(other, A)  # same name, foreign CA
        fo = other.device(A)
        attempts = {
            "anonymous TLS (no client certificate)": Client(port, tls(pki.ca_cert), "anon"),
            "certificate from another CA": Client(port, tls(pki.ca_cert, fo.cert, fo.key),
                                                   "foreign"),
            "plain TCP, no TLS": Client(port, None, "plain"),
        }
        through = 0
        for c in attempts.values():
            ok = c.connect(timeout=3.0)
            through += ok
            c.close()
        report("mqtt: connect without a valid certificate", len(attempts), through,
               "; ".join(attempts))

        # 4. Revocation: lerec-hub revoke, broker restarted with the rewritten CRL and ACL.
        r = device(pki, port, R)
        assert r.connect(), "enrolled recorder connects before revocation"
        r.close()
        toml = write_hub_toml(cfg.model_copy(update={"broker": cfg.broker.model_copy(
            update={"port": port})}), tmp_path / "hub.toml")
        out = subprocess.run([str(Path(sys.executable).parent / "lerec-hub"), "--config",
                              str(toml), "revoke", R, "--reason", "lost"],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        broker.restart()
        # First the positive check (the restarted broker serves), then the revoked one.
        a2 = device(pki, port, A)
        assert a2.connect(), "other recorders still connect after the restart"
        a2.close()
        r2 = device(pki, port, R)
        revoked_in = r2.connect(timeout=3.0)
        r2.close()
        report("mqtt: revoked certificate after CRL + restart", 1, int(revoked_in),
               "lerec-hub revoke, mosquitto restarted")
        for c in (a, b, hub):
            c.close()
    finally:
        broker.stop()
    assert not leaked_pub and not leaked_sub and through == 0 and not revoked_in
