"""lerec-verify log: a clean log verifies; each kind of tampering is caught and named."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lerec.hub.audit import log as audit
from lerec.hub.audit.compact import recompute_root
from lerec.hub.audit.entries import EventType
from lerec.hub.verify.checkpointer import checkpoint_loop, checkpoint_now
from lerec.hub.verify.logcheck import verify_log

KEY = Ed25519PrivateKey.generate()
VERIFIER = audit.signer_from_key(KEY, audit.DEFAULT_ORIGIN).verifier()


async def _fill(sessions, n: int, checkpoint_every: int = 0) -> None:
    for i in range(n):
        async with sessions() as s, s.begin():
            await audit.record_event(s, EventType.VIEW, f"user:u{i % 3}",
                                     [f"case:c{i // 4}", f"segment:s{i}"], {"n": i})
        if checkpoint_every and (i + 1) % checkpoint_every == 0:
            await checkpoint_now(sessions, KEY)


@pytest.fixture
async def log_db(engine, sessions):
    await _fill(sessions, 37, checkpoint_every=10)
    await checkpoint_now(sessions, KEY)
    return engine


async def _verify(engine, **kw):
    return await verify_log(engine, VERIFIER, batch=8, **kw)


async def test_clean_log_verifies_every_entry_node_and_checkpoint(log_db, tamper):
    report = await _verify(log_db)
    assert not report.failed, [f.line() for f in report.findings]
    assert report.passed["entry"] == 37
    assert report.passed["checkpoint"] == 4  # 10, 20, 30, 37
    assert report.passed["consistency"] == 3
    # the root it recomputed is the one hub.audit.compact.recompute_root gives independently
    async with log_db.connect() as c:
        datas = [bytes(r[0]) for r in await c.exec_driver_sql(
            "SELECT data FROM audit_entries ORDER BY idx")]
    assert report.facts["root (recomputed)"] == recompute_root(datas, chunk_size=4).root.hex()


async def test_worker_processes_give_the_same_verdict(log_db, tamper):
    if log_db.dialect.name != "sqlite":
        pytest.skip("worker processes read SQLite files directly")
    report = await _verify(log_db, workers=2)
    assert not report.failed, [f.line() for f in report.findings]
    assert report.passed["entry"] == 37


async def test_empty_log_verifies(engine):
    report = await _verify(engine)
    assert not report.failed


async def test_changed_entry_data_is_named(log_db, tamper):
    async with log_db.connect() as c:
        data = (await c.exec_driver_sql("SELECT data FROM audit_entries WHERE idx = 13")).scalar()
    forged = bytes(data).replace(b'"n":13', b'"n":99')
    await tamper.sql(*tamper.drop_audit_triggers(),
                  f"UPDATE audit_entries SET data = {tamper.blob(forged)} WHERE idx = 13")
    report = await _verify(log_db)
    assert report.failed
    hits = report.find("entry", "entry 13 field data")
    assert hits and "changed" in hits[0].what
    assert not report.find("node"), "a changed entry must not be blamed on the nodes above it"
    assert not report.find("checkpoint")


async def test_changed_search_column_is_named(log_db, tamper):
    await tamper.sql(*tamper.drop_audit_triggers(),
                  "UPDATE audit_entries SET actor = 'user:mallory' WHERE idx = 5")
    report = await _verify(log_db)
    hits = report.find("entry", "entry 5 field actor")
    assert hits and "user:mallory" in hits[0].what
    await tamper.sql("UPDATE audit_entries SET subjects = 'case:c1' WHERE idx = 6")
    report = await _verify(log_db)
    assert report.find("entry", "entry 6 field subjects")


async def test_deleted_entry_is_named(log_db, tamper):
    await tamper.sql(*tamper.drop_audit_triggers(), "DELETE FROM audit_entries WHERE idx = 20")
    report = await _verify(log_db)
    assert report.find("entry", "entry 20")
    assert "missing" in report.find("entry", "entry 20")[0].what


@pytest.mark.parametrize("level,idx", [(0, 7), (1, 3), (2, 4), (3, 1), (5, 0)])
async def test_changed_node_is_named(log_db, tamper, level, idx):
    await tamper.sql(*tamper.drop_audit_triggers(),
                  f"UPDATE audit_nodes SET hash = {tamper.blob(bytes(32))} "
                  f"WHERE level = {level} AND idx = {idx}")
    report = await _verify(log_db)
    assert report.failed
    assert [f.where for f in report.find("node")] == [f"node ({level},{idx})"]
    assert not report.find("entry")


async def test_deleted_and_extra_nodes_are_named(log_db, tamper):
    await tamper.sql(*tamper.drop_audit_triggers(),
                  "DELETE FROM audit_nodes WHERE level = 1 AND idx = 2",
                  f"INSERT INTO audit_nodes (level, idx, hash) VALUES (2, 50, {tamper.blob(bytes(32))})")
    report = await _verify(log_db)
    wheres = [f.where for f in report.find("node")]
    assert "node (1,2)" in wheres and "node (2,50)" in wheres


async def test_changed_checkpoint_is_named(log_db, tamper):
    async with log_db.connect() as c:
        note = bytes((await c.exec_driver_sql(
            "SELECT note FROM audit_checkpoints WHERE size = 20")).scalar())
    lines = note.decode().split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()  # a different root, old signature
    forged = "\n".join(lines).encode()
    await tamper.sql(*tamper.drop_audit_triggers(),
                  f"UPDATE audit_checkpoints SET note = {tamper.blob(forged)} WHERE size = 20")
    report = await _verify(log_db)
    assert [f.where for f in report.find("checkpoint")] == ["checkpoint 20"]


async def test_checkpoint_signed_by_another_key_or_over_a_rewritten_log(log_db, sessions):
    # A checkpoint correctly signed, but by a key that is not the hub's.
    other = Ed25519PrivateKey.generate()
    async with log_db.connect() as c:
        size = (await c.exec_driver_sql("SELECT size FROM audit_head")).scalar()
    await _fill(sessions, 1)
    await checkpoint_now(sessions, other)
    report = await _verify(log_db)
    assert [f.where for f in report.find("checkpoint")] == [f"checkpoint {size + 1}"]


async def test_checkpoint_loop_signs_when_the_log_grows(engine, sessions):
    import asyncio

    async def sizes() -> list[int]:
        async with engine.connect() as c:
            return [r[0] for r in await c.exec_driver_sql(
                "SELECT size FROM audit_checkpoints ORDER BY size")]

    async def until(expected: list[int]) -> None:
        for _ in range(200):
            got = await sizes()
            if got[:1] == expected[:1] and got[-1:] == expected[-1:]:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"checkpoints {await sizes()}, expected {expected}")

    await _fill(sessions, 3)
    task = asyncio.create_task(checkpoint_loop(sessions, KEY, interval=0.05))
    await until([3])
    await asyncio.sleep(0.2)  # an idle log gets no new checkpoint
    assert await sizes() == [3]
    await _fill(sessions, 2)
    await until([3, 5])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not (await _verify(engine)).failed


async def test_appends_during_verification_are_not_mistaken_for_tampering(log_db, sessions):
    import asyncio

    async def append() -> None:
        for _ in range(20):
            await _fill(sessions, 1)
            await asyncio.sleep(0)

    report, _ = await asyncio.gather(_verify(log_db), append())
    assert not report.failed, [f.line() for f in report.findings]
