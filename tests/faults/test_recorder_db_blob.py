"""kill -9 of a recorder process mid-segment; a stored blob corrupted on the hub's disk; the
database taken away from the hub mid-ingest (SQLite: the files made immutable; PostgreSQL: the
hub's backends terminated). The MQTT bridge acknowledges a message only after its handler
succeeded, so a message the hub could not record is redelivered (or the recorder announces
again) and completes."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from lerec_fault_gauntlet import check_outcome  # type: ignore[import-not-found]
from support.databases import FreshPostgres, execute
from support.hubproc import query_segments, write_hub_toml

from lerec.hub.errors import IntegrityError

RECORDER = Path(__file__).with_name("_recorder_proc.py")
DEVICES = ("rec-a", "rec-b", "rec-c")


def test_recorder_killed_mid_segment_delivers_everything(rig, tmp_path):
    hub = rig.start_hub()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rng = random.Random(7)
    contents = {}
    for i in range(12):
        data = os.urandom(rng.randrange(60_000, 200_000))
        (inbox / f"seg-{i:03d}.mp4").write_bytes(data)
        contents[hashlib.sha256(data).hexdigest()] = data
    args = [sys.executable, str(RECORDER), str(rig.pki.root), "rec-a", str(tmp_path / "card"),
            str(inbox), str(rig.port)]
    kills = 0
    for _ in range(6):  # killed at random points: sealing, announcing, sending, receipting
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 2.5))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
    final = subprocess.run(args, capture_output=True, timeout=150, check=False)
    assert final.returncode == 0, final.stderr.decode()[-3000:]
    rows = query_segments(hub.cfg.database_url)
    by_hash: dict[str, list] = {}
    for r in rows:
        by_hash.setdefault(r.sha256, []).append(r)
    matched = {(r.device_id, r.seq): contents[h] for h, rs in by_hash.items() for r in rs
               if h in contents}
    out = check_outcome("kill -9 recorder", kills, matched, hub.cfg.database_url,
                        hub.service.store, rig.pki, note="recorder process mid-seal/upload")
    out.sent = len(contents)
    out.lost = sum(1 for h in contents if len(by_hash.get(h, [])) != 1) + (
        len(matched) - out.stored)
    assert kills >= 3
    assert out.lost == 0 and out.invalid == 0, out


def test_corrupted_blob_is_detected(rig, fleet_factory, tmp_path):
    hub = rig.start_hub()
    fleet = fleet_factory(rig.port, DEVICES)
    for d in DEVICES:
        fleet.seal(d, 120_000)
    fleet.start()
    assert fleet.wait_idle(60)
    rows = query_segments(hub.cfg.database_url)
    victim = rows[1]
    path = hub.service.store.path_for(victim.stored_ref)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    os.chmod(path, 0o644)
    path.write_bytes(bytes(raw))
    os.chmod(path, 0o444)
    detected = 0
    with pytest.raises(IntegrityError):
        hub.call(hub.service.store.verify(victim.stored_ref))
    detected += 1
    toml = write_hub_toml(hub.cfg, tmp_path / "hub.toml")
    verify = subprocess.run([str(Path(sys.executable).parent / "lerec-verify"), "-q", "store",
                             "--config", str(toml)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert victim.sha256 in verify.stdout or victim.segment_id in verify.stdout, verify.stdout
    detected += 1
    out = check_outcome("corrupted stored blob", 1, fleet.contents, hub.cfg.database_url,
                        hub.service.store, rig.pki, fleet.stores,
                        note=f"1 blob flipped on disk; detected by {detected}/2 checks "
                             "(store.verify, lerec-verify store exit 1); lost = undetected")
    corrupted = out.sent - out.stored
    assert corrupted == 1, "exactly the flipped blob fails its hash"
    out.lost = corrupted - (1 if detected == 2 else 0)
    assert out.lost == 0 and out.invalid == 0, out


def _hold(fault_on, fault_off, fleet, rounds: int, hold: float) -> int:
    """Apply a fault ``rounds`` times while chunks flow; return how many were applied."""
    applied = 0
    for _ in range(rounds):
        target = sum(up.stats.chunks_sent for up in fleet.uploaders.values()) + 10
        deadline = time.monotonic() + 20
        while (sum(up.stats.chunks_sent for up in fleet.uploaders.values()) < target
               and time.monotonic() < deadline):
            time.sleep(0.01)
        fault_on()
        try:
            time.sleep(hold)
        finally:
            fault_off()
        applied += 1
    return applied


def test_sqlite_unwritable_mid_ingest(rig, fleet_factory):
    hub = rig.start_hub()
    db = Path(hub.cfg.database_url.split(":///", 1)[1]) if "sqlite" in hub.cfg.database_url \
        else None
    if db is None:  # the PostgreSQL pass: the PostgreSQL case below covers it
        db_files: list[Path] = []
    else:
        db_files = [db, db.with_name(db.name + "-wal")]
    fleet = fleet_factory(rig.port, DEVICES)
    for d in DEVICES:
        for _ in range(6):
            fleet.seal(d, 100_000)
    fleet.start()

    def on() -> None:
        for f in db_files:
            subprocess.run(["chattr", "+i", str(f)], check=True)

    def off() -> None:
        for f in db_files:
            subprocess.run(["chattr", "-i", str(f)], check=False)

    try:
        runs = _hold(on, off, fleet, 3, 1.5)
        assert fleet.wait_idle(90), f"{fleet.pending()} segments still on the recorders"
    finally:
        off()
        fleet.stop()
    bridge = hub.service.bridge
    out = check_outcome("database unwritable", runs, fleet.contents, hub.cfg.database_url,
                        hub.service.store, rig.pki, fleet.stores,
                        note=(f"SQLite files immutable; {bridge.failures} handler failures "
                              f"unacked, {bridge.redelivery_drops} redelivery reconnects")
                        if db_files else "PostgreSQL pass: no SQLite file (see the next row)")
    assert out.lost == 0 and out.invalid == 0, out
    if db_files:
        assert bridge.failures > 0, "the fault reached the hub"


def test_postgres_backends_terminated_mid_ingest(rig, fleet_factory):
    with FreshPostgres() as url:
        name = url.rpartition("/")[2]
        hub = rig.start_hub(database_url=url)
        fleet = fleet_factory(rig.port, DEVICES)
        for d in DEVICES:
            for _ in range(6):
                fleet.seal(d, 100_000)
        fleet.start()
        stop = threading.Event()

        def terminate() -> None:
            execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")

        try:
            runs = _hold(terminate, lambda: None, fleet, 5, 0.3)
            assert fleet.wait_idle(90), f"{fleet.pending()} segments still on the recorders"
        finally:
            stop.set()
            fleet.stop()
        bridge = hub.service.bridge
        out = check_outcome("postgres backend killed", runs, fleet.contents, url,
                            hub.service.store, rig.pki, fleet.stores,
                            note=f"pg_terminate_backend; {bridge.failures} handler failures "
                                 f"unacked, {bridge.redelivery_drops} redelivery reconnects")
        rig.close()
    assert out.lost == 0 and out.invalid == 0, out
    assert bridge.failures > 0, "the fault reached the hub"
