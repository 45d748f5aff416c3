"""Progress of building an archive package: every phase in order, and the media bytes copied
and hashed against a total that is the sum of the known segment and attachment sizes — with
a local store and with one without local files (download and hash in one pass); a callback
that raises stops the build and leaves nothing behind."""

from __future__ import annotations

import datetime as dt

import pytest

from lerec.hub.archive import (
    PHASES,
    ArchiveError,
    Attachment,
    BuildAborted,
    build_archive,
    is_locked,
)
from lerec.hub.archive.progress import COPY, Progress, Tracker
from lerec.hub.audit import log as audit
from lerec.hub.verify.archivecheck import verify_archive

NOW = dt.datetime(2026, 6, 20, 3, 0, tzinfo=dt.UTC)


def vkey(evidence) -> str:
    return audit.signer_from_key(evidence.hub_key, audit.DEFAULT_ORIGIN).verifier().encode()


def check_run(seen: list[Progress], total: int, files: int, file_reports: int) -> None:
    assert seen[0].phase == "collect"
    assert list(dict.fromkeys(p.phase for p in seen)) == list(PHASES)
    assert seen[-1].phase == "done" and seen[-1].percent == 100
    with_totals = [p for p in seen if p.bytes_total]
    assert with_totals and all(p.bytes_total == total for p in with_totals)
    assert all(p.files_total == files for p in with_totals)
    done = [p.bytes_done for p in seen]
    assert done == sorted(done), "bytes only go forward"
    assert seen[-1].bytes_done == total and seen[-1].files_done == files
    percents = [p.percent for p in seen]
    assert percents == sorted(percents) and percents[0] == 0
    copying = [p for p in seen if p.phase == COPY]
    assert copying[0].bytes_done == 0 and copying[-1].bytes_done == total
    assert len({p.files_done for p in copying}) == file_reports + 1  # at every file's end


async def test_progress_totals_are_the_segment_and_attachment_sizes(
        tmp_path, evidence, mp4_bytes, make_case):
    case, segs = await make_case(evidence, mp4_bytes)
    sizes = [len(mp4_bytes), len(mp4_bytes) + 1, len(mp4_bytes) + 2, len(mp4_bytes) + 1]
    assert [s.length for s in segs] == sizes
    notice = len("处罚决定书".encode())
    seen: list[Progress] = []
    result = await build_archive(evidence.sessions, evidence.store, case,
                                 hub_key=evidence.hub_key, archived_by="user:archivist",
                                 archive_root=tmp_path / "archives", now=NOW,
                                 on_progress=seen.append)
    check_run(seen, sum(sizes) + notice, 5, 5)
    in_package = sum(p.stat().st_size for p in (result.path / "data/segments").glob("*.mp4"))
    assert seen[-1].bytes_total == in_package + notice
    assert not verify_archive(result.path, trusted_hub_key=vkey(evidence)).failed


async def test_a_store_without_local_files_is_downloaded_and_hashed_in_one_pass(
        tmp_path, evidence, mp4_bytes, make_case, remote_store, monkeypatch):
    from lerec.hub.verify import archivecheck

    case, segs = await make_case(evidence, mp4_bytes)
    # the same blob twice in the package: as a clip and as an attachment
    case.attachments.append(Attachment("copy.mp4", "video/mp4", stored_ref=segs[0].stored_ref))
    hashed: list[str] = []
    real = archivecheck._hash_one
    monkeypatch.setattr(archivecheck, "_hash_one",
                        lambda path, algs, bar: hashed.append(path.name) or real(path, algs, bar))
    seen: list[Progress] = []
    result = await build_archive(evidence.sessions, remote_store, case,
                                 hub_key=evidence.hub_key, archived_by="user:archivist",
                                 archive_root=tmp_path / "archives", now=NOW,
                                 on_progress=seen.append)
    total = sum(s.length for s in segs) + len("处罚决定书".encode()) + segs[0].length
    check_run(seen, total, 6, 5)  # (the blob used twice is downloaded once)
    assert not [n for n in hashed if n.endswith(".mp4")], "downloaded media are not read again"
    report = verify_archive(result.path, trusted_hub_key=vkey(evidence))
    assert not report.failed, [f.line() for f in report.findings]
    assert not list((tmp_path / "archives").glob("*.download"))


async def test_a_callback_that_raises_stops_the_build_and_leaves_nothing(
        tmp_path, evidence, mp4_bytes, make_case):
    case, _segs = await make_case(evidence, mp4_bytes)

    def stop_at_check(p: Progress) -> None:
        if p.phase == "check":
            raise BuildAborted("stop")

    root = tmp_path / "archives"
    with pytest.raises(BuildAborted):
        await build_archive(evidence.sessions, evidence.store, case, hub_key=evidence.hub_key,
                            archived_by="user:a", archive_root=root, now=NOW,
                            on_progress=stop_at_check)
    assert list(root.iterdir()) == []  # no package, no .partial
    async with evidence.sessions() as s:
        assert not await is_locked(s, case.case_id)
    result = await build_archive(evidence.sessions, evidence.store, case,
                                 hub_key=evidence.hub_key, archived_by="user:a",
                                 archive_root=root, now=NOW)
    # the aborted build's number stays unused (a gap, never a duplicate)
    assert result.archive_no.endswith("0002")


async def test_a_missing_attachment_blob_is_refused_before_anything_is_written(
        tmp_path, evidence, mp4_bytes, make_case):
    case, segs = await make_case(evidence, mp4_bytes)
    case.attachments.append(Attachment("scan.mp4", "video/mp4", stored_ref=segs[1].stored_ref))
    evidence.store.path_for(segs[1].stored_ref).unlink()
    case.segments = [x for x in case.segments if x.segment_id != segs[1].segment_id]
    with pytest.raises(ArchiveError, match="scan.mp4") as err:
        await build_archive(evidence.sessions, evidence.store, case, hub_key=evidence.hub_key,
                            archived_by="user:a", archive_root=tmp_path / "archives", now=NOW)
    assert "附件「scan.mp4」的存储文件缺失" in err.value.reason_zh
    assert not (tmp_path / "archives").exists()


def test_tracker_is_a_progress_bar_and_percent_follows_the_bytes():
    seen: list[Progress] = []
    t = Tracker(seen.append)
    t.phase("collect")
    t.totals(4 << 20, 2)
    t.phase("copy")
    t.update(1 << 20)  # a tqdm-like bar: archivecheck._hash_one calls update(n)
    t.update(1 << 20)
    t.file_done()
    assert seen[-1].bytes_done == 2 << 20 and seen[-1].percent == 5 + 85 // 2
    assert seen[-1].to_json()["phase_zh"] == "复制音像记录"
    with pytest.raises(ValueError):
        t.phase("nope")
    assert Progress("copy").percent == 5 and Progress("done").percent == 100
