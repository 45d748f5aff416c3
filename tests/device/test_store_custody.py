"""Nobody on the device can play, export or delete a segment before the hub's receipt.

- the clip store's public API and the recorder's CLI offer no such call;
- the plaintext is gone once a segment is sealed, and what stays on the card is ciphertext
  that only the hub's X25519 private key opens (the device never holds it);
- the only way a sealed file leaves the card is a receipt signed by the hub for exactly that
  manifest: forged, self-signed, mismatched or replayed receipts change nothing;
- a seal that does not fit on the card fails before writing anything (plaintext kept), and a
  sealed file is never overwritten.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from lerec.device.__main__ import _parser
from lerec.device.errors import DeviceError
from lerec.device.store import ClipStore, ReceiptError, StoreFull
from lerec.protocol import EnvelopeError, Receipt, keys, sign_message
from lerec.protocol.envelope import Opener, recipient_id
from support.rig import fake_segment, make_pki, make_store

PUBLIC_API = {
    "accept_receipt", "close", "last_seq", "manifest", "mark_refused", "pending", "read_chunk",
    "recover", "save_config", "saved_config", "seal", "sign", "space",
}
FORBIDDEN = ("play", "export", "delete", "remove", "unlink", "decrypt", "open", "plain",
             "copy", "purge", "drop", "discard", "wipe")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"), ("rec-a",))


@pytest.fixture
def store(pki, tmp_path):
    s = make_store(pki, "rec-a", tmp_path / "card")
    yield s
    s.close()


def _receipt(store: ClipStore, row, key: Ed25519PrivateKey, **changes) -> bytes:
    m = store.manifest(row)
    fields = {"hub_id": "hub", "device_id": m.device_id, "segment_id": m.segment_id, "seq": m.seq,
                  "sha256": m.sha256, "length": m.length, "manifest_hash": row.manifest_hash,
                  "received_ms": 1_700_000_000_000, "stored_ref": "sha256/x"}
    fields.update(changes)
    return sign_message(Receipt(**fields), key)


def test_no_play_export_or_delete_call_exists():
    public = {n for n in dir(ClipStore) if not n.startswith("_")}
    assert public == PUBLIC_API, "a new public ClipStore call needs a custody review"
    assert not [n for n in public if any(w in n for w in FORBIDDEN)]
    sub = next(a for a in _parser()._actions if a.dest == "cmd")
    assert set(sub.choices) == {"run", "simulate", "status"}


def test_plaintext_is_gone_and_only_the_hub_key_opens_the_card(pki, store):
    seg = fake_segment(store, 300_000)
    plain = seg.path.read_bytes()
    row = store.seal(seg)
    assert not seg.path.exists() and not list(store.spool.iterdir())
    wire = row.wire_path.read_bytes()
    assert plain[1000:1064] not in wire
    m = store.manifest(row)
    first = store.read_chunk(row, 0)
    assert first[:64] != plain[:64], "the store hands out ciphertext only"

    device_files = {p.name for p in pki.device("rec-a").root.iterdir()}
    assert "hub-box.key" not in device_files and "hub-box.pub" in device_files
    thief = X25519PrivateKey.generate()
    with pytest.raises(EnvelopeError):
        Opener(thief, m.encryption, m.segment_id)   # sealed to another key
    forged = dataclasses.replace(m.encryption, recipient=recipient_id(thief.public_key()))
    with pytest.raises(EnvelopeError):
        Opener(thief, forged, m.segment_id).open(0, first, m.chunk_count == 1)
    hub = keys.x25519_private(pki.hub_box_key.read_bytes())
    assert Opener(hub, m.encryption, m.segment_id).open(0, first, False) == plain[:m.chunk_size]


def test_only_the_hubs_receipt_for_that_manifest_removes_a_segment(pki, store):
    row = store.seal(fake_segment(store, 100_000))
    other = store.seal(fake_segment(store, 100_000))
    hub_key = keys.ed25519_private(pki.hub_signing_key.read_bytes())
    device_key = keys.ed25519_private(pki.device("rec-a").signing_key.read_bytes())
    forgeries = {
        "signed by a stranger": _receipt(store, row, Ed25519PrivateKey.generate()),
        "signed with the device's own key": _receipt(store, row, device_key),
        "wrong content hash": _receipt(store, row, hub_key, sha256=bytes(32)),
        "wrong manifest": _receipt(store, row, hub_key, manifest_hash=other.manifest_hash),
        "wrong length": _receipt(store, row, hub_key, length=1),
        "unknown segment": _receipt(store, row, hub_key, segment_id=uuid.uuid4().hex),
        "another recorder": _receipt(store, row, hub_key, device_id="rec-b"),
        "not a receipt": b"\xa0",
    }
    for what, wire in forgeries.items():
        with pytest.raises(ReceiptError):
            store.accept_receipt(wire)
        assert store.journal.get(row.seq).state == "pending", what
        assert row.wire_path.exists(), what
    tampered = bytearray(_receipt(store, row, hub_key))
    tampered[-70] ^= 1
    with pytest.raises(ReceiptError):
        store.accept_receipt(bytes(tampered))
    assert row.wire_path.exists()

    store.mark_refused(other, "tampered", "test")   # refused: flagged, never deleted
    assert other.wire_path.exists()
    assert [r.seq for r in store.pending()] == [row.seq]

    store.accept_receipt(_receipt(store, row, hub_key))
    assert store.journal.get(row.seq).state == "receipted"
    assert not row.wire_path.exists()
    assert store.pending() == []


def test_seal_never_overwrites_a_sealed_segment(store, monkeypatch):
    fixed = uuid.uuid4()
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)
    row = store.seal(fake_segment(store, 10_000))
    before = row.wire_path.read_bytes()
    seg = fake_segment(store, 10_000)
    with pytest.raises(DeviceError):
        store.seal(seg)
    assert row.wire_path.read_bytes() == before and seg.path.exists()


def test_seal_that_does_not_fit_keeps_the_plaintext(pki, tmp_path):
    if os.geteuid() != 0:
        pytest.fail("mounting a 2 MB test card (tmpfs) needs root")
    card = tmp_path / "tiny"
    card.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(card)], check=True)
    try:
        store = make_store(pki, "rec-a", Path(card))
        seg = fake_segment(store, 1_100_000)
        content = seg.path.read_bytes()
        with pytest.raises(StoreFull) as exc:
            store.seal(seg)
        assert isinstance(exc.value, OSError) and exc.value.needed > exc.value.free
        assert seg.path.read_bytes() == content, "nothing recorded is lost"
        assert not list(store.sealed.iterdir()) and store.pending() == []
        # a segment that fits seals normally
        small = fake_segment(store, 200_000)
        assert store.seal(small).seq == 0
        store.close()
    finally:
        subprocess.run(["umount", "-l", str(card)], check=False)
