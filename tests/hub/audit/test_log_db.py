"""The audit log in a real database (SQLite, or PostgreSQL with LEREC_TEST_DATABASE_URL): appends,
proofs, checkpoints, append-only enforced by the database itself."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from lerec.hub.audit import log as audit
from lerec.hub.audit.checkpoint import verify_checkpoint
from lerec.hub.audit.compact import MemoryLeafStore
from lerec.hub.audit.entries import EventType
from lerec.hub.audit.merkle import hash_leaf, tree_root, verify_consistency, verify_inclusion
from lerec.hub.db import make_engine, migrate, sessionmaker
from support.databases import database_url


@pytest.fixture
async def sessions(tmp_path):
    engine = make_engine(database_url(tmp_path / "audit"))
    await migrate(engine)
    yield sessionmaker(engine)
    await engine.dispose()


async def _append(sessions, n, start=0):
    for i in range(start, start + n):
        async with sessions() as s, s.begin():
            idx = await audit.record_event(s, EventType.VIEW, "user:alice", [f"case:{i}"],
                                           {"n": i})
            assert idx == i


async def test_append_root_and_proofs_match_an_independent_tree(sessions):
    await _append(sessions, 37)
    async with sessions() as s:
        rows = await audit.entries(s, limit=100)
        mem = MemoryLeafStore(bytes(e.encode()) for _, e in rows)
        head = await audit.head(s)
        assert head.size == 37
        assert head.root == tree_root(mem)
        for i in (0, 1, 17, 36):
            proof = await audit.prove_inclusion(s, i, 37)
            verify_inclusion(i, 37, hash_leaf(rows[i][1].encode()), proof, head.root)
        old = await audit.head(s, 20)
        verify_consistency(20, 37, old.root, head.root, await audit.prove_consistency(s, 20, 37))


async def test_event_is_logged_only_if_the_transaction_commits(sessions):
    with pytest.raises(RuntimeError):
        async with sessions() as s, s.begin():
            await audit.record_event(s, EventType.VIEW, "user:bob", ["case:1"])
            raise RuntimeError("the change failed")
    async with sessions() as s:
        assert await audit.size(s) == 0


async def test_checkpoint_is_signed_and_verifies(sessions):
    key = Ed25519PrivateKey.generate()
    await _append(sessions, 5)
    async with sessions() as s, s.begin():
        note = await audit.make_checkpoint(s, key)
    signer = audit.signer_from_key(key, audit.DEFAULT_ORIGIN)
    cp = verify_checkpoint(note, audit.DEFAULT_ORIGIN, signer.verifier())
    async with sessions() as s:
        assert cp.head == await audit.head(s)
        assert await audit.latest_checkpoint(s) == note


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_entries SET actor = 'user:mallory' WHERE idx = 1",
        "DELETE FROM audit_entries WHERE idx = 2",
        "UPDATE audit_nodes SET hash = :blob WHERE level = 0 AND idx = 0",
        "DELETE FROM audit_nodes",
        # (appending out of order, past the head: only record_event appends)
        "INSERT INTO audit_entries (idx, at, type, actor, subjects, data) "
        "VALUES (99, :at, 'view', 'x', '', :blob)",
    ],
)
async def test_append_only_is_enforced_by_the_database(sessions, sql):
    await _append(sessions, 3)
    params = {k: v for k, v in {"blob": b"\0" * 32, "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
                                }.items() if f":{k}" in sql}
    with pytest.raises(DBAPIError, match="append"):
        async with sessions() as s, s.begin():
            await s.execute(text(sql), params)


async def test_subject_search_and_spaces_refused(sessions):
    await _append(sessions, 3)
    async with sessions() as s:
        assert [i for i, _ in await audit.entries(s, subject="case:1")] == [1]
    with pytest.raises(ValueError):
        async with sessions() as s, s.begin():
            await audit.record_event(s, EventType.VIEW, "user:a", ["case 1"])


async def test_batched_append_equals_one_by_one(sessions, tmp_path):
    """record_events appends several events in four statements; the log it leaves is the
    same tree, entry for entry, as appending them one at a time."""
    import datetime as dt

    from sqlalchemy import event

    at = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
    specs = [(EventType.VIEW, "user:alice", [f"case:{i}"], {"n": i}, at) for i in range(16)]
    async with sessions() as s, s.begin():
        assert await audit.record_events(s, specs[:5]) == list(range(5))
    statements: list[str] = []

    def count(*a):
        statements.append(a[2])

    async with sessions() as s, s.begin():
        conn = await s.connection()
        event.listen(conn.sync_connection, "before_cursor_execute", count)
        assert await audit.record_events(s, specs[5:]) == list(range(5, 16))
        event.remove(conn.sync_connection, "before_cursor_execute", count)
    assert len(statements) == 4, statements
    other = make_engine(database_url(tmp_path / "one-by-one"))
    await migrate(other)
    one = sessionmaker(other)
    for spec in specs:
        async with one() as s1, s1.begin():
            await audit.record_event(s1, *spec)
    async with sessions() as s, one() as s1:
        head = await audit.head(s)
        assert head == await audit.head(s1) and head.size == 16
        for i in range(16):
            proof = await audit.prove_inclusion(s, i, head.size)
            leaf = hash_leaf(bytes((await audit.entries(s, start=i, limit=1))[0][1].encode()))
            verify_inclusion(i, head.size, leaf, proof, head.root)
    await other.dispose()
