"""The hub ingest daemon: broker connection + ingest core + database + blob store."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lerec.protocol import topics

from ..config import HubConfig
from ..db import make_engine, migrate, sessionmaker
from lerec.protocol import keys
from ..storage import LocalBlobStore
from .ingest import Ingest
from .mqtt import MqttBridge, tls_context

log = logging.getLogger(__name__)


class HubService:
    """``async with HubService(cfg) as hub: await hub.serve()``."""

    def __init__(self, cfg: HubConfig) -> None:
        self.cfg = cfg
        self.engine = make_engine(cfg.database_url)
        self.sessions = sessionmaker(self.engine)
        self.store = LocalBlobStore(cfg.storage_dir, reserve_bytes=cfg.storage_reserve_bytes)
        b = cfg.broker
        self.bridge = MqttBridge(
            host=b.host, port=b.port, client_id=b.client_id,
            tls=tls_context(b.ca, b.cert, b.key),
            subscriptions=topics.hub_subscriptions(b.share_group),
        )
        self.ingest = Ingest(
            hub_id=cfg.hub_id, sessions=self.sessions, store=self.store,
            signing_key=keys.ed25519_private(cfg.signing_key.read_bytes()),
            box_key=keys.x25519_private(cfg.box_key.read_bytes()),
            publish=self.bridge.publish,
        )

    async def __aenter__(self) -> "HubService":
        await migrate(self.engine)
        await self.bridge.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.bridge.__aexit__(*exc)
        self.ingest.close()
        await self.engine.dispose()

    async def serve(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.bridge.serve(self.ingest.handle), name="ingest")
