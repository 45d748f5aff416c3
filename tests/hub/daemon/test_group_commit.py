"""Segments that finish together are recorded in shared transactions (group commit,
hub/daemon/ingest.py ``Ingest._record``): each still gets its row, its two audit entries and
its receipt only after its commit, and the revocation check inside the transaction still
refuses a revoked recorder's segment without failing the others."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

from sqlalchemy import event, select

from lerec.hub import fleet
from lerec.hub.daemon.ingest import Ingest
from lerec.hub.db import Segment, make_engine, migrate, sessionmaker
from lerec.hub.db.audit_models import AuditEntry
from lerec.hub.storage import LocalBlobStore
from lerec.protocol import Chunk, Reject, Signed, Want, decode_any, encode_message, keys, topics
from support.databases import database_url
from support.rig import fake_segment, make_store

DEVICES = ("rec-a", "rec-b", "rec-c")


async def _env(pki, tmp_path):
    engine = make_engine(database_url(tmp_path))
    await migrate(engine)
    sessions = sessionmaker(engine)
    for d in DEVICES:
        f = pki.device(d)
        await fleet.enroll(sessions, d, f.signing_pub.read_bytes(), f.cert.read_bytes())
    replies: dict[str, list] = {d: [] for d in DEVICES}

    async def publish(topic, payload, retain=False):
        replies[topic.split("/")[3]].append(decode_any(payload))

    ingest = Ingest(hub_id="hub", sessions=sessions, store=LocalBlobStore(tmp_path / "store"),
                    signing_key=keys.ed25519_private(pki.hub_signing_key.read_bytes()),
                    box_key=keys.x25519_private(pki.hub_box_key.read_bytes()), publish=publish)
    commits: list[int] = []
    event.listen(engine.sync_engine, "commit", lambda conn: commits.append(1))
    return engine, sessions, ingest, replies, commits


def _chunks(store, row) -> list[bytes]:
    m = store.manifest(row)
    out = []
    for i in range(m.chunk_count):
        data = store.read_chunk(row, i)
        out.append(encode_message(Chunk(m.device_id, row.segment_id, i,
                                        hashlib.sha256(data).digest(), data)))
    return out


async def _all_but_last(pki, tmp_path, ingest, replies, per_device=2):
    """Announce ``per_device`` segments of every recorder and send all their chunks but the
    last; return the last chunks, the (device, segment id) pairs."""
    last, ids = [], []
    for d in DEVICES:
        store = make_store(pki, d, tmp_path / d)
        for _ in range(per_device):
            row = store.seal(fake_segment(store, 150_000, start=dt.datetime.now(dt.UTC)))
            await ingest.handle(topics.device_topic(d, "manifest"), row.manifest)
            assert isinstance(replies[d][-1], Want)
            *head, tail = _chunks(store, row)
            for c in head:
                await ingest.handle(topics.device_topic(d, "chunk"), c)
            last.append((d, tail))
            ids.append((d, row.segment_id))
    return last, ids


async def test_segments_finishing_together_share_commits_and_each_gets_row_audit_receipt(
        pki, tmp_path):
    engine, sessions, ingest, replies, commits = await _env(pki, tmp_path)
    last, ids = await _all_but_last(pki, tmp_path, ingest, replies)
    commits.clear()
    await asyncio.gather(*(ingest.handle(topics.device_topic(d, "chunk"), c) for d, c in last))
    assert len(commits) < len(last), f"{len(commits)} commits for {len(last)} segments"
    async with sessions() as s:
        stored = {r.segment_id for r in (await s.execute(select(Segment))).scalars()}
        audit = (await s.execute(select(AuditEntry).order_by(AuditEntry.idx))).scalars().all()
    assert stored == {sid for _, sid in ids}
    for _, sid in ids:  # ingested, then receipt issued, one after the other
        mine = [a.type for a in audit if f"segment:{sid}" in a.subjects.split()]
        assert mine == ["segment_ingested", "receipt_issued"], mine
    hub = keys.ed25519_public(pki.hub_signing_pub.read_bytes())
    for d, sid in ids:
        receipts = [r.verify(hub) for r in replies[d] if isinstance(r, Signed)]
        assert sid in {r.segment_id for r in receipts}
    await engine.dispose()


async def test_a_revoked_recorder_in_a_shared_commit_is_refused_and_the_others_stored(
        pki, tmp_path):
    engine, sessions, ingest, replies, commits = await _env(pki, tmp_path)
    last, ids = await _all_but_last(pki, tmp_path, ingest, replies)
    # revoked after its chunks arrived: the early (cached) check still passes, the check in
    # the recording transaction is the one that refuses it
    await fleet.revoke(sessions, "rec-c", "lost")
    await asyncio.gather(*(ingest.handle(topics.device_topic(d, "chunk"), c) for d, c in last))
    async with sessions() as s:
        stored = {r.segment_id for r in (await s.execute(select(Segment))).scalars()}
    assert stored == {sid for d, sid in ids if d != "rec-c"}
    assert any(isinstance(r, Reject) and r.code == "revoked" for r in replies["rec-c"])
    assert not any(isinstance(r, Signed) for r in replies["rec-c"])
    await engine.dispose()
