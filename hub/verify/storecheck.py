"""``lerec-verify store``: re-hash every stored blob and check it against everything that
vouches for it.

For each ``segments`` row: the signed manifest (device signature with the enrolled key, and
every manifest field against the row), the ``manifest_hash`` column, the hub receipt (hub
signature and fields), the blob (present, length, SHA-256 equal to its content address and to
the manifest), and the per-device hash chain (``prev_hash`` = previous manifest's hash; a
missing sequence number is a gap, reported as such, not as a break). Then every object on
disk is re-hashed against its name, so a blob no row points at cannot hide corruption either.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from lerec.protocol import ProtocolError, Receipt, SegmentManifest, decode_signed
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from tqdm import tqdm

from ..db.models import Device, Segment
from ..db.types import from_ms
from ..storage import BlobStore, LocalBlobStore
from ..storage.base import parse_ref
from .findings import INFO, WARNING, Report

READ_BLOCK = 1 << 20


def hash_file(path: Path, algorithms: tuple[str, ...] = ("sha256",)) -> tuple[list[str], int]:
    """Hex digests of ``path`` for each algorithm, and its length, in one read."""
    hs = [hashlib.new(a) for a in algorithms]
    n = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(READ_BLOCK)
        view = memoryview(buf)
        while k := f.readinto(buf):
            n += k
            for h in hs:
                h.update(view[:k])
    return [h.hexdigest() for h in hs], n


def check_manifest_against_row(report: Report, seg: Segment, m: SegmentManifest) -> None:
    where = f"segment {seg.segment_id}"
    fields: list[tuple[str, Any, Any]] = [
        ("segment_id", seg.segment_id, m.segment_id), ("device_id", seg.device_id, m.device_id),
        ("seq", seg.seq, m.seq), ("officer_id", seg.officer_id, m.officer_id),
        ("sha256", seg.sha256, m.sha256.hex()), ("length", seg.length, m.length),
        ("media_type", seg.media_type, m.media_type), ("prev_hash", seg.prev_hash, m.prev_hash),
        ("start_at", seg.start_at, from_ms(m.start_ms)), ("end_at", seg.end_at, from_ms(m.end_ms)),
        ("important", seg.important, m.important), ("recovered", seg.recovered, m.recovered),
        ("clock_state", seg.clock_state, m.clock.state),
        ("clock_offset_ms", seg.clock_offset_ms, m.clock.offset_ms),
    ]
    for name, row_value, signed_value in fields:
        if row_value != signed_value:
            report.add("segment", f"{where} field {name}",
                       f"row says {row_value!r} but the signed manifest says {signed_value!r}")


def check_receipt(report: Report, where: str, receipt: Receipt, m: SegmentManifest,
                  manifest_hash: bytes, ref: str) -> bool:
    ok = True
    for name, got, want in [
        ("device_id", receipt.device_id, m.device_id), ("segment_id", receipt.segment_id,
                                                         m.segment_id),
        ("seq", receipt.seq, m.seq), ("sha256", receipt.sha256, m.sha256),
        ("length", receipt.length, m.length), ("manifest_hash", receipt.manifest_hash,
                                               manifest_hash),
        ("stored_ref", receipt.stored_ref, ref),
    ]:
        if got != want:
            ok = False
            report.add("receipt", f"{where} receipt field {name}",
                       f"receipt says {got!r}, expected {want!r}")
    return ok


def _objects(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield Path(dirpath) / name


async def _rehash_local(store: LocalBlobStore, progress: bool, threads: int
                        ) -> dict[str, tuple[str, int]]:
    """Every object on disk (referenced or not): name -> (actual sha256, length)."""
    on_disk = {p.name: p for p in _objects(store.objects)}
    total = sum(p.stat().st_size for p in on_disk.values())
    bar = tqdm(total=total, unit="B", unit_scale=True, disable=not progress, desc="store")

    def rehash(path: Path) -> tuple[str, int]:
        digests, n = hash_file(path)
        bar.update(n)
        return digests[0], n

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(threads) as pool:
        hashes = dict(zip(on_disk, await asyncio.gather(
            *(loop.run_in_executor(pool, rehash, p) for p in on_disk.values())), strict=True))
    bar.close()
    return hashes


async def _rehash_refs(store: BlobStore, refs: list[str], progress: bool
                       ) -> dict[str, tuple[str, int]]:
    hashes: dict[str, tuple[str, int]] = {}
    bar = tqdm(total=len(refs), unit="blob", disable=not progress, desc="store")
    for ref in dict.fromkeys(refs):
        try:
            hexref = parse_ref(ref)
            if not await store.exists(ref):
                continue
        except ValueError:
            continue
        h, n = hashlib.sha256(), 0
        async for block in store.read_range(ref):
            h.update(block)
            n += len(block)
        hashes[hexref] = (h.hexdigest(), n)
        bar.update(1)
    bar.close()
    return hashes


async def _approved_deletions(sessions: Any) -> dict[str, tuple[str, str, bool]]:
    """``segment_id -> (deleted_at, approvers, blob removed)`` from the retention domain's
    ``segment_deletions`` (absent in a deployment without it: nothing is excused)."""
    try:
        async with sessions() as s:
            rows = (await s.execute(text(
                "SELECT segment_id, deleted_at, approved_by, blob_deleted_at "
                "FROM segment_deletions"))).all()
    except DBAPIError:
        return {}
    return {r[0]: (str(r[1]), str(r[2]), r[3] is not None) for r in rows}


async def verify_store(
    sessions: Any,
    store: BlobStore,
    hub_key: Ed25519PublicKey,
    *,
    progress: bool = False,
    threads: int = 2,
) -> Report:
    report = Report("存储校验 / evidence store verification")
    async with sessions() as s:
        devices = {d.device_id: d for d in (await s.execute(select(Device))).scalars()}
        segments = list((await s.execute(
            select(Segment).order_by(Segment.device_id, Segment.seq))).scalars())
    deletions = await _approved_deletions(sessions)
    report.facts["segments"] = len(segments)
    if isinstance(store, LocalBlobStore):
        hashes = await _rehash_local(store, progress, threads)
    else:  # any other BlobStore (S3): stream each referenced object once
        hashes = await _rehash_refs(store, [seg.stored_ref for seg in segments], progress)
        report.add("blob", "store", "objects no segment refers to are not listed on this "
                   "backend; only referenced objects were re-hashed", INFO)
    report.facts["objects re-hashed"] = len(hashes)

    referenced: set[str] = set()
    prev: dict[str, tuple[int, bytes]] = {}
    for seg in segments:
        where = f"segment {seg.segment_id}"
        ref = seg.stored_ref
        manifest = bytes(seg.manifest)
        digest = hashlib.sha256(manifest).digest()
        if digest != bytes(seg.manifest_hash):
            report.add("manifest", f"{where} field manifest_hash",
                       "does not equal the SHA-256 of the stored signed manifest")
        dev = devices.get(seg.device_id)
        m: SegmentManifest | None = None
        try:
            signed = decode_signed(manifest, SegmentManifest)
            if dev is None:
                report.add("manifest", f"{where} field manifest",
                           f"device {seg.device_id} is not enrolled: cannot check the signature")
            else:
                m = signed.verify(Ed25519PublicKey.from_public_bytes(bytes(dev.signing_key)))
                report.ok("manifest")
        except ProtocolError as exc:
            report.add("manifest", f"{where} field manifest", f"rejected: {exc}")
        if m is not None:
            check_manifest_against_row(report, seg, m)
            try:
                receipt = decode_signed(bytes(seg.receipt), Receipt).verify(hub_key)
                if check_receipt(report, where, receipt, m, digest, ref):
                    report.ok("receipt")
            except ProtocolError as exc:
                report.add("receipt", f"{where} field receipt", f"rejected: {exc}")
            p = prev.get(seg.device_id)
            if p is not None:
                if seg.seq == p[0] + 1 and m.prev_hash != p[1]:
                    report.add("chain", f"{where} (device {seg.device_id} seq {seg.seq})",
                               f"prev_hash does not match the manifest of seq {p[0]}: broken")
                elif seg.seq > p[0] + 1:
                    report.add("chain", f"device {seg.device_id} seq {p[0] + 1}..{seg.seq - 1}",
                               "not received (gap)", WARNING)
                else:
                    report.ok("chain")
            prev[seg.device_id] = (seg.seq, digest)
        try:
            hexref = parse_ref(ref)
        except ValueError:
            report.add("blob", f"{where} field stored_ref", f"{ref!r} is not a content reference")
            continue
        referenced.add(hexref)
        if hexref != seg.sha256:
            report.add("blob", f"{where} field stored_ref",
                       f"{ref} differs from the row's sha256 {seg.sha256}")
        if hexref not in hashes:
            d = deletions.get(seg.segment_id)
            if d is not None:
                report.add("blob", f"blob {ref} ({where})", "removed by an approved, audited "
                           f"deletion at {d[0]} (approved by {d[1]})", INFO)
            else:
                report.add("blob", f"blob {ref} ({where})",
                           "missing from the store, and no approved deletion explains it")
            continue
        if seg.segment_id in deletions and deletions[seg.segment_id][2]:
            report.add("blob", f"blob {ref} ({where})",
                       "still present although its deletion was recorded as done", WARNING)
        actual, n = hashes[hexref]
        bad = False
        if actual != hexref:
            bad = True
            report.add("blob", f"blob {ref} ({where})",
                       f"content changed: it now hashes to sha256:{actual}")
        if n != seg.length:
            bad = True
            report.add("blob", f"blob {ref} ({where})", f"{n} bytes, manifest says {seg.length}")
        if not bad:
            report.ok("blob")
    for name, (actual, _n) in hashes.items():
        if name in referenced:
            continue
        if actual != name:
            report.add("blob", f"blob sha256:{name}", f"content changed: hashes to {actual}")
        else:
            report.add("blob", f"blob sha256:{name}", "intact, not referenced by a segment", INFO)
    return report
