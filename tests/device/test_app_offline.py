"""The hub out of reach for a long stretch (the broker stopped), the recorder keeps recording;
when the broker is back on the same port everything arrives: important segments first, then
oldest first, no duplicates, the hash chain unbroken at the hub."""

from __future__ import annotations

import hashlib
import itertools
import time

from gpiozero.pins.mock import MockFactory
from lerec.device.app import RecorderApp
from lerec.hub.db import Segment
from sqlalchemy import func, select
from support.rig import stored_segments
from test_app_support import app_settings, wait_for


def _received_order(hub) -> list[int]:
    async def q():
        async with hub.service.sessions() as s:
            rows = (await s.execute(select(Segment.seq).order_by(Segment.received_at,
                                                                 Segment.seq))).scalars()
            return list(rows)
    return hub.call(q())


def test_long_hub_outage_then_everything_arrives_in_priority_order(rig, tmp_path):
    hub = rig.start_hub()
    settings = app_settings(rig, "rec-a", tmp_path, recorder={"segment_seconds": 2})
    with RecorderApp(settings, pin_factory=MockFactory()) as app:
        assert wait_for(lambda: app.uploader.connected.is_set(), 15)
        # one segment while all is well
        app.press("record")
        time.sleep(1.0)
        app.press("record")
        assert wait_for(lambda: app.store.last_seq() == 0 and not app.store.pending(), 30)

        rig.broker.stop()
        assert wait_for(lambda: not app.uploader.connected.is_set(), 10)
        app.press("record")           # ~9 s in 2 s segments, the 3rd marked important
        time.sleep(4.6)
        app.press("mark")
        time.sleep(4.5)
        app.press("record")
        assert wait_for(lambda: app.store.last_seq() >= 4 and not app.sink.waiting
                        and not list(settings.recorder.storage.spool_dir.glob("*.mp4*")), 20)
        time.sleep(5.0)               # the outage goes on; back-off grows to its cap
        pending = app.store.pending()
        important = [r.seq for r in pending if r.important]
        assert len(important) == 1 and len(pending) >= 4
        assert app.heartbeat().pending_segments == len(pending)
        last_seq = app.store.last_seq()

        rig.broker.start()            # same port: recorder and hub reconnect on their own
        assert wait_for(lambda: not app.store.pending(), 90), app.store.pending()
        assert app.uploader.stats.connects >= 2

    rows = stored_segments(hub)
    assert [r.seq for r in rows] == list(range(last_seq + 1)), "all there, no gap, no double"
    assert len({r.sha256 for r in rows}) == len(rows)
    for prev, cur in itertools.pairwise(rows):
        assert cur.prev_hash == hashlib.sha256(prev.manifest).digest(), "chain intact"
    after_outage = [s for s in _received_order(hub) if s >= 1]
    rest = sorted(set(range(1, last_seq + 1)) - set(important))
    assert after_outage == important + rest, "important first, then oldest first"

    async def count():
        async with hub.service.sessions() as s:
            return (await s.execute(select(func.count()).select_from(Segment))).scalar_one()
    assert hub.call(count()) == last_seq + 1
