"""The hub answers heartbeats that need it with a freshly signed config carrying its time
(hub/daemon/timesync.py), through the ingest's verified heartbeat path."""

from __future__ import annotations

import time

from lerec.hub import fleet
from lerec.hub.config import DeviceDefaults
from lerec.hub.daemon.ingest import Ingest
from lerec.hub.daemon.timesync import TimeSync
from lerec.hub.db import make_engine, migrate, sessionmaker
from lerec.hub.storage import LocalBlobStore
from lerec.protocol import ClockInfo, DeviceConfig, Heartbeat, decode_signed, keys, topics
from support.databases import database_url
from support.rig import make_store

DEV = "rec-a"


async def _env(pki, tmp_path, *, assign=True, **kw):
    engine = make_engine(database_url(tmp_path))
    await migrate(engine)
    sessions = sessionmaker(engine)
    f = pki.device(DEV)
    await fleet.enroll(sessions, DEV, f.signing_pub.read_bytes(), f.cert.read_bytes())
    if assign:  # the hub manages the recorder's binding (one config issued, not counted below)
        await fleet.assign(sessions, DEV, "officer-1",
                           keys.ed25519_private(pki.hub_signing_key.read_bytes()))
    sent: list[tuple[str, bytes, bool]] = []

    async def publish(topic, payload, retain=False):
        sent.append((topic, payload, retain))

    sync = TimeSync(sessions, keys.ed25519_private(pki.hub_signing_key.read_bytes()),
                    DeviceDefaults(), publish, **kw)
    ingest = Ingest(hub_id="hub", sessions=sessions, store=LocalBlobStore(tmp_path / "store"),
                    signing_key=keys.ed25519_private(pki.hub_signing_key.read_bytes()),
                    box_key=keys.x25519_private(pki.hub_box_key.read_bytes()), publish=publish,
                    on_clock=sync.on_heartbeat)
    return engine, ingest, sync, sent, make_store(pki, DEV, tmp_path / DEV)


def _beat(store, *, state="synced", skew_ms=0):
    hb = Heartbeat(DEV, "officer-1", int(time.time() * 1000) + skew_ms, "idle", -1, 0, 0,
                   10**9, "ok", ClockInfo(state, "hub", skew_ms, 10), 80, "test")
    return topics.device_topic(DEV, "heartbeat"), store.sign(hb)


def _configs(pki, sent):
    hub = keys.ed25519_public(pki.hub_signing_pub.read_bytes())
    return [decode_signed(p, DeviceConfig).verify(hub) for t, p, retain in sent
            if t == topics.hub_topic(DEV, "config") and retain]


async def test_first_heartbeat_gets_fresh_hub_time_then_not_again(pki, tmp_path):
    engine, ingest, sync, sent, store = await _env(pki, tmp_path)
    before = int(time.time() * 1000)
    await ingest.handle(*_beat(store))
    [cfg] = _configs(pki, sent)
    assert cfg.device_id == DEV and before <= cfg.issued_ms <= int(time.time() * 1000)
    await ingest.handle(*_beat(store))  # synced and recent: nothing more
    assert len(_configs(pki, sent)) == 1 and sync.pushed == 1
    await engine.dispose()


async def test_unsynced_or_skewed_clock_is_answered_at_most_once_per_interval(pki, tmp_path):
    # Two seconds: the second heartbeat is handled well within it even on a loaded machine
    # with PostgreSQL (the first one's push writes a config row first).
    engine, ingest, sync, sent, store = await _env(pki, tmp_path, min_interval=2.0)
    await ingest.handle(*_beat(store, state="unsynced"))
    await ingest.handle(*_beat(store, state="unsynced"))  # within the interval: rate-limited
    assert len(_configs(pki, sent)) == 1
    time.sleep(2.1)
    await ingest.handle(*_beat(store, skew_ms=DeviceDefaults().max_clock_offset_ms))
    configs = _configs(pki, sent)
    assert len(configs) == 2 and configs[1].config_seq == configs[0].config_seq + 1
    time.sleep(2.1)
    await ingest.handle(*_beat(store))  # synced, on time, synced recently: no push
    assert len(_configs(pki, sent)) == 2
    await engine.dispose()


async def test_forged_heartbeat_gets_no_time_sync(pki, tmp_path):
    engine, ingest, sync, sent, _ = await _env(pki, tmp_path)
    other = make_store(pki, "rec-b", tmp_path / "rec-b")  # signs with rec-b's key
    hb = Heartbeat(DEV, "officer-1", int(time.time() * 1000), "idle", -1, 0, 0, 10**9, "ok",
                   ClockInfo("unsynced", "none", 0, 10), 80, "test")
    await ingest.handle(topics.device_topic(DEV, "heartbeat"), other.sign(hb))
    assert _configs(pki, sent) == [] and sync.pushed == 0
    await engine.dispose()


async def test_recorder_the_hub_never_configured_keeps_its_own_binding(pki, tmp_path):
    """No config was ever issued: a time sync would push 'unassigned' over the officer the
    recorder was set up with, so none is sent (assigning it brings the time)."""
    engine, ingest, sync, sent, store = await _env(pki, tmp_path, assign=False)
    await ingest.handle(*_beat(store, state="unsynced"))
    assert _configs(pki, sent) == [] and sync.pushed == 0
    await engine.dispose()


async def test_heartbeat_state_lands_on_the_device_row(pki, tmp_path):
    from lerec.hub.db import Device

    engine, ingest, _, _, store = await _env(pki, tmp_path)
    hb = Heartbeat(DEV, "officer-1", int(time.time() * 1000), "recording", 4, 2, 9_000_000,
                   123_000_000, "low", ClockInfo("holdover", "hub", -1500, 200), 61, "fw/2")
    await ingest.handle(topics.device_topic(DEV, "heartbeat"), store.sign(hb))
    async with ingest.sessions() as s:
        d = await s.get(Device, DEV)
    assert (d.hb_state, d.hb_storage, d.hb_free_bytes, d.hb_pending_segments,
            d.hb_pending_bytes, d.hb_battery_pct, d.hb_firmware, d.hb_clock_state,
            d.hb_clock_offset_ms, d.last_seq_reported) == (
        "recording", "low", 123_000_000, 2, 9_000_000, 61, "fw/2", "holdover", -1500, 4)
    await engine.dispose()


async def test_open_transfers_counts_the_staging_folder(pki, tmp_path):
    """lerec_transfers_open comes from the staging folder (right in shared mode too, where no
    worker keeps a transfer open between messages)."""
    from support.rig import fake_segment

    engine, ingest, _, sent, store = await _env(pki, tmp_path)
    assert ingest.open_transfers() == 0
    row = store.seal(fake_segment(store, 300_000))
    await ingest.handle(topics.device_topic(DEV, "manifest"), row.manifest)
    assert ingest.open_transfers() == 1
    (ingest.store.staging_dir / ".discard").mkdir(exist_ok=True)  # not a transfer
    assert ingest.open_transfers() == 1
    await engine.dispose()
