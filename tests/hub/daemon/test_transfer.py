"""One segment from a recorder's clip store through the real broker into the hub's store."""

from __future__ import annotations

import hashlib
import time

from support.rig import fake_segment, stored_segments

from lerec.protocol import Receipt, decode_signed, keys


def wait_for(pred, timeout=20.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def test_segment_is_stored_verified_and_receipted(rig):
    hub = rig.start_hub()
    store, up = rig.recorder("rec-a")
    seg = fake_segment(store, 300_000)
    content = seg.path.read_bytes()
    row = store.seal(seg, officer_id="officer-7")
    assert not seg.path.exists(), "plaintext must be gone once sealed"
    assert content not in row.wire_path.read_bytes()
    with up:
        assert up.wait_idle(30)
    rows = stored_segments(hub)
    assert [(r.device_id, r.seq, r.officer_id) for r in rows] == [("rec-a", 0, "officer-7")]
    stored = hub.service.store.path_for(rows[0].stored_ref)
    assert stored.read_bytes() == content
    assert rows[0].sha256 == hashlib.sha256(content).hexdigest()
    assert stored.stat().st_mode & 0o222 == 0, "stored objects are read-only"
    hub_pub = keys.ed25519_public(rig.pki.hub_signing_pub.read_bytes())
    receipt = decode_signed(rows[0].receipt, Receipt).verify(hub_pub)
    assert receipt.manifest_hash == row.manifest_hash
    assert not row.wire_path.exists(), "local copy deleted after receipt"
    assert store.journal.get(0).state == "receipted"
    assert not list(hub.service.store.staging_dir.rglob("data")), "staging cleaned"


def test_chain_and_priority_order(rig):
    hub = rig.start_hub()
    store, up = rig.recorder("rec-b")
    for i in range(3):
        store.seal(fake_segment(store, 50_000 + i))
    store.seal(fake_segment(store, 10_000, important=True))
    order = []
    orig = store.accept_receipt

    def spy(wire):
        row = orig(wire)
        order.append(row.seq)
        return row

    store.accept_receipt = spy
    with up:
        assert up.wait_idle(30)
    assert order == [3, 0, 1, 2], "important first, then oldest first"
    rows = stored_segments(hub)
    assert [r.seq for r in rows] == [0, 1, 2, 3]
    for prev, cur in zip(rows, rows[1:]):
        assert cur.prev_hash == hashlib.sha256(prev.manifest).digest()


def test_resume_after_connection_cut_mid_transfer(rig):
    hub = rig.start_hub()
    store, up = rig.recorder("rec-c", chunk_size=16 * 1024, window=2)
    seg = fake_segment(store, 2_000_000)
    content = seg.path.read_bytes()
    store.seal(seg)
    cut = {"done": False}
    orig_publish = up._publish

    def publish(kind, payload):
        info = orig_publish(kind, payload)
        if kind == "chunk" and up.stats.chunks_sent == 40 and not cut["done"]:
            cut["done"] = True
            up.drop_connection()
        return info

    up._publish = publish
    with up:
        assert up.wait_idle(60)
    assert cut["done"]
    rows = stored_segments(hub)
    assert len(rows) == 1
    assert hub.service.store.path_for(rows[0].stored_ref).read_bytes() == content
    total = -(-2_000_000 // (16 * 1024))
    assert up.stats.connects >= 2
    assert up.stats.announces >= 2
    # Resumed, not restarted: far fewer than two full passes of chunks went out.
    assert up.stats.chunks_sent < 2 * total - 20, (up.stats.chunks_sent, total)


def test_ingest_and_receipt_are_in_the_audit_log(rig):
    from lerec.hub.audit import log as audit

    hub = rig.start_hub()
    store, up = rig.recorder("rec-a")
    row = store.seal(fake_segment(store, 10_000))
    with up:
        assert up.wait_idle(30)

    async def q():
        async with hub.service.sessions() as s:
            return await audit.entries(s, subject=f"segment:{row.segment_id}")

    events = [e for _, e in hub.call(q())]
    assert [e.type.value for e in events] == ["segment_ingested", "receipt_issued"]
    assert events[0].details["manifest_hash"] == row.manifest_hash.hex()


def test_daemon_signs_audit_checkpoints(rig):
    """The daemon's checkpoint task signs the audit log's head (C2SP checkpoint, hub key)."""
    from lerec.hub.audit import log as audit
    from lerec.hub.audit.checkpoint import verify_checkpoint

    hub = rig.start_hub(audit={"checkpoint_seconds": 0.5})
    store, up = rig.recorder("rec-a")
    store.seal(fake_segment(store, 10_000))
    with up:
        assert up.wait_idle(30)

    async def latest():
        async with hub.service.sessions() as s:
            return await audit.latest_checkpoint(s), await audit.head(s)

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        note, head = hub.call(latest())
        if note is not None and head.size >= 2:
            cp = verify_checkpoint(note, "lerec.local/audit", audit.signer_from_key(
                keys.ed25519_private(rig.pki.hub_signing_key.read_bytes()),
                "lerec.local/audit").verifier())
            if cp.size == head.size:
                return
        time.sleep(0.2)
    raise AssertionError("no checkpoint of the current head was signed")


def test_start_up_deletes_transfers_left_half_deleted(rig):
    """A worker killed between renaming a finished transfer into ``.discard/`` and deleting it
    leaves the folder there; the next start-up deletes it and nothing else in staging."""
    staging = rig.root / "hub" / "store" / "staging"
    left = staging / ".discard" / "rec-a.0a1b.deadbeef"
    left.mkdir(parents=True)
    for name in ("manifest", "data", "have", "lock"):
        (left / name).write_bytes(b"x")
    stray = staging / ".discard" / "stray-file"
    stray.write_bytes(b"y")
    live = staging / "rec-b" / "seg-in-transfer"
    live.mkdir(parents=True)
    (live / "have").write_bytes(b"\x00")
    rig.start_hub()
    assert not left.exists() and not stray.exists()
    assert (live / "have").exists(), "a transfer still in staging is not touched"
