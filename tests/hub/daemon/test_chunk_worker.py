"""The chunk worker process (hub/daemon/chunkwork.py): chunks checked, decrypted and staged
beside the event loop, with the same refusals as on the loop, and nothing lost when it dies.

Every test runs the real worker process with real sealed segments, a real SQLite database and a
real blob store; ``Ingest.handle`` is fed the recorders' wire messages directly."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import signal
import subprocess
import sys

import pytest
from lerec.hub import fleet
from lerec.hub.daemon.chunkwork import ChunkHashMismatch, ChunkWorker, WorkerGone
from lerec.hub.daemon.ingest import Ingest
from lerec.hub.daemon.staging import Transfer
from lerec.hub.db import Segment, make_engine, migrate, sessionmaker
from lerec.hub.storage import LocalBlobStore
from lerec.protocol import (
    Chunk,
    Reject,
    SegmentManifest,
    Signed,
    Want,
    decode_any,
    decode_signed,
    encode_message,
    keys,
    topics,
)
from sqlalchemy import select
from support.databases import database_url
from support.rig import fake_segment, make_store

DEVICES = ("rec-a", "rec-b")


class Env:
    def __init__(self, pki, tmp_path, workers: int = 1) -> None:
        self.pki, self.tmp = pki, tmp_path
        self.loop = asyncio.new_event_loop()
        self.engine = make_engine(database_url(tmp_path))
        self.sessions = sessionmaker(self.engine)
        self.run(migrate(self.engine))
        for d in DEVICES:
            f = pki.device(d)
            self.run(fleet.enroll(self.sessions, d, f.signing_pub.read_bytes(),
                                  f.cert.read_bytes()))
        self.replies: dict[str, list] = {d: [] for d in DEVICES}

        async def publish(topic, payload, retain=False):
            self.replies[topic.split("/")[3]].append(decode_any(payload))

        self.store = LocalBlobStore(tmp_path / "store")
        self.ingest = Ingest(
            hub_id="hub", sessions=self.sessions, store=self.store,
            signing_key=keys.ed25519_private(pki.hub_signing_key.read_bytes()),
            box_key=keys.x25519_private(pki.hub_box_key.read_bytes()), publish=publish,
            chunk_workers=workers)
        # every transfer to the worker, even one alone (the default is tested on its own)
        self.ingest.OFFLOAD_WITH_OTHERS = 0
        self.cards = {d: make_store(pki, d, tmp_path / "cards" / d, chunk_size=4096)
                      for d in DEVICES}

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    @property
    def worker(self) -> ChunkWorker:
        return self.ingest._workers[0]

    def segment(self, device: str, size: int):
        """A sealed segment: (content, manifest wire, chunk messages)."""
        card = self.cards[device]
        seg = fake_segment(card, size)
        content = seg.path.read_bytes()
        row = card.seal(seg)
        m = decode_signed(row.manifest, SegmentManifest).message
        chunks = []
        for i in range(m.chunk_count):
            data = card.read_chunk(row, i)
            chunks.append(Chunk(device, row.segment_id, i, hashlib.sha256(data).digest(), data))
        return content, row.manifest, chunks

    def send(self, device: str, kind: str, payload) -> None:
        if not isinstance(payload, bytes):
            payload = encode_message(payload)
        self.run(self.ingest.handle(topics.device_topic(device, kind), payload))

    def last_reply(self, device: str):
        return self.replies[device][-1]

    def stored(self) -> list[Segment]:
        async def rows():
            async with self.sessions() as s:
                return (await s.execute(select(Segment))).scalars().all()
        return self.run(rows())

    def stored_content(self, segment_id: str) -> bytes:
        row = next(r for r in self.stored() if r.segment_id == segment_id)
        return self.store.path_for(row.stored_ref).read_bytes()

    def close(self) -> None:
        self.ingest.close()
        self.run(self.engine.dispose())
        self.loop.close()


@pytest.fixture
def env(pki, tmp_path):
    e = Env(pki, tmp_path)
    try:
        yield e
    finally:
        e.close()


def _upload(env: Env, device: str, size: int, order=None) -> tuple[bytes, str]:
    content, manifest, chunks = env.segment(device, size)
    env.send(device, "manifest", manifest)
    assert isinstance(env.last_reply(device), Want)
    for i in order(len(chunks)) if order else range(len(chunks)):
        env.send(device, "chunk", chunks[i])
    return content, chunks[0].segment_id


def _receipted(env: Env, device: str, segment_id: str) -> bool:
    r = env.last_reply(device)
    return isinstance(r, Signed) and r.message.segment_id == segment_id


def test_the_worker_stages_every_chunk_and_segments_are_stored_exactly(env):
    sizes = (0, 700, 4096, 50_000)
    total_chunks = 0
    for d in DEVICES:
        for size in sizes:
            content, sid = _upload(env, d, size)
            assert _receipted(env, d, sid)
            assert env.stored_content(sid) == content
            total_chunks += max(1, -(-size // 4096))
    assert env.worker.started == 1 and env.worker.deaths == 0
    assert env.worker.chunks == total_chunks, "every chunk went through the worker"
    assert not env.ingest.stats.rejected
    for row in env.stored():
        data = env.store.path_for(row.stored_ref).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256


def test_out_of_order_and_duplicate_chunks(env):
    # reversed: the worker's running hash covers nothing, the digest is read from the file
    content, sid = _upload(env, "rec-a", 40_000, order=lambda n: range(n - 1, -1, -1))
    assert _receipted(env, "rec-a", sid) and env.stored_content(sid) == content
    # a duplicate in the middle of a transfer is recognised (the loop marks only what the
    # worker has written) and nothing is counted twice
    content, manifest, chunks = env.segment("rec-b", 20_000)
    env.send("rec-b", "manifest", manifest)
    env.send("rec-b", "chunk", chunks[0])
    env.send("rec-b", "chunk", chunks[0])
    assert env.ingest.stats.chunks_duplicate == 1
    for c in chunks[1:]:
        env.send("rec-b", "chunk", c)
    assert _receipted(env, "rec-b", chunks[0].segment_id)
    assert env.stored_content(chunks[0].segment_id) == content


def test_wrong_hash_and_tampered_chunks_are_refused_by_the_worker(env):
    content, manifest, chunks = env.segment("rec-a", 20_000)
    env.send("rec-a", "manifest", manifest)
    good = chunks[1]
    env.send("rec-a", "chunk", Chunk("rec-a", good.segment_id, 1,
                                     hashlib.sha256(b"other").digest(), good.data))
    r = env.last_reply("rec-a")
    assert isinstance(r, Reject) and r.code == "chunk_hash" and not r.fatal
    # the transfer is intact: the right chunks complete it
    for c in chunks:
        env.send("rec-a", "chunk", c)
    assert _receipted(env, "rec-a", good.segment_id)
    assert env.stored_content(good.segment_id) == content

    # ciphertext changed, hash recomputed to match: only the AEAD tag can tell
    content, manifest, chunks = env.segment("rec-a", 20_000)
    env.send("rec-a", "manifest", manifest)
    env.send("rec-a", "chunk", chunks[0])
    data = bytearray(chunks[2].data)
    data[10] ^= 1
    env.send("rec-a", "chunk", Chunk("rec-a", chunks[2].segment_id, 2,
                                     hashlib.sha256(data).digest(), bytes(data)))
    r = env.last_reply("rec-a")
    assert isinstance(r, Reject) and r.code == "tampered" and r.fatal
    assert not (env.store.staging_dir / "rec-a" / chunks[0].segment_id).exists()
    assert chunks[0].segment_id not in {s.segment_id for s in env.stored()}
    # the worker is still serving
    content, sid = _upload(env, "rec-b", 9000)
    assert _receipted(env, "rec-b", sid) and env.stored_content(sid) == content
    assert env.worker.deaths == 0


def test_a_killed_worker_loses_nothing(env):
    """SIGKILL between chunks and with a chunk in flight: the rest is staged on the event loop,
    the segment's hash is read back from the staged file, and a new worker takes later
    transfers."""
    env.worker.RESPAWN_AFTER = 0.0
    content, manifest, chunks = env.segment("rec-a", 60_000)
    env.send("rec-a", "manifest", manifest)
    for c in chunks[:5]:
        env.send("rec-a", "chunk", c)
    first = env.worker.pid
    os.kill(first, signal.SIGKILL)
    for c in chunks[5:]:
        env.send("rec-a", "chunk", c)
    assert _receipted(env, "rec-a", chunks[0].segment_id)
    assert env.stored_content(chunks[0].segment_id) == content
    assert env.worker.deaths == 1

    # a chunk in flight when the worker dies: stopped, handed a chunk, then killed
    content, manifest, chunks = env.segment("rec-b", 30_000)
    env.send("rec-b", "manifest", manifest)
    assert env.worker.started == 2, "a new worker takes the new transfer"
    env.send("rec-b", "chunk", chunks[0])
    pid = env.worker.pid
    os.kill(pid, signal.SIGSTOP)

    async def in_flight():
        task = asyncio.ensure_future(
            env.ingest.handle(topics.device_topic("rec-b", "chunk"), encode_message(chunks[1])))
        while not env.worker._pending:
            await asyncio.sleep(0.001)
        os.kill(pid, signal.SIGKILL)
        await task

    env.run(in_flight())
    assert env.worker.deaths == 2
    for c in chunks[2:]:
        env.send("rec-b", "chunk", c)
    assert _receipted(env, "rec-b", chunks[0].segment_id)
    assert env.stored_content(chunks[0].segment_id) == content
    assert not env.ingest.stats.rejected


def test_a_transfer_resumed_after_a_hub_restart_goes_to_the_worker(pki, tmp_path):
    e = Env(pki, tmp_path)
    content, manifest, chunks = e.segment("rec-a", 30_000)
    try:
        e.send("rec-a", "manifest", manifest)
        for c in chunks[:3]:
            e.send("rec-a", "chunk", c)
    finally:
        e.close()  # the hub stops mid-transfer; the worker goes with it
    e2 = Env(pki, tmp_path)
    e2.cards = e.cards
    try:
        e2.send("rec-a", "manifest", manifest)
        want = e2.last_reply("rec-a")
        assert isinstance(want, Want) and want.missing == ((3, len(chunks)),)
        for c in chunks[3:]:
            e2.send("rec-a", "chunk", c)
        assert _receipted(e2, "rec-a", chunks[0].segment_id)
        assert e2.stored_content(chunks[0].segment_id) == content
        assert e2.worker.chunks == len(chunks) - 3
    finally:
        e2.close()


def test_the_worker_reports_a_full_disk_and_marks_nothing(pki, tmp_path):
    """ENOSPC in the worker comes back as an OSError; the chunk stays missing."""
    card = make_store(pki, "rec-a", tmp_path / "card", chunk_size=48 * 1024)
    row = card.seal(fake_segment(card, 200_000))
    signed = decode_signed(row.manifest, SegmentManifest)
    disk = tmp_path / "tiny"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    loop = asyncio.new_event_loop()
    worker = ChunkWorker(keys.x25519_private(pki.hub_box_key.read_bytes()), slots=2)
    try:
        t = Transfer.create(disk / "rec-a" / row.segment_id, signed)

        async def go():
            tid = worker.open(t)
            assert tid is not None
            for i in (0, 1):
                data = card.read_chunk(row, i)
                try:
                    await worker.chunk(tid, i, data, hashlib.sha256(data).digest(), False)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC and i == 1
                else:
                    assert i == 0, "the second chunk cannot fit"
                    t.mark(i)
            with pytest.raises(ChunkHashMismatch):
                await worker.chunk(tid, 2, b"x" * 100, bytes(32), False)
            worker.close(tid)
            with pytest.raises(WorkerGone):
                await worker.digest(tid)

        loop.run_until_complete(go())
        assert t.has(0) and not t.has(1) and t.missing_ranges()[0][0] == 1
        assert Transfer.load(t.root).missing_ranges()[0][0] == 1, "on disk too"
        t.close()
    finally:
        worker.shutdown()
        loop.close()
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_shutdown_ends_the_worker_and_its_help(tmp_path, pki):
    loop = asyncio.new_event_loop()
    worker = ChunkWorker(keys.x25519_private(pki.hub_box_key.read_bytes()))
    card = make_store(pki, "rec-a", tmp_path / "card", chunk_size=4096)
    row = card.seal(fake_segment(card, 5000))
    t = Transfer.create(tmp_path / "staging" / row.segment_id,
                        decode_signed(row.manifest, SegmentManifest))

    async def go():
        assert worker.open(t) is not None

    loop.run_until_complete(go())
    pid = worker.pid
    assert pid is not None and os.path.exists(f"/proc/{pid}")
    loop.run_until_complete(asyncio.sleep(0))
    worker.shutdown()
    assert worker.pid is None
    assert not os.path.exists(f"/proc/{pid}"), "the worker exited and was reaped"
    t.close()
    loop.close()
    out = subprocess.run([sys.executable, "-m", "lerec.hub.daemon.chunkwork", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "chunk worker" in out


def test_a_hung_worker_is_replaced_and_its_chunk_done_on_the_loop(env):
    """A worker that stops answering (here: SIGSTOP) is killed after ``ANSWER_TIMEOUT``; the
    chunk it held is staged on the event loop and the segment is stored exactly."""
    content, manifest, chunks = env.segment("rec-a", 30_000)
    env.send("rec-a", "manifest", manifest)
    env.send("rec-a", "chunk", chunks[0])  # answered: the worker has started and serves
    pid = env.worker.pid
    assert pid is not None and env.worker.deaths == 0 and env.worker.chunks == 1
    # Short only now: the first answer waits for the worker process to start (imports take
    # up to a second on a loaded machine), which must not count as hanging.
    env.worker.ANSWER_TIMEOUT = 0.4
    os.kill(pid, signal.SIGSTOP)
    env.send("rec-a", "chunk", chunks[1])  # returns once the watchdog gave up on the worker
    assert env.worker.deaths == 1 and env.worker.pid is None
    assert not os.path.exists(f"/proc/{pid}"), "the hung worker was killed and reaped"
    for c in chunks[2:]:
        env.send("rec-a", "chunk", c)
    assert _receipted(env, "rec-a", chunks[0].segment_id)
    assert env.stored_content(chunks[0].segment_id) == content


def test_chunks_wait_for_a_free_slot(env):
    """More recorders send at once than there are slots: chunks queue for a slot, none is
    overwritten while the worker still reads it."""
    env.worker.slots = 1
    segs = {d: env.segment(d, 40_000) for d in DEVICES}
    for d, (_content, manifest, _chunks) in segs.items():
        env.send(d, "manifest", manifest)

    async def both():
        async def one(d):
            for c in segs[d][2]:
                await env.ingest.handle(topics.device_topic(d, "chunk"), encode_message(c))
        await asyncio.gather(*(one(d) for d in DEVICES))

    env.run(both())
    for d, (content, _manifest, chunks) in segs.items():
        assert _receipted(env, d, chunks[0].segment_id)
        assert env.stored_content(chunks[0].segment_id) == content
    assert env.worker.chunks == sum(len(s[2]) for s in segs.values())
    assert env.worker.slot_waits > 0, "the second recorder's chunks did wait"


def test_one_upload_alone_stays_on_the_loop_and_concurrent_ones_go_to_the_worker(env):
    """The default policy: a lone transfer is staged on the event loop (the worker would only
    slow one recorder down); a transfer that begins while another is active goes to the
    worker."""
    env.ingest.OFFLOAD_WITH_OTHERS = Ingest.OFFLOAD_WITH_OTHERS
    assert Ingest.OFFLOAD_WITH_OTHERS == 1
    content, sid = _upload(env, "rec-a", 20_000)
    assert _receipted(env, "rec-a", sid) and env.stored_content(sid) == content
    assert env.worker.chunks == 0 and env.worker.started == 0, "alone: all on the loop"

    a = env.segment("rec-a", 20_000)
    b = env.segment("rec-b", 20_000)
    env.send("rec-a", "manifest", a[1])  # alone when it begins: on the loop
    env.send("rec-b", "manifest", b[1])  # rec-a's transfer is active: to the worker
    for ca, cb in zip(a[2], b[2]):
        env.send("rec-a", "chunk", ca)
        env.send("rec-b", "chunk", cb)
    for d, (content, _m, chunks) in (("rec-a", a), ("rec-b", b)):
        assert _receipted(env, d, chunks[0].segment_id)
        assert env.stored_content(chunks[0].segment_id) == content
    assert env.worker.chunks == len(b[2]), "only the second, concurrent transfer"


# -- the fast lane (Ingest.offer): chunks handed to the worker as they are read -----------------


def _offer_all(env: Env, device: str, chunks, *, wire=encode_message):
    """Offer chunks to the fast lane the way the MQTT bridge does (a view of each message)
    and run the loop until every chunk it took is answered. Returns what it took, how many
    requests were in flight right after the offers, and each chunk's ``then`` values."""
    outcomes: dict[int, list] = {}
    sid = chunks[0].segment_id
    have = env.store.staging_dir / device / sid / "have"
    held_when_acked: list[bool] = []

    async def go():
        taken = []
        for n, c in enumerate(chunks):
            def then(value, n=n, index=c.index):
                if value is None:  # acknowledged: the chunk must be on disk already
                    held_when_acked.append(have.read_bytes()[index] == 1)
                outcomes.setdefault(n, []).append(value)
            taken.append(env.ingest.offer(topics.device_topic(device, "chunk"),
                                          memoryview(wire(c)), then))
        in_flight = len(env.worker._pending)
        async with asyncio.timeout(30):
            while sum(map(len, outcomes.values())) < sum(taken):
                await asyncio.sleep(0.001)
        return taken, in_flight

    taken, in_flight = env.run(go())
    assert all(held_when_acked)
    return taken, in_flight, outcomes


def _then(env: Env, value) -> None:
    """Do what the bridge does with a ``then``: run it like a handler (None: nothing to run)."""
    if value is not None:
        env.run(value())


def test_fast_lane_pipelines_a_recorders_chunks_and_stores_the_segment_exactly(env):
    content, manifest, chunks = env.segment("rec-a", 50_000)  # 13 chunks; the worker has 8 slots
    env.send("rec-a", "manifest", manifest)
    assert isinstance(env.last_reply("rec-a"), Want)
    taken, in_flight, outcomes = _offer_all(env, "rec-a", chunks)
    assert all(taken)
    assert in_flight == env.worker.slots, "one recorder's chunks in flight together"
    assert env.worker.slot_waits == len(chunks) - env.worker.slots, "the rest queued for a slot"
    assert all(len(v) == 1 for v in outcomes.values()), "each chunk answered exactly once"
    finishing = [v[0] for v in outcomes.values() if v[0] is not None]
    assert len(finishing) == 1, "acknowledged as written, except the one completing the segment"
    assert not _receipted(env, "rec-a", chunks[0].segment_id)
    _then(env, finishing[0])  # its acknowledgement waits for the store and the receipt
    assert _receipted(env, "rec-a", chunks[0].segment_id)
    assert env.stored_content(chunks[0].segment_id) == content
    assert env.worker.chunks == len(chunks) and not env.ingest.stats.rejected
    assert env.ingest.stats.chunks_fast_lane == len(chunks)
    # the hash came from the worker's running hash, the receipt from one store
    assert [s.segment_id for s in env.stored()] == [chunks[0].segment_id]


def test_fast_lane_hands_what_the_worker_refuses_to_the_ordinary_path(env):
    content, manifest, chunks = env.segment("rec-a", 20_000)
    sid = chunks[0].segment_id
    env.send("rec-a", "manifest", manifest)
    bad = Chunk("rec-a", sid, 1, hashlib.sha256(b"other").digest(), chunks[1].data)
    taken, _, outcomes = _offer_all(env, "rec-a", [chunks[0], bad])
    assert taken == [True, True] and outcomes[0] == [None]
    (retry,) = outcomes[1]
    assert callable(retry), "refused by the worker: run through Ingest.handle"
    _then(env, retry)
    r = env.last_reply("rec-a")
    assert isinstance(r, Reject) and r.code == "chunk_hash" and not r.fatal
    assert env.ingest.stats.rejected == {"chunk_hash": 1}
    # the transfer is intact: the right chunks complete it, through the lane
    taken, _, outcomes = _offer_all(env, "rec-a", chunks[1:])
    assert all(taken)
    for (value,) in outcomes.values():
        _then(env, value)
    assert _receipted(env, "rec-a", sid) and env.stored_content(sid) == content

    # ciphertext changed, hash recomputed to match: refused as tampered, the segment dropped
    content, manifest, chunks = env.segment("rec-b", 20_000)
    sid = chunks[0].segment_id
    env.send("rec-b", "manifest", manifest)
    data = bytearray(chunks[2].data)
    data[10] ^= 1
    forged = Chunk("rec-b", sid, 2, hashlib.sha256(data).digest(), bytes(data))
    taken, _, outcomes = _offer_all(env, "rec-b", [chunks[0], forged])
    assert taken == [True, True] and outcomes[0] == [None]
    _then(env, outcomes[1][0])
    r = env.last_reply("rec-b")
    assert isinstance(r, Reject) and r.code == "tampered" and r.fatal
    assert not (env.store.staging_dir / "rec-b" / sid).exists()
    assert sid not in {s.segment_id for s in env.stored()}
    assert env.worker.deaths == 0


def test_fast_lane_leaves_everything_else_to_the_ordinary_path(env):
    content, manifest, chunks = env.segment("rec-a", 20_000)
    sid = chunks[0].segment_id
    called: list = []

    def offer(topic: str, payload) -> bool:
        if not isinstance(payload, memoryview):
            payload = memoryview(payload if isinstance(payload, bytes)
                                 else encode_message(payload))
        return env.ingest.offer(topic, payload, called.append)

    chunk_topic = topics.device_topic("rec-a", "chunk")
    assert not offer(chunk_topic, chunks[0]), "no transfer yet: the manifest comes first"
    env.send("rec-a", "manifest", manifest)
    assert not offer(topics.device_topic("rec-a", "manifest"), manifest)
    assert not offer("lerec/v1/dev/rec-a/nonsense", chunks[0])
    assert not offer(topics.device_topic("rec-b", "chunk"), chunks[0]), "another's topic"
    assert not offer(chunk_topic, b"\xa2garbage")
    past = len(chunks)
    assert not offer(chunk_topic, Chunk("rec-a", sid, past, chunks[0].sha256, chunks[0].data))
    short = chunks[0].data[:-1]
    assert not offer(chunk_topic, Chunk("rec-a", sid, 0, hashlib.sha256(short).digest(), short))
    env.ingest._active_until.clear()
    assert not offer(chunk_topic, chunks[0]), "revocation not checked lately: the database"
    env.send("rec-a", "chunk", chunks[0])  # (which checks it)
    assert not offer(chunk_topic, chunks[0]), "held already: a replay, logged as such"
    env.ingest._open[("rec-a", sid)].detach()
    assert not offer(chunk_topic, chunks[1]), "a transfer staged on the event loop"
    assert not called, "nothing declined is ever answered"
    for c in chunks[1:]:
        env.send("rec-a", "chunk", c)
    assert _receipted(env, "rec-a", sid) and env.stored_content(sid) == content
    assert env.ingest.stats.chunks_replayed == 0 and not env.ingest.stats.rejected


def test_fast_lane_chunks_in_flight_when_the_worker_dies_are_not_lost(env):
    """Stopped with chunks in flight and more waiting for a slot, then killed: every chunk is
    handed back and staged on the event loop; the segment is stored exactly."""
    env.worker.RESPAWN_AFTER = 0.0
    content, manifest, chunks = env.segment("rec-a", 50_000)
    env.send("rec-a", "manifest", manifest)
    pid = env.worker.pid
    os.kill(pid, signal.SIGSTOP)
    outcomes: dict[int, list] = {}

    async def go():
        for n, c in enumerate(chunks):
            assert env.ingest.offer(topics.device_topic("rec-a", "chunk"),
                                    memoryview(encode_message(c)),
                                    lambda then, n=n: outcomes.setdefault(n, []).append(then))
        assert len(env.worker._pending) == env.worker.slots
        os.kill(pid, signal.SIGKILL)
        async with asyncio.timeout(30):
            while len(outcomes) < len(chunks):
                await asyncio.sleep(0.001)

    env.run(go())
    assert env.worker.deaths == 1
    assert all(len(v) == 1 and callable(v[0]) for v in outcomes.values())
    for n in range(len(chunks)):
        _then(env, outcomes[n][0])  # the bridge runs each through Ingest.handle
    assert _receipted(env, "rec-a", chunks[0].segment_id)
    assert env.stored_content(chunks[0].segment_id) == content
    assert not env.ingest.stats.rejected


def test_fast_lane_recognises_a_chunk_sent_again_while_it_is_in_flight(env):
    """The same chunk twice before the worker answered (a broker redelivery): the second is a
    replay once the first is staged; if the first is refused, the second is handled on its
    own. Through Ingest.handle, the same chunk waits for the one in flight."""
    content, manifest, chunks = env.segment("rec-a", 20_000)
    sid = chunks[0].segment_id
    env.send("rec-a", "manifest", manifest)
    bad = Chunk("rec-a", sid, 1, hashlib.sha256(b"other").digest(), chunks[1].data)
    taken, _, outcomes = _offer_all(env, "rec-a", [chunks[0], chunks[0], bad, chunks[1]])
    assert taken == [True] * 4
    assert outcomes[0] == [None] and outcomes[1] == [None], "staged once, then a replay"
    assert env.ingest.stats.chunks_duplicate == 1 and env.ingest.stats.chunks_replayed == 1
    refused, retried = outcomes[2][0], outcomes[3][0]
    assert callable(refused) and callable(retried), "the first refused: both the ordinary way"
    _then(env, refused)
    r = env.last_reply("rec-a")
    assert isinstance(r, Reject) and r.code == "chunk_hash"
    _then(env, retried)  # the good one, staged now
    assert env.ingest._open[("rec-a", sid)].transfer.has(1)

    # Ingest.handle with the same chunk in flight (worker stopped): it waits for that one
    pid = env.worker.pid
    os.kill(pid, signal.SIGSTOP)

    async def both():
        got: list = []
        assert env.ingest.offer(topics.device_topic("rec-a", "chunk"),
                                memoryview(encode_message(chunks[2])), got.append)
        slow = asyncio.ensure_future(env.ingest.handle(topics.device_topic("rec-a", "chunk"),
                                                       encode_message(chunks[2])))
        await asyncio.sleep(0.2)
        assert not slow.done(), "waiting for the chunk in flight"
        os.kill(pid, signal.SIGCONT)
        async with asyncio.timeout(30):
            await slow
            while not got:
                await asyncio.sleep(0.001)
        return got

    assert env.run(both()) == [None]
    assert env.ingest.stats.chunks_duplicate == 2, "the second copy counted as a replay"
    for c in chunks[3:]:
        env.send("rec-a", "chunk", c)
    assert _receipted(env, "rec-a", sid) and env.stored_content(sid) == content
    assert env.ingest.stats.rejected == {"chunk_hash": 1}
