"""The broker restarted in the middle of uploads, and the hub's disk filled up.

Broker: mosquitto is stopped and started again (same port, persistent sessions) three times
while three recorders upload. Disk: the hub's storage folder is a small tmpfs mounted by the
test (root); once it is full the hub refuses with ``hub_storage_full``, the recorders keep
their segments, and after the filesystem is grown they deliver every one of them."""

from __future__ import annotations

import subprocess
import time

from lerec.hub.db import Rejection
from lerec_fault_gauntlet import check_outcome  # type: ignore[import-not-found]
from sqlalchemy import select
from support.rig import stored_segments

DEVICES = ("rec-a", "rec-b", "rec-c")


def test_broker_restarts_mid_upload(rig, fleet_factory):
    hub = rig.start_hub()
    fleet = fleet_factory(rig.port, DEVICES)
    for d in DEVICES:
        for _ in range(6):
            fleet.seal(d, 150_000)
    fleet.start()
    restarts = 0
    try:
        for _ in range(3):
            target = sum(up.stats.chunks_sent for up in fleet.uploaders.values()) + 25
            deadline = time.monotonic() + 30
            while (sum(up.stats.chunks_sent for up in fleet.uploaders.values()) < target
                   and time.monotonic() < deadline):
                time.sleep(0.01)
            rig.broker.restart(down_seconds=0.5)
            restarts += 1
        assert fleet.wait_idle(90), f"{fleet.pending()} segments still on the recorders"
    finally:
        fleet.stop()
    assert hub.service.bridge.connects >= 1 + restarts
    out = check_outcome("broker restart mid-upload", restarts, fleet.contents,
                        hub.cfg.database_url, hub.service.store, rig.pki, fleet.stores,
                        note="mosquitto stop/start, persistent sessions")
    assert out.lost == 0 and out.invalid == 0, out
    assert len(stored_segments(hub)) == len(fleet.contents)


def _mount_tmpfs(path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True)


def test_hub_disk_full_refuses_then_delivers(rig, fleet_factory):
    store_dir = rig.root / "hub" / "store"
    _mount_tmpfs(store_dir, "3m")  # fails loudly when not root: the gauntlet needs root
    try:
        hub = rig.start_hub()
        fleet = fleet_factory(rig.port, DEVICES[:2])
        for d in DEVICES[:2]:
            for _ in range(5):
                fleet.seal(d, 400_000)  # 4 MB in all: cannot fit into 3 MB
        fleet.start()
        deadline = time.monotonic() + 60

        async def refusals():
            async with hub.service.sessions() as s:
                return list((await s.execute(select(Rejection.code))).scalars())

        while "hub_storage_full" not in hub.call(refusals()):
            assert time.monotonic() < deadline, "the hub never refused for a full disk"
            time.sleep(0.1)
        time.sleep(2.0)  # the recorders keep retrying against the full disk for a while
        held = fleet.pending()
        assert held > 0, "segments are kept on the recorders while the hub is full"
        stored_when_full = len(stored_segments(hub))
        subprocess.run(["mount", "-o", "remount,size=64m", str(store_dir)], check=True)
        assert fleet.wait_idle(90), f"{fleet.pending()} segments still on the recorders"
        fleet.stop()
        codes = hub.call(refusals())
        out = check_outcome("hub disk full", 1, fleet.contents, hub.cfg.database_url,
                            hub.service.store, rig.pki, fleet.stores,
                            note=f"{codes.count('hub_storage_full')} x hub_storage_full; "
                                 f"{held} held on recorders, {stored_when_full} stored while "
                                 "full")
        assert out.lost == 0 and out.invalid == 0, out
    finally:
        rig.close()
        subprocess.run(["umount", "-l", str(store_dir)], check=False)


def test_short_write_on_a_full_disk_never_marks_a_chunk_received(pki, tmp_path):
    """A full filesystem may accept part of a write without an error. The staged chunk must
    then fail with ENOSPC and stay missing — before this was handled, the running hash (taken
    from memory) still matched and a blob with a hole was stored and receipted."""
    import errno

    from lerec.hub.daemon.staging import Transfer
    from lerec.protocol import SegmentManifest, decode_signed
    from support.rig import fake_segment, make_store

    store = make_store(pki, "rec-a", tmp_path / "card", chunk_size=48 * 1024)
    row = store.seal(fake_segment(store, 200_000))
    signed = decode_signed(row.manifest, SegmentManifest)
    disk = tmp_path / "tiny"
    _mount_tmpfs(disk, "64k")
    try:
        t = Transfer.create(disk / "rec-a" / signed.message.segment_id, signed)
        chunk = b"x" * signed.message.chunk_size
        t.write(0, chunk)
        try:
            t.write(1, chunk)  # only part of it fits
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        else:
            raise AssertionError("a short write went unnoticed")
        assert t.has(0) and not t.has(1) and t.missing_ranges()[0][0] == 1
        t.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
