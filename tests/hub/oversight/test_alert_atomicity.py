"""An alert is part of the transaction that raises it: rolled back with it, and raised only once
even when two transactions race for the same key."""

from __future__ import annotations

from sqlalchemy import func, select

from lerec.hub.db import make_engine, migrate, sessionmaker
from lerec.hub.db.oversight_models import Alert
from lerec.hub.oversight.alerts import AlertKind, raise_alert
from support.databases import database_url


async def _count(sessions) -> int:
    async with sessions() as s:
        return (await s.execute(select(func.count()).select_from(Alert))).scalar_one()


async def test_alert_rolls_back_with_its_transaction(tmp_path):
    engine = make_engine(database_url(tmp_path))
    await migrate(engine)
    sessions = sessionmaker(engine)

    class Boom(Exception):
        pass

    try:
        async with sessions() as s, s.begin():
            # the alert is the transaction's first write (it used to be committed by the
            # release of its own SAVEPOINT on SQLite)
            assert await raise_alert(s, kind=AlertKind.NOT_UPLOADED, key="k1",
                                     message_zh="测试") is not None
            raise Boom
    except Boom:
        pass
    assert await _count(sessions) == 0
    async with sessions() as s, s.begin():
        first = await raise_alert(s, kind=AlertKind.NOT_UPLOADED, key="k1", message_zh="测试")
        again = await raise_alert(s, kind=AlertKind.NOT_UPLOADED, key="k1", message_zh="测试")
    assert first is not None and again is None and await _count(sessions) == 1
    await engine.dispose()


async def test_the_hub_never_overwrites_a_resolution_made_meanwhile(tmp_path):
    """The hub decides to close an alert on a copy read earlier (all its numbers arrived);
    meanwhile an administrator resolved it with a note. The hub's close leaves the
    administrator's resolution — who, when, why — and writes no second audit entry; a person
    resolving a resolved alert is refused."""
    import pytest

    from lerec.hub.db.audit_models import AuditEntry
    from lerec.hub.oversight.alerts import HUB, close_alert, resolve_alert
    from lerec.hub.oversight.errors import AlreadyResolved

    engine = make_engine(database_url(tmp_path))
    await migrate(engine)
    sessions = sessionmaker(engine)
    async with sessions() as s, s.begin():
        alert = await raise_alert(s, kind=AlertKind.MISSING, key="k2", message_zh="缺号",
                                  device_id="rec-a", first_seq=3, last_seq=4)
    async with sessions() as s:
        stale = await s.get(Alert, alert.id)
        s.expunge(stale)  # the hub's copy, read before the administrator acted
    async with sessions() as s, s.begin():
        await resolve_alert(s, alert.id, "unit_head", "记录仪丢失，已书面说明")
    async with sessions() as s, s.begin():
        assert await close_alert(s, stale, HUB, "all numbers arrived") is None
    async with sessions() as s, s.begin():
        with pytest.raises(AlreadyResolved):
            await resolve_alert(s, alert.id, "agency_head", "again")
    async with sessions() as s:
        row = await s.get(Alert, alert.id)
        assert (row.resolved_by, row.resolved_note) == ("unit_head", "记录仪丢失，已书面说明")
        n = (await s.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.type == "record_changed",  # (raising it was a gap_detected entry)
            AuditEntry.subjects.like(f"alert:{alert.id} %")))).scalar_one()
    assert n == 1
    await engine.dispose()
