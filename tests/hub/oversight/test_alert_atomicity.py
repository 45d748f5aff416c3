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
