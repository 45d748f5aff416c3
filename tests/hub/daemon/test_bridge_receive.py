"""The hub's MQTT bridge over the real broker (mutual TLS): large messages arrive intact and
in order, read in big pieces rather than one TLS record at a time (hub/daemon/mqtt.py)."""

from __future__ import annotations

import asyncio
import hashlib
import os

from lerec.hub.daemon import mqtt as bridge_mod
from lerec.hub.daemon.mqtt import MqttBridge, tls_context
from lerec.protocol import topics
from support.rig import raw_client


async def test_large_messages_arrive_intact_and_are_read_in_big_pieces(rig, monkeypatch):
    reads: list[int] = []
    original = bridge_mod._Client._sock_recv

    def counting(self, bufsize):
        data = original(self, bufsize)
        reads.append(len(data))
        return data

    monkeypatch.setattr(bridge_mod._Client, "_sock_recv", counting)
    pki = rig.pki
    payloads = [os.urandom(n) for n in (300_000, 256 * 1024, 1_000_000, 17, 70_000)]
    got: list[bytes] = []
    done = asyncio.Event()

    async def handler(topic: str, payload: bytes) -> None:
        assert topic == topics.device_topic("rec-a", "chunk")
        got.append(bytes(payload))
        if len(got) == len(payloads):
            done.set()

    async with MqttBridge(host="127.0.0.1", port=rig.port, client_id="bridge-test",
                          tls=tls_context(pki.ca_cert, pki.hub_cert, pki.hub_key),
                          subscriptions=topics.hub_subscriptions(None)) as bridge:
        server = asyncio.create_task(bridge.serve(handler))
        sender = raw_client(pki, "rec-a", rig.port)
        sender.connect("127.0.0.1", rig.port)
        sender.loop_start()
        try:
            for p in payloads:
                sender.publish(topics.device_topic("rec-a", "chunk"), p, qos=1).wait_for_publish(30)
            await asyncio.wait_for(done.wait(), 60)
        finally:
            sender.disconnect()
            sender.loop_stop()
            server.cancel()
    # handled concurrently, so compare as sets of digests; every one intact
    assert sorted(hashlib.sha256(g).digest() for g in got) == \
        sorted(hashlib.sha256(p).digest() for p in payloads)
    # a TLS record carries at most 16 KiB: without coalescing no read could be larger
    assert max(reads) > 16384, reads[:20]
