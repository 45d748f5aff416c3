"""lerec-verify archive: every kind of element of a package, tampered, is caught and named."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import bagit
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lerec.hub.audit import log as audit
from lerec.hub.audit.checkpoint import Checkpoint, read_checkpoint_unverified, sign_checkpoint
from lerec.hub.verify.__main__ import main
from lerec.hub.verify.archivecheck import verify_archive
from lerec.protocol import Receipt, SegmentManifest, decode_signed, sign_message

NOW = dt.datetime(2026, 6, 20, 3, 0, tzinfo=dt.UTC)


@pytest.fixture
async def package(tmp_path, evidence, mp4_bytes, make_case):
    from lerec.hub.archive import build_archive

    case, segs = await make_case(evidence, mp4_bytes)
    result = await build_archive(evidence.sessions, evidence.store, case,
                                 hub_key=evidence.hub_key, archived_by="user:archivist",
                                 archive_root=tmp_path / "archives", now=NOW)
    work = tmp_path / "copy" / result.path.name
    shutil.copytree(result.path, work)
    for p in work.rglob("*"):
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    vkey = audit.signer_from_key(evidence.hub_key, audit.DEFAULT_ORIGIN).verifier().encode()
    return work, segs, vkey, evidence


def rebag(path: Path) -> None:
    """What a careful forger does after changing a file: recompute every bag manifest."""
    bagit.Bag(str(path)).save(manifests=True)


def check(path: Path, vkey: str) -> list[tuple[str, str]]:
    report = verify_archive(path, trusted_hub_key=vkey)
    assert report.failed
    return [(f.check, f.where) for f in report.errors]


def flip(path: Path, offset: int = -10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_clean_copy_verifies_and_cli_exits_zero(package, capsys):
    work, _segs, vkey, _ev = package
    assert main(["-q", "archive", str(work), "--hub-key", vkey]) == 0
    out = capsys.readouterr().out
    assert "校验通过 VERIFIED" in out and "真" not in out.split("VERIFIED")[1]


def test_changed_bag_file_is_named(package):
    work, _segs, vkey, _ev = package
    flip(work / "data/case.json", 5)
    assert ("bag", "data/case.json") in check(work, vkey)


def test_removed_and_added_bag_files_are_named(package):
    work, _segs, vkey, _ev = package
    (work / "data/attachments/notice.txt").unlink()
    (work / "data/extra.txt").write_text("slipped in")
    errors = check(work, vkey)
    assert ("bag", "data/attachments/notice.txt") in errors
    assert ("bag", "data/extra.txt") in errors


def test_changed_bag_manifest_is_named(package):
    work, _segs, vkey, _ev = package
    m = work / "manifest-sha512.txt"
    lines = m.read_text().splitlines()
    lines[0] = "0" * 128 + lines[0][128:]
    m.write_text("\n".join(lines) + "\n")
    errors = check(work, vkey)
    assert ("bag", "manifest-sha512.txt") in errors
    assert ("bag", lines[0].split("  ", 1)[1]) in errors


def test_changed_media_byte_is_named_even_after_rebagging(package):
    work, segs, vkey, _ev = package
    sid = segs[1].segment_id
    flip(work / f"data/segments/{sid}.mp4", 2000)
    assert ("bag", f"data/segments/{sid}.mp4") in check(work, vkey)
    rebag(work)
    assert check(work, vkey) == [("media", f"segment {sid} (data/segments/{sid}.mp4)")]


def test_changed_signed_manifest_is_named(package):
    work, segs, vkey, _ev = package
    sid = segs[0].segment_id
    f = work / f"data/segments/{sid}.manifest.cbor"
    f.write_bytes(f.read_bytes().replace("现场检查".encode(), "现场询问".encode()))
    rebag(work)
    errors = check(work, vkey)
    assert ("manifest", f"segment {sid} (data/segments/{sid}.manifest.cbor)") in errors


def test_manifest_resigned_with_a_substituted_device_key_is_caught_by_the_receipt(package):
    work, segs, vkey, _ev = package
    sid = segs[0].segment_id
    forger = Ed25519PrivateKey.generate()
    f = work / f"data/segments/{sid}.manifest.cbor"
    m = decode_signed(f.read_bytes(), SegmentManifest).message
    import dataclasses

    f.write_bytes(sign_message(dataclasses.replace(m, object_of_proof="别的"), forger))
    (work / "data/keys/devices/rec-a.pub").write_bytes(forger.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    rebag(work)
    errors = check(work, vkey)
    assert ("receipt", (f"segment {sid} (data/segments/{sid}.receipt.cbor) receipt field "
            "manifest_hash")) in errors
    # and rec-a's genuine manifests no longer verify with the substituted key
    assert ("manifest", (f"segment {segs[1].segment_id} (data/segments/"
            f"{segs[1].segment_id}.manifest.cbor)")) in errors


def test_changed_receipt_is_named(package):
    work, segs, vkey, _ev = package
    sid = segs[3].segment_id
    flip(work / f"data/segments/{sid}.receipt.cbor", -3)
    rebag(work)
    assert check(work, vkey) == [("receipt", f"segment {sid} (data/segments/{sid}.receipt.cbor)")]


def _entries(work: Path) -> list[dict]:
    return [json.loads(x) for x in (work / "data/audit/entries.jsonl").read_text().splitlines()]


def test_changed_audit_entry_is_named(package):
    work, _segs, vkey, _ev = package
    items = _entries(work)
    target = next(i for i in items if '"record_created"' in i["data"])
    target["data"] = target["data"].replace("立案审批表", "不予立案")
    (work / "data/audit/entries.jsonl").write_text(
        "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items))
    rebag(work)
    assert check(work, vkey) == [("proof", f"entry {target['idx']}")]


def test_changed_proof_is_named(package):
    work, _segs, vkey, _ev = package
    p = work / "data/audit/proofs.json"
    proofs = json.loads(p.read_text())
    idx, path = next(iter(proofs["proofs"].items()))
    path[0] = hashlib.sha256(b"forged").hexdigest()
    p.write_text(json.dumps(proofs))
    rebag(work)
    assert check(work, vkey) == [("proof", f"entry {idx}")]


def test_changed_checkpoint_is_named(package):
    work, _segs, vkey, _ev = package
    f = work / "data/audit/checkpoint.txt"
    lines = f.read_text().split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()
    f.write_text("\n".join(lines))
    rebag(work)
    assert check(work, vkey) == [("checkpoint", "data/audit/checkpoint.txt")]


def test_package_resigned_with_another_hub_key_fails_against_the_trusted_key(package):
    """A forger replaces the hub key and re-signs checkpoint and receipts: only an outside
    trusted key (--hub-key) can tell; with it, the key and every hub signature fail."""
    work, segs, vkey, _ev = package
    forger = Ed25519PrivateKey.generate()
    signer = audit.signer_from_key(forger, audit.DEFAULT_ORIGIN)
    (work / "data/keys/hub.vkey").write_text(signer.verifier().encode() + "\n")
    (work / "data/keys/hub-signing.pub").write_bytes(forger.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    cpf = work / "data/audit/checkpoint.txt"
    cp = read_checkpoint_unverified(cpf.read_bytes())
    cpf.write_bytes(sign_checkpoint(Checkpoint(cp.origin, cp.size, cp.root_hash), signer))
    for s in segs:
        rf = work / f"data/segments/{s.segment_id}.receipt.cbor"
        r = decode_signed(rf.read_bytes(), Receipt).message
        rf.write_bytes(sign_message(r, forger))
    rebag(work)
    assert not verify_archive(work).failed  # self-consistent without an outside anchor...
    errors = check(work, vkey)  # ...but not against the hub key the court trusts
    assert ("key", "data/keys/hub.vkey") in errors
    assert ("checkpoint", "data/audit/checkpoint.txt") in errors
    assert sum(1 for c, _ in errors if c == "receipt") == len(segs)


def test_mismatched_hub_key_files_are_named(package):
    work, _segs, _vkey, _ev = package
    other = Ed25519PrivateKey.generate()
    (work / "data/keys/hub-signing.pub").write_bytes(other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    rebag(work)
    report = verify_archive(work)
    assert ("key", "data/keys/hub-signing.pub") in [(f.check, f.where) for f in report.errors]


def test_not_a_package(tmp_path):
    (tmp_path / "junk.bin").write_bytes(os.urandom(100))
    report = verify_archive(tmp_path / "junk.bin")
    assert report.failed and report.errors[0].check == "package"
    assert main(["-q", "archive", str(tmp_path / "junk.bin")]) == 1
