"""The hub's MQTT bridge over the real broker (mutual TLS): large messages arrive intact and
in order, read in big pieces rather than one TLS record at a time (hub/daemon/mqtt.py)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os

import paho.mqtt.client as mqtt
from support.rig import raw_client

from lerec.hub.daemon import mqtt as bridge_mod
from lerec.hub.daemon.mqtt import MqttBridge, tls_context
from lerec.protocol import topics


@contextlib.asynccontextmanager
async def serving(rig, client_id: str, handler, offer=None):
    """A bridge serving ``handler`` (and ``offer``) over the real broker, and a recorder's raw
    client to publish with: (bridge, sender)."""
    pki = rig.pki
    async with MqttBridge(host="127.0.0.1", port=rig.port, client_id=client_id,
                          tls=tls_context(pki.ca_cert, pki.hub_cert, pki.hub_key),
                          subscriptions=topics.hub_subscriptions(None)) as bridge:
        server = asyncio.create_task(bridge.serve(handler, offer))
        sender = raw_client(pki, "rec-a", rig.port)
        sender.connect("127.0.0.1", rig.port)
        sender.loop_start()
        try:
            yield bridge, sender
        finally:
            sender.disconnect()
            sender.loop_stop()
            server.cancel()


async def test_large_messages_arrive_intact_and_are_read_in_big_pieces(rig, monkeypatch):
    reads: list[int] = []
    original = bridge_mod._Client._sock_recv

    def counting(self, bufsize):
        data = original(self, bufsize)
        reads.append(len(data))
        return data

    monkeypatch.setattr(bridge_mod._Client, "_sock_recv", counting)
    payloads = [os.urandom(n) for n in (300_000, 256 * 1024, 1_000_000, 17, 70_000)]
    got: list[bytes] = []
    views: list[bool] = []
    done = asyncio.Event()

    async def handler(topic: str, payload: bytes) -> None:
        assert topic == topics.device_topic("rec-a", "chunk")
        if len(payload) > 16384:  # read in place, handed on without a copy
            views.append(isinstance(payload, memoryview))
        got.append(bytes(payload))
        if len(got) == len(payloads):
            done.set()

    async with serving(rig, "bridge-test", handler) as (_bridge, sender):
        for p in payloads:
            sender.publish(topics.device_topic("rec-a", "chunk"), p, qos=1).wait_for_publish(30)
        await asyncio.wait_for(done.wait(), 60)
    # handled concurrently, so compare as sets of digests; every one intact
    assert sorted(hashlib.sha256(g).digest() for g in got) == \
        sorted(hashlib.sha256(p).digest() for p in payloads)
    # a TLS record carries at most 16 KiB: without coalescing no read could be larger
    assert max(reads) > 16384, reads[:20]
    assert views == [True] * 4


def _publish_body(topic: bytes, qos: int, mid: int, props: bytes, payload: bytes) -> bytearray:
    return bytearray(len(topic).to_bytes(2, "big") + topic
                     + (mid.to_bytes(2, "big") if qos else b"") + props + payload)


def _handled(body: bytearray, header: int) -> list:
    """What the bridge client hands to on_message for one PUBLISH packet body."""
    from paho.mqtt.enums import CallbackAPIVersion

    c = bridge_mod._Client(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5)
    c.manual_ack_set(True)
    got: list = []
    c.on_message = lambda _c, _u, m: got.append(m)
    c._in_packet = dict(c._in_packet, command=header, packet=body)
    assert c._handle_publish() == mqtt.MQTT_ERR_SUCCESS
    return got


def test_large_publish_is_parsed_like_paho_does_with_properties_and_both_qos():
    """The bridge's own PUBLISH parser (one copy of the body instead of paho's five) gives the
    same topic, id, flags, properties and payload as paho's decoder."""
    from paho.mqtt import _packet
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    payload = os.urandom(300_000)
    for qos, props_set in ((1, True), (1, False), (0, True)):
        p = Properties(PacketTypes.PUBLISH)
        if props_set:
            p.MessageExpiryInterval = 30
            p.UserProperty = [("k", "v"), ("k2", "v2")]
        header = 0x30 | (qos << 1) | 0x01  # PUBLISH, retain
        body = _publish_body(b"lerec/v1/dev/rec-a/chunk", qos, 4711, p.pack(), payload)
        expect = _packet.decode_publish(header, bytes(body), mqtt.MQTTv5)
        (msg,) = _handled(body, header)
        assert msg.topic == expect.topic.decode() and msg.mid == expect.mid
        assert (msg.qos, msg.retain, msg.dup) == (qos, True, False)
        assert msg.payload == expect.payload == payload
        assert msg.properties.json() == expect.properties.json()


def test_truncated_large_publish_is_a_malformed_packet():
    from paho.mqtt.exception import MalformedPacket

    body = bytearray((60_000).to_bytes(2, "big") + b"x" * 20_000)  # topic longer than packet
    try:
        _handled(body, 0x32)
    except MalformedPacket:
        pass
    else:
        raise AssertionError("a topic past the end of the packet was accepted")


async def test_an_offered_message_is_acknowledged_only_once_it_is_done(rig):
    """``serve(handler, offer)`` over the real broker: a message the offer takes is neither
    handled nor acknowledged until its ``then``; ``then(None)`` acknowledges it, a coroutine
    is run first, and one that fails leaves the message unacknowledged, so the broker
    delivers it again after the bridge reconnects."""
    topic = topics.device_topic("rec-a", "chunk")
    offered: list[bytes] = []
    handled: list[bytes] = []
    held: dict[bytes, object] = {}
    ran: list[bytes] = []
    redelivered = asyncio.Event()

    def offer(t: str, payload, then) -> bool:
        data = bytes(payload)
        offered.append(data)
        if data == b"ordinary":
            return False
        if data == b"fails" and offered.count(data) == 2:
            redelivered.set()
            then(None)
            return True
        held[data] = then
        return True

    async def handler(t: str, payload) -> None:
        handled.append(bytes(payload))

    def work(name: bytes, fail: bool = False):
        async def run() -> None:
            ran.append(name)
            if fail:
                raise RuntimeError("the store is unreachable")
        return run

    async with serving(rig, "bridge-offer-test", handler, offer) as (bridge, sender):
        for p in (b"now", b"after-work", b"ordinary"):
            sender.publish(topic, p, qos=1).wait_for_publish(30)
        async with asyncio.timeout(30):
            while len(held) < 2 or not handled:
                await asyncio.sleep(0.01)
        assert handled == [b"ordinary"], "what the offer takes never reaches the handler"
        held.pop(b"now")(None)
        held.pop(b"after-work")(work(b"after-work"))
        await asyncio.sleep(0.5)  # their acknowledgements go out
        assert ran == [b"after-work"] and bridge.redelivery_drops == 0
        sender.publish(topic, b"fails", qos=1).wait_for_publish(30)
        async with asyncio.timeout(30):
            while b"fails" not in held:
                await asyncio.sleep(0.01)
        held.pop(b"fails")(work(b"fails", fail=True))
        await asyncio.wait_for(redelivered.wait(), 30)
    assert bridge.failures == 1 and bridge.redelivery_drops >= 1
    # everything else was acknowledged: after the reconnect only the failed one came again
    assert sorted(offered) == sorted([b"now", b"after-work", b"ordinary", b"fails", b"fails"])
    assert handled == [b"ordinary"] and ran == [b"after-work", b"fails"]


async def test_a_receive_buffer_is_filled_again_only_once_no_view_of_it_is_left(rig,
                                                                                monkeypatch):
    """Large bodies are reused (no zero-filled allocation per chunk), but never while any view
    of them is alive: a handler that keeps views keeps their content."""
    made: list[int] = []

    class Counted(bridge_mod._Body):
        __slots__ = ()

        def __init__(self, n: int) -> None:
            super().__init__(n)
            made.append(n)

    monkeypatch.setattr(bridge_mod, "_Body", Counted)
    payloads = [os.urandom(200_000) for _ in range(40)]  # all the same length
    kept: dict[int, memoryview] = {}  # every third message's view, kept to the end
    buffers: set[int] = set()
    seen: list[bytes] = []
    done = asyncio.Event()

    async def handler(topic: str, payload) -> None:
        n = len(seen)
        seen.append(bytes(payload))
        buffers.add(id(payload.obj))
        if n % 3 == 0:
            kept[n] = payload
        if len(seen) == len(payloads):
            done.set()

    async with serving(rig, "bridge-reuse-test", handler) as (_bridge, sender):
        for p in payloads:  # one at a time: each handled before the next arrives
            sender.publish(topics.device_topic("rec-a", "chunk"), p,
                           qos=1).wait_for_publish(30)
            await asyncio.sleep(0.01)
        await asyncio.wait_for(done.wait(), 60)
    assert sorted(seen) == sorted(payloads)
    by_content = {p: i for i, p in enumerate(seen)}
    for n, view in kept.items():
        assert bytes(view) == seen[n], "a kept view was never written over"
        assert by_content[bytes(view)] == n
    assert len(made) <= len(kept) + 3, "the others' buffers were filled again"
    assert len(buffers) == len(made)


def test_acknowledgements_are_written_at_once_and_what_the_socket_refuses_is_queued():
    """PUBACKs go straight to the socket when paho has nothing queued; a short write queues
    the rest, and a TLS "want write" queues them all, for paho to write (the same bytes)."""
    import ssl
    import struct

    class Sock:
        def __init__(self, behaviour):
            self.behaviour, self.sent = behaviour, b""

        def send(self, data):
            if self.behaviour == "want-write":
                raise ssl.SSLWantWriteError()
            n = len(data) if self.behaviour == "all" else 3
            self.sent += bytes(data[:n])
            return n

    async def flush(behaviour, mids):
        bridge = MqttBridge(host="127.0.0.1", port=1, client_id="acks",
                            tls=ssl.create_default_context(), subscriptions=[])
        bridge._loop = asyncio.get_running_loop()
        sock = Sock(behaviour)
        bridge.client.socket = lambda: sock
        bridge._acks = list(mids)
        bridge._flush_acks(bridge.connects)
        queued = b"".join(bytes(p["packet"]) for p in bridge.client._out_packet)
        return sock.sent, queued

    mids = (1, 2, 300)
    wire = b"".join(struct.pack("!BBH", 0x40, 2, m) for m in mids)
    assert asyncio.run(flush("all", mids)) == (wire, b"")
    assert asyncio.run(flush("short", mids)) == (wire[:3], wire[3:])
    assert asyncio.run(flush("want-write", mids)) == (b"", wire)


async def test_a_refused_subscription_makes_the_bridge_reconnect_and_retry(rig, caplog):
    """A SUBACK that refuses a subscription leaves a connected but deaf hub (mosquitto's file
    ACL does not refuse SUBSCRIBE, so the refusal is handed to the bridge's callback on a real
    connection, as paho would). The bridge stops reporting ready, drops the connection, says
    why in the log, and subscribes again on the next connect."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    pki = rig.pki
    async with MqttBridge(host="127.0.0.1", port=rig.port, client_id="bridge-refused",
                          tls=tls_context(pki.ca_cert, pki.hub_cert, pki.hub_key),
                          subscriptions=topics.hub_subscriptions(None),
                          max_backoff=1.0) as bridge:
        server = asyncio.create_task(bridge.serve(_ignore))
        await asyncio.wait_for(bridge.wait_connected(), 30)
        assert bridge.connects == 1
        refused = ReasonCode(PacketTypes.SUBACK, "Not authorized")
        bridge._connected.clear()  # (as paho's SUBACK for a fresh SUBSCRIBE would find it)
        bridge._on_subscribe(bridge.client, None, 99, [refused], None)
        assert bridge.subscription_refusals == 1
        await asyncio.wait_for(bridge.wait_connected(), 30)  # reconnected and subscribed
        assert bridge.connects == 2
        server.cancel()
    assert "broker refused hub subscriptions" in caplog.text


async def _ignore(topic: str, payload: bytes) -> None:
    return None
