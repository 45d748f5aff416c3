"""``lerec-verify archive``: verify an archive package offline — no database, no network.

Checks, each failure named by the file or element it concerns:

- BagIt (RFC 8493): structure, completeness, Payload-Oxum, every payload file against the
  SHA-256 and SHA-512 manifests, every tag file against the tag manifests;
- keys: the hub key as a note verifier key (``keys/hub.vkey``) and as PEM
  (``keys/hub-signing.pub``) are the same key, and equal the trusted key given with
  ``--hub-key``; every device key file is an Ed25519 public key;
- segments: each signed manifest verifies with its device's key; each media file's length and
  SHA-256 equal the manifest's; each hub receipt verifies with the hub key and its fields
  match the manifest (device, segment, seq, hash, length, manifest hash, stored ref);
- hash chains: between consecutive sequence numbers of a device, ``prev_hash`` is the hash of
  the previous signed manifest (broken = error); sequence numbers absent from the package are
  reported as "not included", not as a break;
- audit: every entry is canonical, and its inclusion proof leads to the root of the signed
  checkpoint, whose signature verifies with the hub key; each segment should be vouched for
  by an included ``segment_ingested`` entry with the same manifest hash.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import bagit
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from lerec.protocol import ProtocolError, Receipt, SegmentManifest, decode_signed
from tqdm import tqdm

from ..audit.checkpoint import verify_checkpoint
from ..audit.entries import decode_event
from ..audit.errors import AuditError, EntryError
from ..audit.merkle import hash_leaf, verify_inclusion
from ..audit.note import VerifierKey
from .findings import INFO, WARNING, Report

HASH_BLOCK = 1 << 20


class PackageError(Exception):
    """The path is not a readable package (not a directory, .tar or .zip with a bag)."""


# --- opening ------------------------------------------------------------------------------


def _safe_extract_zip(zpath: Path, dest: Path) -> None:
    with zipfile.ZipFile(zpath) as z:
        for info in z.infolist():
            target = (dest / info.filename).resolve()
            if not str(target).startswith(str(dest.resolve())):
                raise PackageError(f"{info.filename}: path leaves the package")
        z.extractall(dest)


def open_package(path: Path, workdir: Path) -> Path:
    """The bag root folder of ``path`` (extracting a .tar/.zip into ``workdir``)."""
    path = Path(path)
    if path.is_dir():
        root = path
    elif zipfile.is_zipfile(path):
        _safe_extract_zip(path, workdir)
        root = workdir
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as t:
            t.extractall(workdir, filter="data")
        root = workdir
    else:
        raise PackageError(f"{path}: not a directory, .tar or .zip package")
    if (root / "bagit.txt").exists():
        return root
    subs = [p for p in root.iterdir() if (p / "bagit.txt").exists()]
    if len(subs) != 1:
        raise PackageError(f"{path}: no BagIt bag (bagit.txt) found")
    return subs[0]


# --- BagIt ----------------------------------------------------------------------------------


def _hash_one(path: Path, algs: list[str], bar: Any) -> tuple[dict[str, str], int]:
    hs = {a: hashlib.new(a) for a in algs}
    n = 0
    buf = bytearray(HASH_BLOCK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while k := f.readinto(buf):
            n += k
            for h in hs.values():
                h.update(view[:k])
            bar.update(k)
    return {a: h.hexdigest() for a, h in hs.items()}, n


def check_bag(root: Path, report: Report, *, progress: bool = False,
              threads: int = 2) -> dict[str, str]:
    """Validate the bag; return ``{relative path: actual sha256}`` of every file hashed."""
    try:
        bag = bagit.Bag(str(root))
    except bagit.BagError as exc:
        report.add("bag", str(root.name), f"not a valid bag: {exc}")
        return {}
    for step in (bag._validate_structure, bag._validate_completeness, bag._validate_oxum):
        try:  # structure, completeness (missing / unexpected files), Payload-Oxum; no hashing
            step()
        except bagit.BagValidationError as exc:
            _bag_details(report, exc)
        except bagit.BagError as exc:
            report.add("bag", "bag-info.txt" if step == bag._validate_oxum else "bag", str(exc))
    entries = {p: h for p, h in bag.entries.items() if (root / p).is_file()}
    for p in bag.entries:
        if not (root / p).is_file() and not report.find("bag", p):
            report.add("bag", p, "listed in a manifest but missing")
    algs = sorted({a for h in entries.values() for a in h} | {"sha256"})
    total = sum((root / p).stat().st_size for p in entries)
    bar = tqdm(total=total, unit="B", unit_scale=True, disable=not progress, desc="bag")
    with ThreadPoolExecutor(threads) as pool:
        results = dict(zip(entries, pool.map(
            lambda p: _hash_one(root / p, algs, bar), list(entries))))
    bar.close()
    actual: dict[str, str] = {}
    for p, expected in entries.items():
        got, _n = results[p]
        actual[p] = got["sha256"]
        bad = [a for a, h in expected.items() if got.get(a) != h.lower()]
        if bad:
            kind = "tag file" if not p.startswith("data/") else "payload file"
            report.add("bag", p, f"{kind} does not match its {', '.join(bad)} manifest entry")
        else:
            report.ok("bag")
    return actual


def _bag_details(report: Report, exc: bagit.BagValidationError) -> None:
    for d in exc.details or []:
        if isinstance(d, bagit.FileMissing):
            report.add("bag", d.path, "listed in a manifest but missing")
        elif isinstance(d, bagit.UnexpectedFile):
            report.add("bag", d.path, "present but not listed in any manifest")
        elif isinstance(d, bagit.ChecksumMismatch):
            report.add("bag", d.path, f"{d.algorithm} mismatch")
        else:
            report.add("bag", "bag", str(d))
    if not exc.details:
        report.add("bag", "bag", str(exc.message))


# --- keys -----------------------------------------------------------------------------------


def parse_trusted_key(text_or_path: str) -> VerifierKey | Ed25519PublicKey:
    """``--hub-key``: a note verifier key, or a file with one or with a PEM public key."""
    p = Path(text_or_path)
    text = p.read_text().strip() if p.is_file() else text_or_path.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the trusted hub key must be an Ed25519 key")
        return key
    return VerifierKey.parse(text)


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def vkey_raw(vkey: VerifierKey) -> bytes:
    """The Ed25519 public key inside a note verifier key."""
    return vkey.public_key


def load_keys(data: Path, report: Report, trusted: str | None
              ) -> tuple[VerifierKey | None, Ed25519PublicKey | None, dict[str, Ed25519PublicKey]]:
    vkey: VerifierKey | None = None
    hub: Ed25519PublicKey | None = None
    try:
        vkey = VerifierKey.parse((data / "keys" / "hub.vkey").read_text().strip())
        report.ok("key")
    except (OSError, AuditError, ValueError) as exc:
        report.add("key", "data/keys/hub.vkey", f"unreadable: {exc}")
    try:
        k = serialization.load_pem_public_key((data / "keys" / "hub-signing.pub").read_bytes())
        if not isinstance(k, Ed25519PublicKey):
            raise ValueError("not an Ed25519 key")  # noqa: TRY004
        hub = k
        report.ok("key")
    except (OSError, ValueError) as exc:
        report.add("key", "data/keys/hub-signing.pub", f"unreadable: {exc}")
    if vkey is not None and hub is not None and vkey_raw(vkey) != _raw(hub):
        report.add("key", "data/keys/hub-signing.pub", "is not the key in data/keys/hub.vkey")
    if trusted is not None:
        t = parse_trusted_key(trusted)
        raw = vkey_raw(t) if isinstance(t, VerifierKey) else _raw(t)
        if (vkey is not None and vkey_raw(vkey) != raw) or (hub is not None and _raw(hub) != raw):
            report.add("key", "data/keys/hub.vkey",
                       "the package's hub key is NOT the trusted hub key (--hub-key); "
                       "everything it signed is checked against the trusted key instead")
        else:
            report.ok("key")
            report.facts["hub key"] = "与受信任密钥一致 matches the trusted key (--hub-key)"
        name = vkey.name if vkey is not None else (t.name if isinstance(t, VerifierKey) else "")
        hub = Ed25519PublicKey.from_public_bytes(raw)
        vkey = VerifierKey(name, raw) if name else vkey
    else:
        report.add("key", "data/keys/hub.vkey",
                   "checked against itself only; pass --hub-key to anchor it to a trusted key",
                   WARNING)
    devices: dict[str, Ed25519PublicKey] = {}
    for f in sorted((data / "keys" / "devices").glob("*.pub")):
        try:
            k = serialization.load_pem_public_key(f.read_bytes())
            if not isinstance(k, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")  # noqa: TRY004  # noqa: TRY004
            devices[f.stem] = k
            report.ok("key")
        except ValueError as exc:
            report.add("key", f"data/keys/devices/{f.name}", f"unreadable: {exc}")
    return vkey, hub, devices


# --- segments and chains --------------------------------------------------------------------


def check_segments(data: Path, report: Report, hub: Ed25519PublicKey | None,
                   devices: dict[str, Ed25519PublicKey], actual: dict[str, str]
                   ) -> dict[str, bytes]:
    """Verify every listed segment; return ``{segment_id: manifest hash}`` of good ones."""
    try:
        listing = json.loads((data / "segments.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        report.add("segment", "data/segments.json", f"unreadable: {exc}")
        return {}
    good: dict[str, bytes] = {}
    chains: dict[str, list[tuple[int, bytes, bytes, str]]] = {}
    for item in listing:
        sid = item.get("segment_id", "?")
        where = f"segment {sid}"
        try:
            wire = (data / item["manifest"]).read_bytes()
            signed = decode_signed(wire, SegmentManifest)
        except (OSError, KeyError, ProtocolError) as exc:
            report.add("manifest", f"{where} (data/{item.get('manifest')})", f"unreadable: {exc}")
            continue
        m = signed.message
        key = devices.get(m.device_id)
        if key is None:
            report.add("manifest", f"{where} (data/{item['manifest']})",
                       f"no key for device {m.device_id} in data/keys/devices")
            continue
        try:
            signed.verify(key)
            report.ok("manifest")
        except ProtocolError:
            report.add("manifest", f"{where} (data/{item['manifest']})",
                       f"device signature does not verify with {m.device_id}'s key")
            continue
        if m.segment_id != sid or item.get("device_id") != m.device_id or item.get("seq") != m.seq:
            report.add("segment", f"{where} (data/segments.json)",
                       "the index disagrees with the signed manifest")
        mhash = signed.digest
        media_rel = "data/" + item["media"]
        media = data / item["media"]
        if not media.is_file():
            report.add("media", f"{where} ({media_rel})", "media file missing")
        else:
            sha = actual.get(media_rel) or _hash_one(media, ["sha256"], _NoBar())[0]["sha256"]
            size = media.stat().st_size
            if sha != m.sha256.hex() or size != m.length:
                report.add("media", f"{where} ({media_rel})",
                           "media bytes differ from the signed manifest "
                           f"(sha256 {sha[:16]}…, {size} bytes; manifest {m.sha256.hex()[:16]}…,"
                           f" {m.length} bytes)")
            else:
                report.ok("media")
        try:
            rwire = (data / item["receipt"]).read_bytes()
            rsigned = decode_signed(rwire, Receipt)
            if hub is None:
                raise ProtocolError("no hub key")
            receipt = rsigned.verify(hub)
        except (OSError, KeyError, ProtocolError) as exc:
            report.add("receipt", f"{where} (data/{item.get('receipt')})",
                       f"hub signature does not verify: {exc}")
        else:
            from .storecheck import check_receipt

            if check_receipt(report, f"{where} (data/{item['receipt']})", receipt, m, mhash,
                             "sha256:" + m.sha256.hex()):
                report.ok("receipt")
        good[sid] = mhash
        chains.setdefault(m.device_id, []).append((m.seq, mhash, m.prev_hash, sid))
    for device, items in chains.items():
        items.sort()
        for (s0, h0, _p0, _id0), (s1, _h1, p1, id1) in pairwise(items):
            if s1 == s0:
                report.add("chain", f"device {device} seq {s1}", "two segments with one seq")
            elif s1 == s0 + 1:
                if p1 != h0:
                    report.add("chain", f"segment {id1} (device {device} seq {s1})",
                               f"prev_hash is not the hash of seq {s0}'s manifest: broken")
                else:
                    report.ok("chain")
            else:
                report.add("chain", f"device {device} seq {s0 + 1}..{s1 - 1}",
                           "not included in this package (not a break)", INFO)
    return good


class _NoBar:
    def update(self, _n: int) -> None:
        pass


# --- audit ----------------------------------------------------------------------------------


def check_audit(data: Path, report: Report, vkey: VerifierKey | None,
                segments: dict[str, bytes]) -> None:
    audit = data / "audit"
    try:
        note = (audit / "checkpoint.txt").read_bytes()
        proofs = json.loads((audit / "proofs.json").read_text("utf-8"))
        lines = (audit / "entries.jsonl").read_text("utf-8").splitlines()
    except (OSError, ValueError) as exc:
        report.add("proof", "data/audit", f"unreadable: {exc}")
        return
    if vkey is None:
        report.add("checkpoint", "data/audit/checkpoint.txt", "no hub key to verify it with")
        return
    try:
        cp = verify_checkpoint(note, vkey.name, vkey)
        report.ok("checkpoint")
    except AuditError as exc:
        report.add("checkpoint", "data/audit/checkpoint.txt", f"rejected: {exc}")
        return
    report.facts["checkpoint"] = f"size {cp.size}, root {cp.root_hash.hex()[:16]}…"
    if proofs.get("tree_size") != cp.size:
        report.add("proof", "data/audit/proofs.json",
                   f"proofs are for size {proofs.get('tree_size')}, checkpoint is {cp.size}")
    vouched: set[tuple[str, str]] = set()
    for n, line in enumerate(lines, start=1):
        try:
            item = json.loads(line)
            idx, text = int(item["idx"]), item["data"]
            raw = text.encode("utf-8")
        except (ValueError, KeyError, TypeError) as exc:
            report.add("entry", f"data/audit/entries.jsonl line {n}", f"unreadable: {exc}")
            continue
        where = f"entry {idx}"
        try:
            ev = decode_event(raw)
        except EntryError as exc:
            report.add("entry", where, f"not a canonical audit entry: {exc}")
            continue
        try:
            proof = [bytes.fromhex(h) for h in proofs["proofs"][str(idx)]]
            verify_inclusion(idx, cp.size, hash_leaf(raw), proof, cp.root_hash)
            report.ok("proof")
        except (KeyError, ValueError, AuditError) as exc:
            report.add("proof", where,
                       f"entry or its inclusion proof was altered: not in the signed log ({exc})")
            continue
        if ev.type.value == "segment_ingested":
            for s in ev.subjects:
                if s.startswith("segment:"):
                    vouched.add((s[8:], str(ev.details.get("manifest_hash", ""))))
    for sid, mhash in segments.items():
        if (sid, mhash.hex()) not in vouched:
            report.add("segment", f"segment {sid}",
                       "no included audit entry records its ingest with this manifest", WARNING)


# --- everything -----------------------------------------------------------------------------


def verify_bag_root(root: Path, *, trusted_hub_key: str | None = None, progress: bool = False,
                    title: str = "档案包校验 / archive package verification") -> Report:
    report = Report(title)
    data = root / "data"
    actual = check_bag(root, report, progress=progress)
    vkey, hub, devices = load_keys(data, report, trusted_hub_key)
    good = check_segments(data, report, hub, devices, actual)
    check_audit(data, report, vkey, good)
    try:
        case = json.loads((data / "case.json").read_text("utf-8"))
        report.facts["档号 archive no."] = case.get("archive_no")
        report.facts["案件 case"] = case.get("case_id")
        four = json.loads((data / "report" / "four-properties.json").read_text("utf-8"))
        report.facts["四性检测 four-properties (at archiving)"] = (
            "通过 passed" if four.get("ok") else "有问题 issues found")
    except (OSError, ValueError) as exc:
        report.add("package", "data/case.json", f"unreadable: {exc}")
    return report


def verify_archive(path: Path, *, trusted_hub_key: str | None = None,
                   progress: bool = False) -> Report:
    """Verify a package directory, .tar or .zip; never raises for tampering."""
    work = Path(tempfile.mkdtemp(prefix="lerec-verify-"))
    try:
        try:
            root = open_package(Path(path), work)
        except (PackageError, OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
            report = Report("档案包校验 / archive package verification")
            report.add("package", str(path), str(exc))
            return report
        report = verify_bag_root(root, trusted_hub_key=trusted_hub_key, progress=progress)
        report.facts["package"] = str(path)
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)
