"""Archiving a case: deadline, numbering, lock, the package, and its offline verification."""

from __future__ import annotations

import datetime as dt
import json
import tarfile
import zipfile

import bagit
import pytest
from lerec.hub.archive import (
    ArchiveError,
    CaseFile,
    Numbering,
    archive_deadline_for,
    build_archive,
    is_locked,
)
from lerec.hub.audit import log as audit
from lerec.hub.verify.archivecheck import verify_archive
from lerec.hub.verify.logcheck import verify_log

NOW = dt.datetime(2026, 6, 20, 3, 0, tzinfo=dt.UTC)


def test_archive_deadline_is_30_days_after_execution_ended():
    assert archive_deadline_for(dt.date(2026, 5, 1)) == dt.date(2026, 5, 31)
    # 2026-05-31 23:30 Beijing is 15:30 UTC the same day; 2026-05-31 16:30 UTC is June 1st
    ended = dt.datetime(2026, 5, 31, 16, 30, tzinfo=dt.UTC)
    assert archive_deadline_for(ended) == dt.date(2026, 7, 1)
    with pytest.raises(ValueError):
        archive_deadline_for(dt.datetime(2026, 5, 1))


def test_numbering_pattern_is_validated():
    assert Numbering("{org}-{year}-{type}-{seq:04d}", "新乡镇").render(2026, "行政处罚", 7) == \
        "新乡镇-2026-行政处罚-0007"
    with pytest.raises(ValueError):
        Numbering("{org}-{year}")
    with pytest.raises(ValueError):
        Numbering("{org}-{seq}-{secret}")


def hub_vkey(evidence) -> str:
    return audit.signer_from_key(evidence.hub_key, audit.DEFAULT_ORIGIN).verifier().encode()


async def test_archive_locks_the_case_and_verifies_offline(archived, engine):
    ev, case, _segs, result = archived
    assert result.archive_no == "新乡镇-2026-行政处罚-0001"
    assert result.report_ok
    async with ev.sessions() as s:
        assert await is_locked(s, case.case_id)
        assert not await is_locked(s, "C-other")
    bag = bagit.Bag(str(result.path))
    assert bag.is_valid()
    assert set(bag.algorithms) >= {"sha256", "sha512"}
    report = verify_archive(result.path, trusted_hub_key=hub_vkey(ev))
    assert not report.failed, [f.line() for f in report.findings]
    assert report.passed["manifest"] == 4 and report.passed["receipt"] == 4
    assert report.passed["chain"] == 1  # seq 0 -> 1; 1 -> 4 is a gap, not a break
    gap = report.find("chain", "seq 2..3")
    assert gap and gap[0].severity == "info" and "not included" in gap[0].what
    entries = (result.path / "data/audit/entries.jsonl").read_text().splitlines()
    idxs = {json.loads(x)["idx"] for x in entries}
    assert len(idxs) == 6  # 4 segment ingests, the record, the link (not the other case)
    assert all('"case:OTHER"' not in x for x in entries)
    four = json.loads((result.path / "data/report/four-properties.json").read_text())
    assert four["ok"] and four["standard"] == "DA/T 70-2018"
    assert {i["property"] for i in four["items"]} == {"authenticity", "integrity",
                                                        "usability", "security"}
    assert any(i["check"] == "media_decodes" and i["result"] == "pass" for i in four["items"])
    assert "行政执法案卷" in (result.path / "data/index.html").read_text()
    # the archive event is in the log, and the log still verifies
    async with ev.sessions() as s:
        kinds = [e.type.value for _, e in await audit.entries(s, subject=f"case:{case.case_id}")]
    assert kinds[-1] == "archive"
    log_report = await verify_log(engine, audit.signer_from_key(
        ev.hub_key, audit.DEFAULT_ORIGIN).verifier())
    assert not log_report.failed


async def test_archiving_twice_or_before_execution_ended_is_refused(archived, tmp_path):
    ev, case, _segs, _result = archived
    with pytest.raises(ArchiveError, match="already archived"):
        await build_archive(ev.sessions, ev.store, case, hub_key=ev.hub_key,
                            archived_by="user:a", archive_root=tmp_path / "archives")
    case2 = CaseFile("C-2", {"case_type": "行政处罚"}, [], execution_ended_at=None)  # type: ignore[arg-type]
    with pytest.raises(ArchiveError, match="not ended"):
        await build_archive(ev.sessions, ev.store, case2, hub_key=ev.hub_key,
                            archived_by="user:a", archive_root=tmp_path / "archives")


async def test_archive_numbers_count_per_scope(tmp_path, evidence):
    nos = []
    for i, ctype in enumerate(["行政处罚", "行政处罚", "行政强制"]):
        case = CaseFile(f"C-{i}", {"case_type": ctype}, [{"id": "R", "kind": "x"}],
                        execution_ended_at=dt.date(2026, 6, 1))
        r = await build_archive(evidence.sessions, evidence.store, case, hub_key=evidence.hub_key,
                                archived_by="user:a", archive_root=tmp_path / "a", now=NOW,
                                numbering=Numbering("XX-{year}-{type}-{seq:03d}", "x"))
        nos.append(r.archive_no)
    assert nos == ["XX-2026-行政处罚-001", "XX-2026-行政处罚-002", "XX-2026-行政强制-001"]


async def test_archive_row_cannot_be_deleted(archived, tamper):
    with pytest.raises(Exception, match="archived"):
        await tamper.sql("DELETE FROM archives")


@pytest.mark.parametrize("fmt", ["tar", "zip"])
async def test_tar_and_zip_packages_verify(archived, tmp_path, fmt):
    ev, _case, _segs, result = archived
    if fmt == "tar":
        out = tmp_path / "pkg.tar"
        with tarfile.open(out, "w") as t:
            t.add(result.path, arcname=result.path.name)
    else:
        out = tmp_path / "pkg.zip"
        with zipfile.ZipFile(out, "w") as z:
            for p in result.path.rglob("*"):
                z.write(p, p.relative_to(result.path.parent))
    report = verify_archive(out, trusted_hub_key=hub_vkey(ev))
    assert not report.failed, [f.line() for f in report.findings]


async def test_missing_media_is_refused_before_anything_is_written(tmp_path, evidence,
                                                                   mp4_bytes, make_case):
    case, segs = await make_case(evidence, mp4_bytes)
    evidence.store.path_for(segs[2].stored_ref).unlink()
    with pytest.raises(ArchiveError, match=segs[2].segment_id):
        await build_archive(evidence.sessions, evidence.store, case, hub_key=evidence.hub_key,
                            archived_by="user:a", archive_root=tmp_path / "archives", now=NOW)
    async with evidence.sessions() as s:
        assert not await is_locked(s, case.case_id)
    assert not (tmp_path / "archives").exists()


async def test_archive_and_store_check_work_with_a_store_without_local_paths(
        tmp_path, evidence, mp4_bytes, make_case, remote_store):
    """As with the S3 backend: media are downloaded once for the package."""
    from lerec.hub.verify.storecheck import verify_store

    case, _segs = await make_case(evidence, mp4_bytes)
    result = await build_archive(evidence.sessions, remote_store, case, hub_key=evidence.hub_key,
                                 archived_by="user:a", archive_root=tmp_path / "archives", now=NOW)
    assert result.report_ok
    assert not verify_archive(result.path).failed
    assert not list((tmp_path / "archives").glob("*.download"))
    report = await verify_store(evidence.sessions, remote_store, evidence.hub_key.public_key())
    assert not report.failed, [f.line() for f in report.errors]
    assert report.passed["blob"] == 4
