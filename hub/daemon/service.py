"""The hub ingest daemon: broker connection + ingest core + database + blob store, plus the
Prometheus endpoint and the periodic fleet gauges, as named tasks in one TaskGroup."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import threading
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from lerec.protocol import DeviceConfig, decode_signed, keys, topics

from .. import fleet
from ..cases.service import CaseStepSource
from ..config import HubConfig
from ..db import make_engine, migrate, sessionmaker
from ..db.engine import daemon_engine_options
from ..metrics import HubMetrics, refresh_fleet_gauges, serve_metrics
from ..oversight.hooks import IngestHooks
from ..oversight.retention import purge_deleted_blobs
from ..rules import default_rulebook
from ..storage import BlobStore, open_store
from ..verify.checkpointer import checkpoint_loop
from .configcheck import ConfigCheckError, retained_configs
from .ingest import Ingest
from .memory import trim
from .memtrace import trace_memory
from .mqtt import MqttBridge, tls_context
from .staging import sweep_discarded
from .timesync import TimeSync

log = logging.getLogger(__name__)


#: first wait before a failed check of the retained configs is tried again, and the longest
RESTORE_RETRY = 5.0
RESTORE_RETRY_MAX = 300.0
#: workers of a shared subscription wait up to this long (at random) before the check
RESTORE_SPREAD = 3.0


def _config_seq(wire: bytes | None) -> int:
    """The sequence number of a retained config (-1 if there is none or it is unreadable)."""
    if wire is None:
        return -1
    try:
        return int(decode_signed(wire, DeviceConfig).message.config_seq)
    except ValueError:  # (every protocol error is one)
        return -1


class HubService:
    """``async with HubService(cfg) as hub: await hub.serve()``."""

    def __init__(self, cfg: HubConfig, *, trace_memory: Path | None = None) -> None:
        self.cfg = cfg
        self.trace_memory = trace_memory
        self.engine = make_engine(cfg.database_url, **daemon_engine_options(cfg.database_url))
        self.sessions = sessionmaker(self.engine)
        self.store: BlobStore = open_store(cfg)
        self.metrics = HubMetrics()
        self.metrics_port: int | None = None
        self._metrics_started: asyncio.Future[int] | None = None
        b = cfg.broker
        #: the hub's client TLS context, for the bridge and the retained-config check alike
        self._tls = tls_context(b.ca, b.cert, b.key)
        self.bridge = MqttBridge(
            host=b.host, port=b.port, client_id=b.client_id, tls=self._tls,
            subscriptions=topics.hub_subscriptions(b.share_group),
            max_backoff=b.max_backoff, on_state=self._broker_state,
            persistent=b.share_group is None,
        )
        self.oversight = IngestHooks(self.sessions, settings=cfg.oversight.settings(),
                                     source=CaseStepSource(default_rulebook()))
        self.signing_key = keys.ed25519_private(cfg.signing_key.read_bytes())
        self._config_check: asyncio.Task[None] | None = None
        self._config_check_again = False
        self._config_cancel = threading.Event()
        #: checks of the retained recorder configs finished (after each broker connect)
        self.config_checks = 0
        self.timesync = TimeSync(self.sessions, self.signing_key, cfg.devices,
                                 self.bridge.publish)
        self.ingest = Ingest(
            hub_id=cfg.hub_id, sessions=self.sessions, store=self.store,
            signing_key=self.signing_key,
            box_key=keys.x25519_private(cfg.box_key.read_bytes()),
            publish=self.bridge.publish, metrics=self.metrics,
            on_stored=self.oversight.on_stored, on_heartbeat=self.oversight.on_heartbeat,
            on_clock=self.timesync.on_heartbeat, on_replaced=self.oversight.on_replaced,
            shared=b.share_group is not None, chunk_workers=cfg.ingest.chunk_workers,
        )

    def _broker_state(self, up: bool) -> None:  # called on the event loop by the bridge
        self.metrics.broker_connected.set(1 if up else 0)
        if up:
            self.metrics.broker_connects.inc()
            if self._config_check is None or self._config_check.done():
                self._config_check = asyncio.get_running_loop().create_task(
                    self._restore_configs(), name="restore-configs")
            else:
                self._config_check_again = True  # (a reconnect while checking: check again)

    async def _restore_configs(self) -> None:
        """Publish again every recorder config the broker no longer retains (or retains in an
        older version than the database's newest): after a broker lost its persistence, a
        recorder connecting would otherwise get no officer binding. Asked of the broker on
        every connect (see :mod:`.configcheck`), in either subscription mode; the configs
        published again are freshly signed (current hub time: a recorder online takes it as
        a time sync)."""
        retry = RESTORE_RETRY
        while not self._config_cancel.is_set():
            self._config_check_again = False
            if not self.bridge.persistent:
                # workers of a shared subscription all reconnect at once after a broker
                # restart: spread them, so that most find the first one's configs retained
                await asyncio.sleep(random.uniform(0.0, RESTORE_SPREAD))
            done = False
            try:
                await self._restore_configs_once()
                done = True
            except ConfigCheckError as exc:
                if self._config_cancel.is_set():
                    return
                log.warning("could not check the recorder configs the broker retains (%s); "
                            "trying again in %.0f s", exc, retry)
            except Exception:
                log.exception("could not publish the recorder configs again; trying again "
                              "in %.0f s", retry)
            self.config_checks += 1
            if done and not self._config_check_again:
                return
            if not done:
                await asyncio.sleep(retry)
                retry = min(retry * 2, RESTORE_RETRY_MAX)

    async def _restore_configs_once(self) -> None:
        latest = await fleet.latest_configs(self.sessions)
        if not latest:
            return
        b = self.cfg.broker
        retained = await asyncio.to_thread(
            retained_configs, b.host, b.port, self._tls,
            f"{b.client_id}-configs", cancel=self._config_cancel)
        missing = [c.device_id for c in latest
                   if _config_seq(retained.get(c.device_id)) < c.config.config_seq]
        if not missing:
            log.info("the broker retains the current config of all %d recorder(s)", len(latest))
            return
        published = []
        for device_id in missing:  # one transaction each: a clash costs one recorder, not all
            if self._config_cancel.is_set():
                return  # (signed ones not yet published: the next start finds them missing)
            try:
                (config,) = await fleet.time_sync(self.sessions, [device_id], self.signing_key,
                                                  self.cfg.devices)
            except IntegrityError:
                # another worker (or a heartbeat's time sync) signed a newer config of it
                # meanwhile, and publishes that one
                log.info("a newer config of %s was signed meanwhile; not publishing another",
                         device_id)
                continue
            except fleet.FleetError as exc:  # revoked meanwhile
                log.info("not publishing the config of %s again: %s", device_id, exc)
                continue
            await self.bridge.publish(topics.hub_topic(device_id, "config"), config.wire,
                                      retain=True)
            published.append(device_id)
        if published:
            log.warning("the broker retained no current config for %d recorder(s) (%s): "
                        "published them again", len(published), ", ".join(published[:20]))

    async def __aenter__(self) -> HubService:
        await migrate(self.engine)
        await self._purge_deleted_blobs()
        swept = await asyncio.to_thread(sweep_discarded, self.store.staging_dir)
        if swept:
            log.warning("removed %d transfer(s) an earlier process left half-deleted in "
                        "staging", swept)
        if self.cfg.metrics.port is not None:
            # Start the endpoint before the broker connection so it answers during outages.
            loop = asyncio.get_running_loop()
            self._metrics_started = loop.create_future()
            self._metrics_task = asyncio.create_task(
                serve_metrics(self.metrics, self.cfg.metrics.bind, self.cfg.metrics.port,
                              self._metrics_started), name="metrics")
            self.metrics_port = await asyncio.wait_for(self._metrics_started, 10)
        await self.bridge.__aenter__()
        return self

    async def _purge_deleted_blobs(self) -> None:
        """Finish retention deletions whose record committed but whose object is still in
        the store (a crash in between); a failure is logged and retried at the next start."""
        try:
            done = await purge_deleted_blobs(self.sessions, self.store)
        except Exception:
            log.exception("could not finish interrupted retention deletions")
            return
        if done:
            log.warning("finished %d interrupted retention deletion(s)", done)
        else:
            log.info("no interrupted retention deletions to finish")

    async def __aexit__(self, *exc: object) -> None:
        if self.bridge._loop is not None and self.bridge._loop.is_closed():
            # finalised at garbage collection after its loop was closed: nothing to await
            await self.bridge.__aexit__(*exc)  # (returns without suspending)
            self.ingest.close()
            return
        self._config_cancel.set()  # (first: nothing is signed to be published after the close)
        if self._config_check is not None and not self._config_check.done():
            self._config_check.cancel()
            await asyncio.wait([self._config_check], timeout=5.0)
        await self.bridge.__aexit__(*exc)
        await self.ingest.drain()
        if self._metrics_started is not None:
            self._metrics_task.cancel()
        self.ingest.close()
        await self.engine.dispose()

    async def _monitor(self) -> None:
        while True:
            try:
                self.metrics.transfers_open.set(await asyncio.to_thread(self.ingest.open_transfers))
                running, failed = self.ingest.chunk_workers()
                self.metrics.chunk_workers.set(running)
                self.metrics.chunk_worker_failures.set(failed)
                await refresh_fleet_gauges(self.metrics, self.sessions,
                                           settings=self.oversight.settings)
            except Exception:
                log.exception("could not refresh fleet gauges")
            await asyncio.to_thread(trim)  # freed chunk buffers back to the kernel
            await asyncio.sleep(self.cfg.metrics.refresh_seconds)

    async def serve(self) -> None:
        # What exists now (modules, tables, compiled statements) lives as long as the process:
        # out of the collector's way, so its generations hold only the ingest's own objects.
        gc.collect()
        gc.freeze()
        await self.ingest.start()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.bridge.serve(self.ingest.handle, self.ingest.offer),
                           name="ingest")
            tg.create_task(self._monitor(), name="fleet-gauges")
            if self.trace_memory is not None:
                tg.create_task(trace_memory(self.trace_memory), name="memory-trace")
            tg.create_task(self.oversight.run_scanner(300), name="oversight-scan")
            tg.create_task(
                checkpoint_loop(self.sessions, self.signing_key,
                                self.cfg.audit.checkpoint_seconds, self.cfg.audit.origin),
                name="audit-checkpoints")
