"""Fresh hub time for recorders that need it (第二十七条: the time of every record must be right).

A recorder measures its clock against the ``issued_ms`` of a hub config that arrives *live*;
the retained config it finds on connecting is old and is not a time reading. So the hub
answers heartbeats: a recorder that reports an unsynced clock, whose heartbeat time is off by
more than half the allowed offset, that has not had a time sync since this hub started, or
not for ``resync_after`` seconds, gets a freshly signed config (same binding, current hub
time) — at most one per ``min_interval`` seconds per recorder.

Only recorders the hub already manages get one: a time sync re-signs the hub's officer
binding, and for a recorder the hub has never configured that binding is unknown — pushing
"unassigned" would silently re-attribute everything it records from then on. Such a recorder
keeps its own binding until an administrator assigns it (``lerec-hub assign``), which also
brings it the hub's time."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lerec.protocol import Heartbeat, topics
from sqlalchemy import select

from .. import fleet
from ..config import DeviceDefaults
from ..db.fleet_models import DeviceConfigRecord

log = logging.getLogger(__name__)

PublishRetained = Callable[..., Awaitable[None]]


class TimeSync:
    def __init__(self, sessions: Any, key: Ed25519PrivateKey, defaults: DeviceDefaults,
                 publish: PublishRetained, *, min_interval: float = 60.0,
                 resync_after: float = 6 * 3600.0) -> None:
        self.sessions, self.key, self.defaults, self.publish = sessions, key, defaults, publish
        self.min_interval, self.resync_after = min_interval, resync_after
        self._last: dict[str, float] = {}
        self.pushed = 0

    def reason(self, hb: Heartbeat, received_ms: int, now: float) -> str | None:
        """Why ``hb`` calls for a time sync now (None: it does not)."""
        last = self._last.get(hb.device_id)
        if last is not None and now - last < self.min_interval:
            return None
        skew = hb.time_ms - received_ms
        if hb.clock.state != "synced":
            return f"clock {hb.clock.state}"
        if abs(skew) > self.defaults.max_clock_offset_ms // 2:
            return f"heartbeat time off by {skew} ms"
        if last is None:
            return "first heartbeat since the hub started"
        if now - last >= self.resync_after:
            return "periodic"
        return None

    async def _managed(self, device_id: str) -> bool:
        async with self.sessions() as s:
            return (await s.execute(select(DeviceConfigRecord.config_seq).where(
                DeviceConfigRecord.device_id == device_id).limit(1))).first() is not None

    async def on_heartbeat(self, hb: Heartbeat, received_ms: int) -> bool:
        """Push a fresh config if ``hb`` calls for one; True if pushed."""
        now = time.monotonic()
        why = self.reason(hb, received_ms, now)
        if why is None:
            return False
        self._last[hb.device_id] = now
        if not await self._managed(hb.device_id):
            log.info("no time sync for %s (%s): the hub has never configured it, so its "
                     "officer binding stays its own until it is assigned", hb.device_id, why)
            return False
        [signed] = await fleet.time_sync(self.sessions, [hb.device_id], self.key, self.defaults)
        await self.publish(topics.hub_topic(hb.device_id, "config"), signed.wire, retain=True)
        self.pushed += 1
        log.info("time sync pushed to %s (%s): config %d", hb.device_id, why,
                 signed.config.config_seq)
        return True
