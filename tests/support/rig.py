"""A real test rig: dev PKI, mosquitto with the deploy/ TLS+ACL config, hub, recorders.

Nothing here is mocked: the broker is the real mosquitto binary on a free loopback port, the
database a real SQLite file (or PostgreSQL, see support.databases), the crypto real. A missing
mosquitto fails loudly.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from lerec.deploy.broker import Broker
from lerec.deploy.pki import Pki, init_pki, issue_device
from lerec.device.media.segment import FinishedSegment
from lerec.device.store import ClipStore
from lerec.device.upload import Uploader, tls_context
from lerec.hub import fleet
from lerec.hub.config import BrokerSettings, HubConfig
from lerec.hub.daemon.runner import HubThread
from lerec.hub.db import Segment
from lerec.protocol import keys

from .databases import database_url, drop_databases
from .hubproc import enroll


def make_pki(root: Path, devices: tuple[str, ...] = ("rec-a", "rec-b", "rec-c")) -> Pki:
    pki = init_pki(root)
    for d in devices:
        issue_device(pki, d)
    return pki


def hub_config(pki: Pki, port: int, root: Path, **overrides: Any) -> HubConfig:
    return HubConfig(
        hub_id="hub",
        database_url=overrides.pop("database_url", None) or database_url(root),
        storage_dir=root / "store",
        storage_reserve_bytes=overrides.pop("storage_reserve_bytes", 0),
        signing_key=pki.hub_signing_key,
        box_key=pki.hub_box_key,
        pki_dir=overrides.pop("pki_dir", None),
        broker=BrokerSettings(
            host="127.0.0.1", port=port, ca=pki.ca_cert, cert=pki.hub_cert, key=pki.hub_key,
            client_id=overrides.pop("client_id", "lerec-hub"),
            max_backoff=overrides.pop("max_backoff", 2.0),
            share_group=overrides.pop("share_group", None),
        ),
        **overrides,
    )


def start_hub(pki: Pki, port: int, root: Path, devices: tuple[str, ...] = ("rec-a", "rec-b", "rec-c"), **kw: Any) -> HubThread:
    """A hub on ``port`` with ``devices`` enrolled *before* it subscribes, as in production: a
    recorder that is already waiting would otherwise reach a hub that does not know it yet, and
    'unknown_device' is a final refusal."""
    cfg = hub_config(pki, port, root, **kw)
    enroll(cfg, pki, devices)
    hub = HubThread(cfg).start()
    assert hub.service is not None
    return hub


def stored_segments(hub: HubThread) -> list[Segment]:
    from sqlalchemy import select

    async def q() -> list[Segment]:
        assert hub.service is not None
        async with hub.service.sessions() as s:
            return list((await s.execute(select(Segment).order_by(Segment.device_id,
                                                                  Segment.seq))).scalars())

    return hub.call(q())


def make_store(pki: Pki, device_id: str, root: Path, chunk_size: int = 64 * 1024,
               cls: type[ClipStore] = ClipStore) -> ClipStore:
    """A recorder's clip store with its keys from the PKI (``cls``: a ClipStore subclass)."""
    files = pki.device(device_id)
    return cls(
        root, device_id=device_id,
        signing_key=keys.ed25519_private(files.signing_key.read_bytes()),
        hub_box_public=keys.x25519_public(files.hub_box_pub.read_bytes()),
        hub_signing_public=keys.ed25519_public(files.hub_signing_pub.read_bytes()),
        chunk_size=chunk_size, low_space_bytes=0, floor_bytes=0,
    )


def make_uploader(pki: Pki, store: ClipStore, port: int, **kw: Any) -> Uploader:
    files = pki.device(store.device_id)
    return Uploader(
        store, host="127.0.0.1", port=port,
        tls=tls_context(files.ca, files.cert, files.key),
        hub_signing_public=keys.ed25519_public(files.hub_signing_pub.read_bytes()),
        reply_timeout=kw.pop("reply_timeout", 3.0), **kw,
    )


def fake_segment(store: ClipStore, size: int, *, important: bool = False,
                 start: dt.datetime | None = None, name: str | None = None) -> FinishedSegment:
    """A finished spool file of random bytes (the store and hub do not parse media)."""
    start = start or dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=10)
    path = store.spool / (name or f"seg-{os.urandom(4).hex()}.mp4")
    path.write_bytes(os.urandom(size))
    return FinishedSegment(
        path=path, start_time=start, end_time=start + dt.timedelta(seconds=5),
        media_type="video/mp4", codecs=("avc1", "mp4a"), important=important,
        prerecord_seconds=0.0, frames=0, clock_sync="synced", clock_source="test",
        clock_offset_seconds=0.0,
    )


def raw_client(pki: Pki, identity: str, port: int, **kw: Any) -> mqtt.Client:
    """A bare paho client authenticated as ``identity`` (a device id, or "hub")."""
    if identity == "hub":
        ca, cert, key = pki.ca_cert, pki.hub_cert, pki.hub_key
    else:
        f = pki.device(identity)
        ca, cert, key = f.ca, f.cert, f.key
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=kw.get("client_id", f"raw-{identity}-{os.urandom(3).hex()}"),
                    protocol=mqtt.MQTTv5)
    c.tls_set_context(tls_context(ca, cert, key))
    return c


@dataclass
class Rig:
    pki: Pki
    broker: Broker
    root: Path
    hub: HubThread | None = None
    uploaders: list[Uploader] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.broker.port

    def start_hub(self, **kw: Any) -> HubThread:
        self.hub = start_hub(self.pki, self.port, self.root / "hub", **kw)
        return self.hub

    def recorder(self, device_id: str, chunk_size: int = 64 * 1024, **kw: Any) -> tuple[ClipStore, Uploader]:
        store = make_store(self.pki, device_id, self.root / device_id, chunk_size)
        up = make_uploader(self.pki, store, self.port, **kw)
        self.uploaders.append(up)
        return store, up

    def close(self) -> None:
        for up in self.uploaders:
            up.stop()
        if self.hub is not None:
            self.hub.stop()
        self.broker.stop()
        drop_databases(self.root)
