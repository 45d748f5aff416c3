"""Retention: two different approvers, linked segments never deleted, a deletion record, an
audit entry, the blob gone from a real LocalBlobStore, and no gap alert for the hole."""

from __future__ import annotations

import datetime as dt

import pytest
from lerec.hub.audit import log as audit
from lerec.hub.oversight import (
    DeletionRefused,
    DuplicateApproval,
    LocalDeleter,
    OversightSettings,
    approve_deletion,
    deletion_candidates,
    deletions,
    execute_deletion,
    link_segment,
    list_alerts,
    on_segment_stored,
    purge_deleted_blobs,
    request_deletion,
    retention_status,
    scan_gaps,
)

SETTINGS = OversightSettings(keep_unlinked_for=dt.timedelta(days=30))


async def stored_chain(db, at, n=3):
    await db.device("rec-a", "officer-7")
    rows = []
    for seq in range(n):
        row = await db.segment("rec-a", seq, at("2024-03-01", "09:00") + dt.timedelta(minutes=10 * seq))
        async with db.sessions() as s, s.begin():
            await on_segment_stored(s, row, now=row.received_at, settings=SETTINGS)
        rows.append(row)
    return rows


async def test_deletion_needs_two_different_people_and_leaves_a_record(db, at):
    rows = await stored_chain(db, at)
    victim = rows[1]
    blob = db.store.path_for(victim.stored_ref)
    assert blob.exists()
    now = at("2024-06-01")

    async with db.sessions() as s, s.begin():
        with pytest.raises(DeletionRefused, match="须保存至"):
            await request_deletion(s, victim.segment_id, "alice", "无执法内容",
                                   now=at("2024-03-05"), settings=SETTINGS)
    async with db.sessions() as s, s.begin():
        assert [c.segment_id for c in await deletion_candidates(s, now, SETTINGS)] == [
            r.segment_id for r in rows]
        req = await request_deletion(s, victim.segment_id, "alice", "误录，无执法内容", now=now,
                                     settings=SETTINGS)
        await approve_deletion(s, req.id, "alice", "同意", now=now, settings=SETTINGS)
    async with db.sessions() as s, s.begin():
        with pytest.raises(DuplicateApproval):
            await approve_deletion(s, req.id, "alice", now=now, settings=SETTINGS)
    async with db.sessions() as s, s.begin():
        with pytest.raises(DeletionRefused, match="执法人员"):
            await approve_deletion(s, req.id, "officer-7", now=now, settings=SETTINGS)
        with pytest.raises(DeletionRefused):
            await approve_deletion(s, req.id, "hub", now=now, settings=SETTINGS)
    with pytest.raises(DeletionRefused, match="目前有效审批1人"):
        await execute_deletion(db.sessions, req.id, LocalDeleter(db.store), "carol", now=now,
                               settings=SETTINGS)
    assert blob.exists()

    async with db.sessions() as s, s.begin():
        await approve_deletion(s, req.id, "bob", "同意", now=now, settings=SETTINGS)
        assert (await retention_status(s, victim.segment_id, now, SETTINGS)).action == "delete"
    record = await execute_deletion(db.sessions, req.id, LocalDeleter(db.store), "carol",
                                    now=now, settings=SETTINGS)
    assert not blob.exists(), "the object left the store"
    assert db.store.path_for(rows[0].stored_ref).exists()
    assert (record.segment_id, record.device_id, record.seq, record.sha256) == (
        victim.segment_id, "rec-a", 1, victim.sha256)
    assert record.manifest == victim.manifest and record.approvers == ("alice", "bob")
    assert (record.why, record.requested_by, record.deleted_by) == (
        "误录，无执法内容", "alice", "carol")
    assert record.blob_deleted_at is not None

    async with db.sessions() as s, s.begin():
        assert [d.segment_id for d in await deletions(s)] == [victim.segment_id]
        events = [e for _, e in await audit.entries(s, subject=f"segment:{victim.segment_id}")]
        kinds = [e.type.value for e in events]
        assert kinds.count("approval") == 2 and kinds[-1] == "deletion"
        assert list(events[-1].details["approved_by"]) == ["alice", "bob"]
        assert events[-1].details["sha256"] == victim.sha256
        # the hole is explained: no gap, no broken chain, now or on the next scan
        assert await scan_gaps(s, now + dt.timedelta(days=1), SETTINGS) == []
        assert await list_alerts(s, open_only=False) == []
        with pytest.raises(DeletionRefused, match="已删除"):
            await request_deletion(s, victim.segment_id, "alice", "again", now=now,
                                   settings=SETTINGS)


async def test_a_segment_linked_to_a_case_is_never_deletable(db, at):
    rows = await stored_chain(db, at, n=1)
    seg = rows[0]
    now = at("2025-06-01")
    async with db.sessions() as s, s.begin():
        req = await request_deletion(s, seg.segment_id, "alice", "过期", now=now,
                                     settings=SETTINGS)
        await approve_deletion(s, req.id, "alice", now=now, settings=SETTINGS)
        await approve_deletion(s, req.id, "bob", now=now, settings=SETTINGS)
        # linked after the approvals: execution still refuses
        await link_segment(s, seg.segment_id, "case-5", "inspect", "dave", "证据")
    with pytest.raises(DeletionRefused, match="已关联案件"):
        await execute_deletion(db.sessions, req.id, LocalDeleter(db.store), "carol", now=now,
                               settings=SETTINGS)
    async with db.sessions() as s, s.begin():
        assert await deletion_candidates(s, now, SETTINGS) == []
        with pytest.raises(DeletionRefused, match="已关联案件"):
            await request_deletion(s, seg.segment_id, "alice", "again", now=now,
                                   settings=SETTINGS)
        assert await deletions(s) == []
    assert db.store.path_for(seg.stored_ref).exists()


class FlakyDeleter:
    """A Deleter whose store is unreachable the first time (a crash between record and
    removal), then works like LocalDeleter."""

    def __init__(self, inner: LocalDeleter) -> None:
        self.inner = inner
        self.calls = 0

    async def delete(self, ref: str) -> None:
        self.calls += 1
        if self.calls == 1:
            raise OSError("object store unreachable")
        await self.inner.delete(ref)


async def test_record_first_then_blob_and_shared_content_is_kept(db, at):
    await db.device("rec-a", "officer-7")
    same = b"identical bytes"
    a = await db.segment("rec-a", 0, at("2024-03-01", "09:00"), content=same)
    b = await db.segment("rec-a", 1, at("2024-03-01", "09:10"), content=same)
    c = await db.segment("rec-a", 2, at("2024-03-01", "09:20"))
    assert a.stored_ref == b.stored_ref
    now = at("2024-06-01")
    reqs = []
    async with db.sessions() as s, s.begin():
        for seg in (a, b, c):
            req = await request_deletion(s, seg.segment_id, "alice", "无执法内容", now=now,
                                         settings=SETTINGS)
            for who in ("alice", "bob"):
                await approve_deletion(s, req.id, who, now=now, settings=SETTINGS)
            reqs.append(req.id)
    deleter = LocalDeleter(db.store)
    rec_a = await execute_deletion(db.sessions, reqs[0], deleter, "carol", now=now,
                                   settings=SETTINGS)
    assert "相同" in rec_a.blob_note and db.store.path_for(a.stored_ref).exists()

    flaky = FlakyDeleter(deleter)
    # the store fails: the deletion stands (record committed), the object waits for the purge
    rec_c = await execute_deletion(db.sessions, reqs[2], flaky, "carol", now=now,
                                   settings=SETTINGS)
    assert rec_c.blob_deleted_at is None and "存储对象删除失败" in rec_c.blob_note
    async with db.sessions() as s:
        (rec_c,) = [d for d in await deletions(s) if d.segment_id == c.segment_id]
        assert rec_c.blob_deleted_at is None  # recorded, object still there
    assert db.store.path_for(c.stored_ref).exists()
    assert await purge_deleted_blobs(db.sessions, flaky) == 1
    assert not db.store.path_for(c.stored_ref).exists()

    await execute_deletion(db.sessions, reqs[1], deleter, "carol", now=now, settings=SETTINGS)
    assert not db.store.path_for(b.stored_ref).exists(), "last user gone: object removed"
