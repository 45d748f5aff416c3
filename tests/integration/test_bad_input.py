"""Bad input from a recorder, through the real broker into the real hub.

Each case is refused with a logged reason (and a row in ``rejections``), leaves nothing in the
blob store, and the hub goes on serving other recorders.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from lerec.deploy.broker import MAX_PACKET_SIZE
from lerec.hub.db import Rejection
from lerec.protocol import (
    Chunk,
    Reject,
    SegmentManifest,
    Want,
    decode_any,
    decode_signed,
    encode_message,
    keys,
    sign_message,
    topics,
)
from lerec.protocol import encoding

from support.rig import fake_segment, raw_client, stored_segments


class Device:
    """A raw MQTT client speaking as one recorder, collecting the hub's replies."""

    def __init__(self, rig, device_id):
        self.id = device_id
        self.replies: queue.Queue = queue.Queue()
        self.acks: dict[int, int] = {}
        subscribed = threading.Event()
        self.client = raw_client(rig.pki, device_id, rig.port)
        self.client.on_message = lambda c, u, m: self.replies.put(decode_any(m.payload))
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.connect("127.0.0.1", rig.port)
        self.client.loop_start()
        self.client.subscribe(topics.hub_topic(device_id, "reply"), qos=1)
        # The hub's replies are published once: the subscription must be in place first.
        assert subscribed.wait(10), "no SUBACK for the reply topic"

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self.acks[mid] = reason_code.value

    def publish(self, kind, payload, device=None):
        topic = topics.device_topic(device or self.id, kind)
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(30)
        return self.acks.get(info.mid)

    def reply(self, timeout=30.0):
        """The next reply; the hub's answer goes broker -> hub -> database -> broker, which
        takes a while on a loaded machine (a reply that never comes still fails: queue.Empty)."""
        return self.replies.get(timeout=timeout)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def env(rig):
    hub = rig.start_hub()
    dev = Device(rig, "rec-a")
    store, _ = rig.recorder("rec-a")
    yield rig, hub, dev, store
    dev.close()


def rejections(hub):
    async def q():
        async with hub.service.sessions() as s:
            return list((await s.execute(select(Rejection).order_by(Rejection.id))).scalars())

    return hub.call(q())


def objects(hub):
    return [p for p in hub.service.store.objects.rglob("*") if p.is_file()]


def assert_still_serving(rig, hub):
    store, up = rig.recorder("rec-b")
    store.seal(fake_segment(store, 5_000))
    with up:
        assert up.wait_idle(30), "hub stopped serving other recorders"
    assert any(r.device_id == "rec-b" for r in stored_segments(hub))


def sealed(store, size=40_000):
    row = store.seal(fake_segment(store, size))
    return row, store.manifest(row)


def expect_reject(dev, code):
    while True:
        r = dev.reply()
        if isinstance(r, Reject):
            assert r.code == code, (r.code, r.reason)
            return r


def test_forged_signature(env):
    rig, hub, dev, store = env
    row, m = sealed(store)
    forged = sign_message(m, Ed25519PrivateKey.generate())
    dev.publish("manifest", forged)
    r = expect_reject(dev, "bad_signature")
    assert r.fatal
    assert rejections(hub)[-1].code == "bad_signature"
    assert not objects(hub) and not any(hub.service.store.staging_dir.rglob("manifest"))
    assert_still_serving(rig, hub)


def test_manifest_device_differs_from_certificate_identity(env):
    rig, hub, dev, store = env
    # rec-b's own key, properly signed, but sent over rec-a's connection and topic.
    b_store, _ = rig.recorder("rec-b")
    row = b_store.seal(fake_segment(b_store, 10_000))
    dev.publish("manifest", row.manifest)
    r = expect_reject(dev, "bad_topic")
    assert "rec-b" in r.reason and "rec-a" in r.reason
    assert not objects(hub)


def test_publishing_on_another_recorders_topic_is_refused_by_broker_and_hub(env):
    rig, hub, dev, store = env
    row, m = sealed(store)
    reason = dev.publish("manifest", row.manifest, device="rec-b")
    assert reason == 135, "broker ACL must refuse (PUBACK 135 not authorized)"
    time.sleep(0.5)
    assert rejections(hub) == [], "the hub never saw it"
    # The hub refuses too if such a message reached it anyway.
    hub.call(hub.service.ingest.handle(topics.device_topic("rec-b", "manifest"), row.manifest))
    assert rejections(hub)[-1].code == "bad_topic"
    assert not objects(hub)


def _announce(dev, store, size=200_000):
    row, m = sealed(store, size)
    dev.publish("manifest", row.manifest)
    want = dev.reply()
    assert isinstance(want, Want)
    return row, m


def test_chunk_with_wrong_hash_then_duplicate_then_past_the_end(env):
    rig, hub, dev, store = env
    row, m = _announce(dev, store)
    data = store.read_chunk(row, 0)
    bad = Chunk("rec-a", m.segment_id, 0, hashlib.sha256(b"other").digest(), data)
    dev.publish("chunk", encode_message(bad))
    assert not expect_reject(dev, "chunk_hash").fatal
    good = Chunk("rec-a", m.segment_id, 0, hashlib.sha256(data).digest(), data)
    dev.publish("chunk", encode_message(good))
    dev.publish("chunk", encode_message(good))  # duplicate: ignored, not double counted
    past = Chunk("rec-a", m.segment_id, m.chunk_count, hashlib.sha256(data).digest(), data)
    dev.publish("chunk", encode_message(past))
    expect_reject(dev, "chunk_out_of_range")
    assert hub.service.ingest.stats.chunks_duplicate >= 1
    assert not objects(hub)
    # The transfer is intact: the real uploader finishes it from where it stands.
    store2, up = rig.recorder("rec-a")
    up.store = store
    with up:
        assert up.wait_idle(30)
    assert [r.seq for r in stored_segments(hub) if r.device_id == "rec-a"] == [0]


def test_tampered_ciphertext_is_refused_and_reported(env):
    rig, hub, dev, store = env
    row, m = _announce(dev, store)
    data = bytearray(store.read_chunk(row, 0))
    data[10] ^= 0xFF
    chunk = Chunk("rec-a", m.segment_id, 0, hashlib.sha256(data).digest(), bytes(data))
    dev.publish("chunk", encode_message(chunk))
    assert expect_reject(dev, "tampered").fatal
    assert not objects(hub)
    assert not (hub.service.store.staging_dir / "rec-a" / m.segment_id).exists()


def test_oversize_payload(env):
    rig, hub, dev, store = env
    # Through the broker: max_packet_size makes mosquitto drop it (and the connection).
    dev.client.publish(topics.device_topic("rec-a", "chunk"), b"\x00" * (MAX_PACKET_SIZE + 10),
                       qos=1)
    time.sleep(1.0)
    assert rejections(hub) == []
    # Reaching the hub anyway (another broker, misconfigured): refused before parsing.
    hub.call(hub.service.ingest.handle(topics.device_topic("rec-a", "chunk"),
                                       b"\xa0" * (encoding.MAX_MESSAGE_BYTES + 1)))
    assert rejections(hub)[-1].code == "oversize"
    assert_still_serving(rig, hub)


def test_unknown_version_and_garbage(env):
    rig, hub, dev, store = env
    row, m = sealed(store)
    msg = cbor2.loads(row.manifest)
    msg["v"] = 99
    dev.publish("manifest", encoding.encode(msg))
    expect_reject(dev, "unsupported_version")
    for payload in (row.manifest[: len(row.manifest) // 2], b"\xff\x00garbage", b""):
        dev.publish("manifest", payload)
        expect_reject(dev, "undecodable")
    dev.publish("chunk", b"not cbor at all")
    expect_reject(dev, "undecodable")
    codes = [r.code for r in rejections(hub)]
    assert codes.count("undecodable") == 4 and "unsupported_version" in codes
    assert all(r.reason for r in rejections(hub)), "every rejection has a reason"
    assert not objects(hub)
    assert_still_serving(rig, hub)


def test_replayed_manifest_after_storage_gets_the_same_receipt(env):
    rig, hub, dev, store = env
    store2, up = rig.recorder("rec-a")
    up.store = store
    row, _ = sealed(store)
    with up:
        assert up.wait_idle(30)
    first = stored_segments(hub)[0].receipt
    # Replies the uploader's own transfer produced (on the same reply topic) end with its
    # receipt: drop them up to that one, however late they are delivered.
    while getattr(dev.reply(), "wire", None) != first:
        pass
    before = hub.service.ingest.stats.receipts_resent
    dev.publish("manifest", row.manifest)
    again = dev.reply()
    assert again.wire == first
    assert hub.service.ingest.stats.receipts_resent == before + 1
    assert len(stored_segments(hub)) == 1
