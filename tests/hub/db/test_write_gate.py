"""SQLite write transactions of one process queue on an asyncio gate instead of sleeping in
SQLite's busy handler (hub/db/engine.py, WriteGate)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from lerec.hub.db import make_engine, migrate, sessionmaker, sqlite_url
from lerec.hub.db.engine import GatedSession, WriteGate, background_writes


async def test_write_transactions_are_serialised_in_arrival_order(tmp_path):
    engine = make_engine(sqlite_url(tmp_path / "g.db"))
    await migrate(engine)
    sessions = sessionmaker(engine)
    assert issubclass(sessions.class_, GatedSession)
    assert sessionmaker(engine).class_ is sessions.class_  # one gate per engine
    inside, order = 0, []
    most = 0

    async def writer(i: int) -> None:
        nonlocal inside, most
        async with sessions() as s, s.begin():
            inside += 1
            most = max(most, inside)
            order.append(i)
            await s.execute(text("CREATE TABLE IF NOT EXISTS t (i INTEGER)"))
            await s.execute(text("INSERT INTO t VALUES (:i)"), {"i": i})
            await asyncio.sleep(0.01)  # the transaction stays open across awaits
            inside -= 1

    tasks = []
    for i in range(20):
        tasks.append(asyncio.create_task(writer(i)))
        await asyncio.sleep(0)  # arrival order = i
    await asyncio.gather(*tasks)
    assert most == 1 and order == list(range(20))
    async with sessions() as s:
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar_one() == 20
    await engine.dispose()


async def test_gate_is_reentrant_within_a_task_and_released_on_error(tmp_path):
    engine = make_engine(sqlite_url(tmp_path / "g.db"))
    await migrate(engine)
    sessions = sessionmaker(engine)

    async def nested() -> None:
        async with sessions() as s, s.begin():
            await s.execute(text("SELECT 1"))
            async with sessions() as s2, s2.begin():  # would deadlock on a plain lock
                await s2.execute(text("SELECT 1"))

    await asyncio.wait_for(nested(), 5)

    try:
        async with sessions() as s, s.begin():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    await asyncio.wait_for(nested(), 5)  # the failed transaction released the gate
    await engine.dispose()


def test_gate_works_across_event_loops():
    gate = WriteGate()

    async def use() -> None:
        await gate.acquire()
        gate.release()

    asyncio.run(use())
    asyncio.run(use())  # a second loop gets its own lock


async def test_background_writers_go_after_every_waiting_foreground_writer():
    """The oversight checks (background) never delay a transaction the ingest has queued,
    whatever the order they arrived in; among themselves each kind stays FIFO."""
    gate = WriteGate()
    order: list[str] = []

    async def writer(name: str, background: bool) -> None:
        if background:
            with background_writes():
                await gate.acquire()
        else:
            await gate.acquire()
        order.append(name)
        await asyncio.sleep(0)
        gate.release()

    await gate.acquire()  # held while everybody queues
    tasks = []
    for name, bg in (("b1", True), ("f1", False), ("b2", True), ("f2", False)):
        tasks.append(asyncio.create_task(writer(name, bg)))
        await asyncio.sleep(0)
    gate.release()
    await asyncio.gather(*tasks)
    assert order == ["f1", "f2", "b1", "b2"]


async def test_a_writer_cancelled_while_waiting_neither_holds_nor_blocks_the_gate():
    gate = WriteGate()
    await gate.acquire()
    waiting = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    gate.release()  # hands over to the cancelled waiter's turn, which passes it on
    await asyncio.gather(waiting, return_exceptions=True)
    await asyncio.wait_for(gate.acquire(), 1)  # free again
    gate.release()
