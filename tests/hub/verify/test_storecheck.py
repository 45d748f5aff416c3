"""lerec-verify store: blobs, manifests, receipts and chains; each tampering is named."""

from __future__ import annotations

import os

import pytest
from lerec.hub.verify.storecheck import verify_store


@pytest.fixture
async def stocked(evidence):
    rows = []
    for i in range(3):
        rows.append(await evidence.segment("rec-a", os.urandom(3000 + i)))
    rows.append(await evidence.segment("rec-b", os.urandom(1000)))
    return evidence, rows


async def _verify(ev):
    return await verify_store(ev.sessions, ev.store, ev.hub_key.public_key())


async def test_clean_store_verifies(stocked):
    ev, _rows = stocked
    report = await _verify(ev)
    assert not report.failed, [f.line() for f in report.findings]
    assert report.passed["blob"] == 4 and report.passed["receipt"] == 4
    assert report.passed["chain"] == 2


async def test_changed_blob_bytes_are_named(stocked):
    ev, rows = stocked
    path = ev.store.path_for(rows[1].stored_ref)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    report = await _verify(ev)
    hits = report.find("blob")
    assert [f.where for f in hits] == [f"blob {rows[1].stored_ref} (segment {rows[1].segment_id})"]
    assert "content changed" in hits[0].what


async def test_deleted_blob_is_named(stocked):
    ev, rows = stocked
    ev.store.path_for(rows[3].stored_ref).unlink()
    report = await _verify(ev)
    hits = report.find("blob")
    assert len(hits) == 1 and rows[3].stored_ref in hits[0].where and "missing" in hits[0].what


@pytest.mark.parametrize("column,value,field", [
    ("seq", "7", "seq"),
    ("sha256", "'" + "0" * 64 + "'", "sha256"),
    ("officer_id", "'someone-else'", "officer_id"),
    ("length", "1", "length"),
])
async def test_changed_segment_row_is_named(stocked, tamper, column, value, field):
    ev, rows = stocked
    await tamper.sql(f"UPDATE segments SET {column} = {value} "
                     f"WHERE segment_id = '{rows[0].segment_id}'")
    report = await _verify(ev)
    assert report.find("segment", f"segment {rows[0].segment_id} field {field}")


async def test_changed_manifest_row_is_named(stocked, tamper):
    ev, rows = stocked
    forged = bytearray(rows[2].manifest)
    i = forged.find(b"officer-1")
    forged[i:i + 9] = b"officer-9"
    await tamper.sql(f"UPDATE segments SET manifest = {tamper.blob(bytes(forged))} "
                     f"WHERE segment_id = '{rows[2].segment_id}'")
    report = await _verify(ev)
    wheres = [f.where for f in report.errors]
    assert f"segment {rows[2].segment_id} field manifest_hash" in wheres
    assert f"segment {rows[2].segment_id} field manifest" in wheres


async def test_changed_receipt_is_named(stocked, tamper):
    ev, rows = stocked
    forged = bytearray(rows[0].receipt)
    forged[-5] ^= 1
    await tamper.sql(f"UPDATE segments SET receipt = {tamper.blob(bytes(forged))} "
                     f"WHERE segment_id = '{rows[0].segment_id}'")
    report = await _verify(ev)
    assert [f.where for f in report.errors] == [f"segment {rows[0].segment_id} field receipt"]


async def test_gap_is_a_warning_not_a_break(evidence):
    await evidence.segment("rec-c", b"a" * 100)
    await evidence.segment("rec-c", b"b" * 100, seq=3)  # seq 1, 2 never arrived
    report = await _verify(evidence)
    assert not report.failed
    gaps = report.find("chain")
    assert gaps and gaps[0].severity == "warning" and "seq 1..2" in gaps[0].where


async def test_blob_removed_by_an_approved_deletion_is_not_an_error(stocked):
    ev, rows = stocked
    seg = rows[1]
    ev.store.path_for(seg.stored_ref).unlink()
    report = await _verify(ev)
    assert report.find("blob", seg.stored_ref)[0].severity == "error"
    # what the retention service writes when a deletion is approved and executed
    from lerec.hub.db.oversight_models import DeletionRequest, SegmentDeletion

    async with ev.sessions() as s, s.begin():
        s.add(DeletionRequest(id=1, segment_id=seg.segment_id, requested_by="user:a",
                              reason="retention over", requested_at=seg.end_at,
                              status="deleted"))
        await s.flush()
        s.add(SegmentDeletion(
            segment_id=seg.segment_id, request_id=1, device_id=seg.device_id, seq=seg.seq,
            officer_id=seg.officer_id, start_at=seg.start_at, end_at=seg.end_at,
            sha256=seg.sha256, stored_ref=seg.stored_ref, prev_hash=seg.prev_hash,
            manifest=seg.manifest, manifest_hash=seg.manifest_hash, why="retention over",
            requested_by="user:a", approved_by="user:b,user:c", deleted_by="user:a",
            deleted_at=seg.end_at, blob_deleted_at=seg.end_at))
    report = await _verify(ev)
    assert not report.failed, [f.line() for f in report.errors]
    assert "approved" in report.find("blob", seg.stored_ref)[0].what
