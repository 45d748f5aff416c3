"""Fuzzing the ingest with hypothesis-generated and mutated messages.

In-process (at least 10,000 messages per run): valid manifests, chunks and heartbeats of real
sealed segments are mutated (bit flips, truncation, extension, splices, CBOR field swaps,
foreign topics) and fed to :meth:`Ingest.handle` with a real database and blob store. The
ingest must never raise, store nothing that does not verify, and log a reason for each
rejection. A smaller sample goes through the real broker into a running hub.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lerec.hub import fleet
from lerec.hub.daemon.ingest import Ingest
from lerec.hub.db.oversight_models import Alert
from lerec.hub.oversight.hooks import IngestHooks
from lerec.hub.db import Rejection, Segment, make_engine, migrate, sessionmaker, sqlite_url
from lerec.hub.storage import LocalBlobStore
from lerec.protocol import (
    Chunk,
    ClockInfo,
    Heartbeat,
    Receipt,
    SegmentManifest,
    decode_signed,
    encode_message,
    keys,
    topics,
)
from sqlalchemy import func, select
from support.rig import fake_segment, make_store, raw_client, stored_segments

DEVICES = ("rec-a", "rec-b")
TARGET_MESSAGES = 10_000


def valid_corpus(pki, root) -> list[tuple[str, bytes]]:
    """Real wire messages: manifests and chunks of sealed segments, and signed heartbeats."""
    corpus = []
    for d in DEVICES:
        store = make_store(pki, d, root / d, chunk_size=1024)
        for size in (0, 700, 3000, 5000):
            row = store.seal(fake_segment(store, size))
            m = decode_signed(row.manifest, SegmentManifest).message
            corpus.append((topics.device_topic(d, "manifest"), row.manifest))
            for i in range(m.chunk_count):
                data = store.read_chunk(row, i)
                chunk = Chunk(d, row.segment_id, i, hashlib.sha256(data).digest(), data)
                corpus.append((topics.device_topic(d, "chunk"), encode_message(chunk)))
        hb = Heartbeat(d, "officer-1", int(time.time() * 1000), "idle", 3, 0, 0, 10**9, "ok",
                       ClockInfo("synced", "hub", 0, 10), 80, "test")
        corpus.append((topics.device_topic(d, "heartbeat"), store.sign(hb)))
    return corpus


def _cbor_field_swap(data: bytes, draw) -> bytes:
    try:
        m = cbor2.loads(data)
    except Exception:
        return data
    if not isinstance(m, dict) or not m:
        return data
    key = draw(st.sampled_from(sorted(m, key=str)))
    m[key] = draw(st.one_of(st.none(), st.integers(-2**70, 2**70), st.binary(max_size=40),
                            st.text(max_size=40), st.lists(st.integers(), max_size=3),
                            st.booleans(), st.floats(allow_nan=True)))
    if draw(st.booleans()):
        m[draw(st.text(max_size=8))] = 1
    return cbor2.dumps(m, canonical=draw(st.booleans()))


@st.composite
def mutated(draw, corpus):
    topic, data = draw(st.sampled_from(corpus))
    op = draw(st.sampled_from(["keep", "flip", "truncate", "extend", "splice", "field",
                               "garbage", "topic"]))
    if op == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1:]
    elif op == "truncate":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    elif op == "extend":
        data = data + draw(st.binary(min_size=1, max_size=64))
    elif op == "splice":
        _, other = draw(st.sampled_from(corpus))
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + other[draw(st.integers(0, len(other))):]
    elif op == "field":
        data = _cbor_field_swap(data, draw)
    elif op == "garbage":
        data = draw(st.binary(max_size=300))
    elif op == "topic":
        topic = draw(st.sampled_from([
            topics.device_topic(DEVICES[1] if "/rec-a/" in topic else DEVICES[0],
                                topic.rsplit("/", 1)[1]),
            "lerec/v1/dev/unknown-dev/manifest", "lerec/v1/dev/rec-a/other", "lerec/v2/x",
            "lerec/v1/dev/REC A/chunk", draw(st.text(max_size=60)),
        ]))
    return topic, data


class Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.rejections = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("rejected message"):
            self.rejections += 1


@pytest.fixture
def ingest_env(pki, tmp_path):
    loop = asyncio.new_event_loop()
    # Always SQLite here (fast, in tmp_path): the PostgreSQL run covers the same code through
    # the broker sample and the other hub tests.
    engine = make_engine(sqlite_url(tmp_path / "hub" / "hub.db"))
    sessions = sessionmaker(engine)
    loop.run_until_complete(migrate(engine))
    for d in DEVICES:
        f = pki.device(d)
        loop.run_until_complete(fleet.enroll(sessions, d, f.signing_pub.read_bytes(),
                                             f.cert.read_bytes()))
    replies: list[tuple[str, bytes]] = []

    async def publish(topic, payload):
        replies.append((topic, payload))

    store = LocalBlobStore(tmp_path / "store")
    ingest = Ingest(hub_id="hub", sessions=sessions, store=store,
                    signing_key=keys.ed25519_private(pki.hub_signing_key.read_bytes()),
                    box_key=keys.x25519_private(pki.hub_box_key.read_bytes()), publish=publish,
                    chunk_workers=1)  # as deployed: chunks are staged by a worker process
    ingest.OFFLOAD_WITH_OTHERS = 0  # every transfer, not only concurrent ones
    counter = Counter()
    logging.getLogger("lerec.hub.daemon.ingest").addHandler(counter)
    try:
        yield loop, ingest, store, sessions, replies, counter
    finally:
        logging.getLogger("lerec.hub.daemon.ingest").removeHandler(counter)
        ingest.close()
        loop.run_until_complete(engine.dispose())
        loop.close()


def check_store_holds_only_verified(loop, store, sessions, pki) -> int:
    async def rows():
        async with sessions() as s:
            return (await s.execute(select(Segment))).scalars().all()

    segs = loop.run_until_complete(rows())
    by_ref = {}
    for seg in segs:
        key = keys.ed25519_public(pki.device(seg.device_id).signing_pub.read_bytes())
        m = decode_signed(seg.manifest, SegmentManifest).verify(key)
        assert m.segment_id == seg.segment_id and m.sha256.hex() == seg.sha256
        decode_signed(seg.receipt, Receipt).verify(
            keys.ed25519_public(pki.hub_signing_pub.read_bytes()))
        by_ref[seg.stored_ref] = seg
    objects = [p for p in store.objects.rglob("*") if p.is_file()]
    for p in objects:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name, "corrupt object stored"
        assert "sha256:" + p.name in by_ref, "object without a verified segment row"
    return len(segs)


def deliver(loop, ingest, topic: str, data: bytes) -> None:
    """One message the way the MQTT bridge delivers it: offered to the chunk fast lane first
    (a view of it), handled otherwise; what the fast lane took ends with its ``then``, run
    like a handler."""
    async def one() -> None:
        outcome: list = []
        if not ingest.offer(topic, memoryview(data), outcome.append):
            await ingest.handle(topic, data)
            return
        async with asyncio.timeout(30):
            while not outcome:
                await asyncio.sleep(0.0005)
        (then,) = outcome
        if then is not None:
            await then()

    loop.run_until_complete(one())


def test_fuzz_ingest_in_process(ingest_env, pki, tmp_path):
    loop, ingest, store, sessions, replies, counter = ingest_env
    corpus = valid_corpus(pki, tmp_path / "recorders")
    handled = 0

    @settings(max_examples=TARGET_MESSAGES // 12 + 50, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(mutated(corpus), min_size=1, max_size=24))
    def run(batch):
        nonlocal handled
        for topic, data in batch:
            deliver(loop, ingest, topic, data)  # must never raise
            handled += 1

    started = time.monotonic()
    run()
    while handled < TARGET_MESSAGES:  # top up if hypothesis drew short batches
        run()
    elapsed = time.monotonic() - started
    stored = check_store_holds_only_verified(loop, store, sessions, pki)

    async def count():
        async with sessions() as s:
            return (await s.execute(select(func.count()).select_from(Rejection))).scalar_one()

    rejected = sum(ingest.stats.rejected.values())
    assert rejected > handled // 3, "most mutations must be refused"
    assert loop.run_until_complete(count()) == rejected, "every rejection is recorded"
    assert counter.rejections == rejected, "every rejection is logged with its reason"
    # Counted recognisably: replays of valid messages are not rejections.
    assert ingest.stats.chunks_replayed + ingest.stats.manifests_replayed > 0
    worker = ingest._workers[0]
    assert worker.chunks > 0 and worker.deaths == 0, "the chunk worker took it all and stayed up"
    assert ingest.stats.chunks_fast_lane > 0, "valid chunks went through the fast lane"
    print(f"fuzz: {handled} messages in {elapsed:.1f}s, {rejected} rejected "
          f"({len(ingest.stats.rejected)} reasons), {stored} segments stored, "
          f"{ingest.stats.manifests_replayed} manifest / {ingest.stats.chunks_replayed} chunk "
          "replays")


def test_replays_are_recognised_and_counted(ingest_env, pki, tmp_path):
    loop, ingest, store, sessions, replies, counter = ingest_env
    rec = make_store(pki, "rec-a", tmp_path / "r", chunk_size=1024)
    row = rec.seal(fake_segment(rec, 2500))
    man = (topics.device_topic("rec-a", "manifest"), row.manifest)
    chunks = []
    for i in range(3):
        data = rec.read_chunk(row, i)
        chunks.append((topics.device_topic("rec-a", "chunk"),
                       encode_message(Chunk("rec-a", row.segment_id, i,
                                            hashlib.sha256(data).digest(), data))))
    run = loop.run_until_complete
    run(ingest.handle(*man))
    run(ingest.handle(*chunks[0]))
    run(ingest.handle(*chunks[0]))  # duplicate while in transfer
    for c in chunks[1:]:
        run(ingest.handle(*c))
    assert ingest.stats.segments_stored == 1
    run(ingest.handle(*man))  # replayed manifest: receipt again, nothing stored twice
    run(ingest.handle(*chunks[1]))  # replayed chunk of a stored segment
    assert ingest.stats.segments_stored == 1
    assert ingest.stats.manifests_replayed == 1
    assert ingest.stats.chunks_replayed == 2
    assert ingest.stats.receipts_resent == 1
    assert not ingest.stats.rejected
    receipts = [p for _, p in replies if p and decode_any_is_receipt(p)]
    assert len(receipts) == 2 and receipts[0] == receipts[1]


def test_a_replaced_segment_is_refused_and_raises_an_alert(ingest_env, pki, tmp_path):
    """The recorder signs a second, different segment under a stored sequence number (and
    another under a stored segment id): each is refused (fatal) and raises one chain_broken
    alert naming device, officer and time window; sending it again raises nothing new."""
    loop, ingest, store, sessions, replies, counter = ingest_env
    hooks = IngestHooks(sessions)
    ingest.on_replaced = hooks.on_replaced
    rec = make_store(pki, "rec-a", tmp_path / "r", chunk_size=1024)
    row = rec.seal(fake_segment(rec, 1500))
    run = loop.run_until_complete
    run(ingest.handle(topics.device_topic("rec-a", "manifest"), row.manifest))
    for i in range(2):
        data = rec.read_chunk(row, i)
        run(ingest.handle(topics.device_topic("rec-a", "chunk"), encode_message(
            Chunk("rec-a", row.segment_id, i, hashlib.sha256(data).digest(), data))))
    assert ingest.stats.segments_stored == 1
    original = decode_signed(row.manifest, SegmentManifest).message
    other_seq = dataclasses.replace(original, segment_id="f" * 32, sha256=b"\x01" * 32,
                                    officer_id="officer-9")
    other_id = dataclasses.replace(original, seq=original.seq + 1, sha256=b"\x02" * 32)
    for forged in (other_seq, other_id, other_seq):
        run(ingest.handle(topics.device_topic("rec-a", "manifest"), rec.sign(forged)))
    assert ingest.stats.rejected == {"seq_reused": 2, "segment_id_reused": 1}

    async def alerts():
        async with sessions() as s:
            return (await s.execute(select(Alert).order_by(Alert.id))).scalars().all()

    got = run(alerts())
    assert [a.kind for a in got] == ["chain_broken", "chain_broken"]
    assert [(a.first_seq, a.last_seq) for a in got] == [(original.seq, original.seq),
                                                        (original.seq + 1, original.seq + 1)]
    for a in got:
        assert a.device_id == "rec-a"
        assert a.window_start is not None and a.window_end is not None
        assert a.segment_id == row.segment_id and "rec-a" in a.message_zh
        assert "替换" in a.message_zh and "已拒收" in a.message_zh
    assert set(got[0].officers) == {"officer-9"}  # (the original was recorded unassigned)
    assert f"序号 {original.seq} 的音像记录已于" in got[0].message_zh
    assert f"记录编号 {original.segment_id} 已被设备 rec-a" in got[1].message_zh
    # the stored segment is untouched
    assert run(stored_count(sessions)) == 1


async def stored_count(sessions) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(Segment)))


def decode_any_is_receipt(payload: bytes) -> bool:
    from lerec.protocol import decode_any

    try:
        d = decode_any(payload)
    except Exception:
        return False
    return getattr(d, "message", None).__class__ is Receipt


def test_fuzz_sample_through_the_real_broker(rig, tmp_path):
    hub = rig.start_hub()
    corpus = valid_corpus(rig.pki, tmp_path / "recorders")
    corpus = [(t, p) for t, p in corpus if "/rec-b/" in t]  # the broker ACL pins the topic
    draw = st.lists(mutated(corpus), min_size=300, max_size=300)

    def deliverable(topic: str) -> bool:  # what the broker ACL lets rec-b publish
        return (topic.startswith("lerec/v1/dev/rec-b/") and topic.count("/") == 4
                and topic.rsplit("/", 1)[1] in topics.DEVICE_KINDS)

    # .example() may draw many unmutated, valid messages (a hub accepts those silently), so
    # keep drawing until at least 100 deliverable messages really differ from the corpus.
    valid = set(corpus)
    sample: list = []
    while sum(deliverable(t) and (t, p) not in valid for t, p in sample) < 100:
        sample += draw.example()
    c = raw_client(rig.pki, "rec-b", rig.port)
    c.connect("127.0.0.1", rig.port)
    c.loop_start()
    deadline = time.monotonic() + 10
    while not c.is_connected() and time.monotonic() < deadline:  # CONNACK before publishing
        time.sleep(0.01)
    sent = 0
    for topic, data in sample:
        if not deliverable(topic):
            continue  # the ACL would refuse it before the hub sees it
        c.publish(topic, data, qos=1).wait_for_publish(10)
        sent += 1
    c.disconnect()
    c.loop_stop()
    ingest = hub.service.ingest
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = sum(ingest.stats.rejected.values()) + ingest.stats.chunks_replayed
        if seen >= sent // 3:
            break
        time.sleep(0.1)
    time.sleep(1.0)
    assert sum(ingest.stats.rejected.values()) > 0
    # The hub is still up and stores a valid segment afterwards; nothing invalid was stored.
    store, up = rig.recorder("rec-a")
    seg = fake_segment(store, 20_000)
    content = seg.path.read_bytes()
    store.seal(seg)
    with up:
        assert up.wait_idle(90)
    rows = stored_segments(hub)
    assert any(hub.service.store.path_for(r.stored_ref).read_bytes() == content for r in rows)
    for r in rows:
        data = hub.service.store.path_for(r.stored_ref).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r.sha256
