"""The scale-out profile, brought up on one machine: three ``lerec-hub run`` workers sharing the
ingest through an MQTT v5 shared subscription, PostgreSQL for records, SeaweedFS (S3) for clips,
one staging folder shared by the workers, the real mosquitto. Fifty simulated recorders
(device.store + device.upload) upload small segments while one worker is killed with SIGKILL
in the middle of the transfers and started again. Every segment must end up stored exactly
once: one row, one object that hashes to its manifest, one ``segment_ingested`` audit entry, one
verified receipt on the recorder, nothing left in staging."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections import Counter

from sqlalchemy import select
from support.hubproc import HubProcess, enroll, query_segments, run_db, write_hub_toml
from support.rig import fake_segment, hub_config, make_store, make_uploader

from lerec.deploy.pki import issue_device
from lerec.hub.config import BrokerSettings, S3Settings, StorageSettings
from lerec.hub.db.audit_models import AuditEntry
from lerec.hub.storage.s3 import S3BlobStore
from lerec.protocol import Receipt, decode_signed, keys

RECORDERS = 50
SEGMENTS = 2
SIZE = 40_000  # 3 chunks of 16 KiB
WORKERS = 3
GROUP = "ingest"


def test_three_workers_share_ingest_and_survive_a_kill(pki, broker, tmp_path, pg_url, seaweed):
    devices = [f"so-{i:02d}" for i in range(RECORDERS)]
    for d in devices:
        issue_device(pki, d)
    shared = tmp_path / "shared"  # in production: one volume mounted by every worker
    bucket = f"lerec-so-{os.urandom(4).hex()}"
    s3 = S3Settings(endpoint_url=seaweed, bucket=bucket)
    workers: list[HubProcess] = []
    for i in range(WORKERS):
        cfg = hub_config(pki, broker.port, tmp_path, database_url=pg_url)
        cfg = cfg.model_copy(update={
            "storage_dir": shared, "storage": StorageSettings(backend="s3", s3=s3),
            "broker": BrokerSettings(host="127.0.0.1", port=broker.port, ca=pki.ca_cert,
                                     cert=pki.hub_cert, key=pki.hub_key,
                                     client_id=f"lerec-hub-w{i}", share_group=GROUP,
                                     max_backoff=2.0),
        })
        if i == 0:
            enroll(cfg, pki, devices)  # schema once, before the workers start
        toml = write_hub_toml(cfg, tmp_path / f"worker{i}.toml")
        workers.append(HubProcess(toml, tmp_path / f"worker{i}.log"))
    for w in workers:
        w.start()

    contents: dict[tuple[str, int], bytes] = {}
    recorders = []
    for d in devices:
        store = make_store(pki, d, tmp_path / "rec" / d, chunk_size=16 * 1024)
        for _ in range(SEGMENTS):
            seg = fake_segment(store, SIZE)
            data = seg.path.read_bytes()
            contents[(d, store.seal(seg).seq)] = data
        up = make_uploader(pki, store, broker.port, reply_timeout=2.0, max_backoff=2.0,
                           window=4)
        recorders.append((store, up))

    victim = workers[1]
    killed_at: list[int] = []

    def kill_mid_transfer() -> None:
        while sum(up.stats.uploaded for _, up in recorders) < len(contents) // 4:
            time.sleep(0.005)
        killed_at.append(sum(up.stats.uploaded for _, up in recorders))
        victim.kill()  # SIGKILL: no clean-up, chunks in flight at that worker are lost
        time.sleep(2.0)
        victim.start()

    killer = threading.Thread(target=kill_mid_transfer, daemon=True)
    killer.start()
    t0 = time.monotonic()
    try:
        for _, up in recorders:
            up.start()
        killer.join(120)
        for store, up in recorders:
            assert up.wait_idle(180), f"{store.device_id} still holds pending segments"
        elapsed = time.monotonic() - t0
    finally:
        for _, up in recorders:
            up.stop()
        for w in workers:
            w.stop()
    assert killed_at and killed_at[0] < len(contents), "the worker was killed mid-transfer"

    # Exactly once in the database, and each row is what the recorder recorded.
    rows = query_segments(pg_url)
    assert len(rows) == len(contents)
    assert sorted((r.device_id, r.seq) for r in rows) == sorted(contents)
    for r in rows:
        assert r.sha256 == hashlib.sha256(contents[(r.device_id, r.seq)]).hexdigest()

    # Exactly one object per segment in SeaweedFS, each hashing to its address.
    objects = S3BlobStore(endpoint_url=seaweed, bucket=bucket, staging_dir=tmp_path / "v")
    keys_ = [o["Key"] for page in objects.client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket) for o in page.get("Contents", [])]
    assert len(keys_) == len(contents)
    import asyncio

    async def verify_all() -> None:
        for r in rows:
            await objects.verify(r.stored_ref)

    asyncio.run(verify_all())

    # Exactly one ingest and one receipt audit entry per segment.
    async def audit(sessions):
        async with sessions() as s:
            return list((await s.execute(select(AuditEntry.type, AuditEntry.subjects))).all())

    entries = run_db(pg_url, audit)
    per_segment = Counter((t, subj.split()[0]) for t, subj in entries
                          if t in ("segment_ingested", "receipt_issued"))
    for r in rows:
        assert per_segment[("segment_ingested", f"segment:{r.segment_id}")] == 1
        assert per_segment[("receipt_issued", f"segment:{r.segment_id}")] == 1

    # Every recorder holds a verified receipt for each of its segments; staging is empty.
    hub_pub = keys.ed25519_public(pki.hub_signing_pub.read_bytes())
    for r in rows:
        decode_signed(r.receipt, Receipt).verify(hub_pub)
    for store, _ in recorders:
        assert [store.journal.get(s).state for s in range(SEGMENTS)] == ["receipted"] * SEGMENTS
    assert not list((shared / "staging").rglob("manifest")), "staging cleaned"

    # The work really was shared: several workers stored segments.
    stored_by = [len(re.findall(r"stored as sha256:", w.log.read_text(errors="replace")))
                 for w in workers]
    print(f"\nscale-out: {len(contents)} segments from {RECORDERS} recorders in {elapsed:.1f}s; "
          f"stored per worker {stored_by} (worker 1 killed after {killed_at[0]} receipts)")
    # (exactly-once is proven by the rows, objects and audit entries above; a log line can be
    # missing for a segment the killed worker committed just before SIGKILL took its output)
    assert sum(stored_by) <= len(contents), "no segment stored twice"
    assert sum(1 for n in stored_by if n) >= 2
