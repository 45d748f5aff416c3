"""归档 from the web (第二十八条): the POST locks the case and returns at once; the package is
built by a background job whose phases and bytes the case page (htmx) and /api/v1 show; a
failed build shows its error in Chinese and 重新生成归档包 builds the package; a locked case
without a package (e.g. after a restart) offers the same retry.

The build is held on events the test controls (a monkeypatched ``archive_package``), never on
timing."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import tempfile
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.admin import PASSWORD, admin_app
from support.admin_client import Browser, audit_rows, in_process_client, user_id

from lerec.hub.admin import archiving
from lerec.hub.admin.app import create_app
from lerec.hub.admin.settings import AdminSettings
from lerec.hub.archive.progress import COPY, PHASES
from lerec.hub.db import Device, Segment
from lerec.hub.db.trust_models import Archive
from lerec.hub.db.types import from_ms
from lerec.hub.verify.archivecheck import verify_archive
from lerec.protocol import ClockInfo, Receipt, SegmentManifest, sign_message
from lerec.protocol.keys import raw_public

T0 = 1_780_000_000_000  # 2026-05-28, ms


@pytest.fixture
async def app(database_url, tmp_path):
    """The admin app with the hub's signing key: archiving builds the package."""
    key = Ed25519PrivateKey.generate()
    keyfile = tmp_path / "hub-signing.key"
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    application = create_app(AdminSettings(
        database_url=database_url, storage_dir=tmp_path / "store", migrate=False,
        refresh_minutes=0, signing_key=keyfile, archive_dir=tmp_path / "archives"))
    application.state.test_hub_key = key
    async with application.router.lifespan_context(application):
        yield application


async def signed_segment(app, device_key: Ed25519PrivateKey, device_id: str, seq: int,
                         data: bytes, prev_hash: bytes) -> Segment:
    """A segment as ingest leaves it: device-signed manifest, hub-signed receipt, blob."""
    store = app.state.store
    digest = hashlib.sha256(data).digest()
    start = T0 + seq * 60_000
    m = SegmentManifest(
        device_id=device_id, officer_id="officer_a", segment_id=f"{device_id}-{seq:06d}",
        seq=seq, prev_hash=prev_hash, start_ms=start, end_ms=start + 5000,
        clock=ClockInfo("synced", "hub", 0, 10), media_type="video/mp4", codecs=("avc1",),
        length=len(data), sha256=digest, chunk_size=65536, capture_method="执法记录仪 录像",
        producer="officer_a", object_of_proof="现场检查", note="", important=False,
        prerecord_ms=0, recovered=False, encryption=None)
    wire = sign_message(m, device_key)
    with tempfile.NamedTemporaryFile(dir=store.staging_dir, delete=False) as f:
        f.write(data)
    ref = await store.put_file(Path(f.name), digest.hex(), len(data))
    receipt = sign_message(Receipt(
        hub_id="hub", device_id=device_id, segment_id=m.segment_id, seq=seq, sha256=digest,
        length=len(data), manifest_hash=hashlib.sha256(wire).digest(), received_ms=start + 60_000,
        stored_ref=ref), app.state.test_hub_key)
    row = Segment(
        segment_id=m.segment_id, device_id=device_id, seq=seq, officer_id=m.officer_id,
        start_at=from_ms(m.start_ms), end_at=from_ms(m.end_ms), media_type=m.media_type,
        length=len(data), sha256=digest.hex(), important=False, recovered=False,
        clock_state="synced", clock_offset_ms=0, prev_hash=prev_hash, manifest=wire,
        manifest_hash=hashlib.sha256(wire).digest(), receipt=receipt, stored_ref=ref,
        received_at=from_ms(start + 60_000))
    async with app.state.sessions() as s, s.begin():
        if await s.get(Device, device_id) is None:
            s.add(Device(device_id=device_id, signing_key=raw_public(device_key.public_key()),
                         officer_id="officer_a"))
            await s.flush()
        s.add(row)
    return row


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> bytes:
    from lerec.hub.admin.demo import make_mp4

    return make_mp4(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=1, width=160,
                    height=120).read_bytes()


async def closed_case(app, login, mp4: bytes, pads=(0, 1000, 70_000)) -> tuple[int, list]:
    """A case with signed clips of known sizes linked, closed (不启动), ready to archive."""
    h = await login("handler_a")
    case = await h.create_case(officer_ids=[await user_id(app, "officer_a")])
    key = Ed25519PrivateKey.generate()
    segs, prev = [], bytes(32)
    for seq, pad in enumerate(pads):
        seg = await signed_segment(app, key, f"rec-{case['id']}", seq, mp4 + b"\0" * pad, prev)
        prev = seg.manifest_hash
        r = await h.api("POST", f"/api/v1/cases/{case['id']}/clips",
                        {"segment_id": seg.segment_id})
        assert r.status_code == 201, r.text
        segs.append(seg)
    r = await h.api("POST", f"/api/v1/cases/{case['id']}/not-start", {"note": "证据不足，不予立案"})
    assert r.status_code == 200, r.text
    return case["id"], segs


class Gate:
    """Holds the build before it starts (``go``) and, optionally, in the middle of copying
    (the worker thread waits on ``release`` after the first file; ``in_copy`` is set)."""

    def __init__(self, pause_in_copy: bool) -> None:
        self.loop = asyncio.get_running_loop()
        self.go = asyncio.Event()
        self.in_copy = asyncio.Event()
        self.release = threading.Event()
        self.pause_in_copy = pause_in_copy
        self.seen: list = []
        self.calls = 0


def hold_builds(monkeypatch, pause_in_copy: bool = False) -> Gate:
    gate = Gate(pause_in_copy)
    real = archiving.archive_package

    async def gated(*args, on_progress, **kw):
        gate.calls += 1
        await gate.go.wait()

        def spy(p) -> None:
            on_progress(p)
            gate.seen.append(p)
            if gate.pause_in_copy and p.phase == COPY and p.files_done > 0 \
                    and not gate.release.is_set():
                assert threading.current_thread() is not threading.main_thread()
                gate.loop.call_soon_threadsafe(gate.in_copy.set)
                gate.release.wait(timeout=120)

        return await real(*args, on_progress=spy, **kw)

    monkeypatch.setattr(archiving, "archive_package", gated)
    return gate


async def finished(app, case_id: int) -> None:
    job = app.state.archive_jobs.get(case_id)
    assert job is not None and job.task is not None
    await asyncio.wait_for(asyncio.shield(job.task), 180)


async def archive_row(app, case_id: int) -> Archive | None:
    async with app.state.sessions() as s:
        return await s.get(Archive, str(case_id))


async def test_archive_returns_at_once_and_the_job_shows_phases_bytes_and_the_result(
        app, login, mp4, monkeypatch):
    cid, segs = await closed_case(app, login, mp4)
    gate = hold_builds(monkeypatch, pause_in_copy=True)
    arch = await login("archivist")
    r = await arch.post(f"/cases/{cid}/archive")
    # the request is answered while the build has not even started
    assert r.status_code == 303 and r.headers["location"] == f"/cases/{cid}#archive-status"
    assert gate.calls == 1 and not gate.go.is_set()
    st = (await arch.get(f"/api/v1/cases/{cid}/archive")).json()
    assert st["state"] == "running" and st["state_zh"] == "正在生成归档包"
    assert st["phase"] == "collect" and st["phase_zh"] == "收集记录" and st["percent"] == 0
    assert st["archived_at"] and st["archive_no"] is None
    page = await arch.get(f"/cases/{cid}")
    assert "归档进度" in page.text and 'hx-trigger="every 1s"' in page.text
    assert "收集记录" in page.text and "<progress" in page.text
    assert await archive_row(app, cid) is None  # locked, package not yet there
    # one job per case: a retry while it runs is refused
    r = await arch.post(f"/cases/{cid}/archive/retry")
    assert r.status_code == 409 and "正在生成" in r.text

    gate.go.set()
    await asyncio.wait_for(gate.in_copy.wait(), 120)
    total = sum(s.length for s in segs)
    st = (await arch.get(f"/api/v1/cases/{cid}/archive")).json()
    assert st["state"] == "running" and st["phase"] == "copy"
    assert st["phase_zh"] == "复制音像记录"
    assert st["bytes_total"] == total and st["files_total"] == 3
    assert 0 < st["bytes_done"] < total and 0 < st["files_done"] < 3
    assert 5 <= st["percent"] < 90
    assert [p["state"] for p in st["phases"]] == ["done", "current", "todo", "todo", "todo",
                                                    "todo"]
    frag = await arch.get(f"/cases/{cid}/archive/status", headers={"HX-Request": "true"})
    assert frag.status_code == 200 and "<html" not in frag.text
    assert 'id="archive-status"' in frag.text and 'hx-trigger="every 1s"' in frag.text
    assert "复制音像记录" in frag.text and f'value="{st["percent"]}"' in frag.text

    gate.release.set()
    await finished(app, cid)
    row = await archive_row(app, cid)
    assert row is not None
    st = (await arch.get(f"/api/v1/cases/{cid}/archive")).json()
    assert st["state"] == "done" and st["percent"] == 100 and st["phase_zh"] == "完成"
    assert st["archive_no"] == row.archive_no and st["package_ref"] == row.package_ref
    assert st["package_sha256"] == row.package_sha256 and st["error"] is None
    assert st["bytes_done"] == st["bytes_total"] == total
    path = Path(st["package_path"])
    assert path.is_dir() and path.parent == app.state.settings.archive_dir
    hub_vkey = (path / "data/keys/hub.vkey").read_text().strip()
    assert not verify_archive(path, trusted_hub_key=hub_vkey).failed
    # every phase, in order
    order = list(dict.fromkeys(p.phase for p in gate.seen))
    assert order == list(PHASES)
    # the page stops polling and names the archive number and the place
    frag = await arch.get(f"/cases/{cid}/archive/status")
    assert "hx-trigger" not in frag.text and row.archive_no in frag.text
    assert str(path) in frag.text and "归档包已生成" in frag.text
    # readers see it too; the package is in the audit log under the archivist
    handler = await login("handler_a")
    assert (await handler.get(f"/api/v1/cases/{cid}/archive")).json()["state"] == "done"
    last = (await audit_rows(app, "archive"))[-1]
    assert last[2] == "user:archivist" and last[4]["package_sha256"] == row.package_sha256


async def test_a_failed_build_shows_the_error_and_a_retry_builds_the_package(
        app, login, client_factory, mp4):
    cid, segs = await closed_case(app, login, mp4)
    blob = app.state.store.path_for(segs[1].stored_ref)
    kept = blob.read_bytes()
    blob.unlink()  # the store lost one clip
    arch = await login("archivist")
    r = await arch.post(f"/cases/{cid}/archive")
    assert r.status_code == 303
    await finished(app, cid)
    st = (await arch.get(f"/api/v1/cases/{cid}/archive")).json()
    assert st["state"] == "failed" and st["can_retry"] and st["phase"] == "collect"
    assert "存储文件缺失" in st["error"] and segs[1].segment_id in st["error"]
    assert "lerec-verify store" in st["error"]
    assert await archive_row(app, cid) is None
    page = await arch.get(f"/cases/{cid}")
    assert "归档包生成失败" in page.text and "存储文件缺失" in page.text
    assert f'action="/cases/{cid}/archive/retry"' in page.text and "重新生成归档包" in page.text
    assert 'hx-trigger="every 1s"' not in page.text
    failed = [row for row in await audit_rows(app, "archive") if row[4].get("outcome") == "failed"]
    assert len(failed) == 1 and failed[0][2] == "user:archivist"
    assert f"case:{cid}" in failed[0][3] and "存储文件缺失" in failed[0][4]["error"]
    # a reader sees the error but no button; only case.archive may retry, with the CSRF token
    handler = await login("handler_a")
    hp = await handler.get(f"/cases/{cid}")
    assert "归档包生成失败" in hp.text and "/archive/retry" not in hp.text
    assert (await handler.post(f"/cases/{cid}/archive/retry")).status_code == 403
    assert (await arch.post(f"/cases/{cid}/archive/retry", csrf=False)).status_code == 403
    assert app.state.archive_jobs.get(cid).attempt == 1

    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(kept)  # restored from backup
    r = await arch.post(f"/cases/{cid}/archive/retry")
    assert r.status_code == 303 and r.headers["location"] == f"/cases/{cid}#archive-status"
    await finished(app, cid)
    st = (await arch.get(f"/api/v1/cases/{cid}/archive")).json()
    assert st["state"] == "done" and st["attempt"] == 2 and st["archive_no"]
    assert Path(st["package_path"]).is_dir()
    rows = [row for row in await audit_rows(app, "archive") if f"case:{cid}" in row[3]]
    kinds = [row[4].get("outcome") or row[4].get("action") or
             ("package" if "package_sha256" in row[4] else "lock") for row in rows]
    assert kinds == ["lock", "failed", "rebuild_package", "package"]
    assert all(row[2] == "user:archivist" for row in rows)
    # nothing left to retry
    r = await arch.api("POST", f"/api/v1/cases/{cid}/archive/retry")
    assert r.status_code == 409 and "已生成" in r.json()["detail"]


async def test_a_locked_case_without_its_package_offers_a_retry_after_a_restart(
        app, login, mp4, monkeypatch):
    cid, _segs = await closed_case(app, login, mp4, pads=(0,))
    arch = await login("archivist")
    # the admin stopped right after the lock: no job, no package
    async def no_job(ctx, case):
        return None

    monkeypatch.setattr(archiving, "start_build", no_job)
    r = await arch.api("POST", f"/api/v1/cases/{cid}/archive")
    assert r.status_code == 200 and r.json()["archived_at"]
    assert r.json()["archive"]["state"] == "missing"
    monkeypatch.undo()
    st = (await arch.get(f"/api/v1/cases/{cid}/archive")).json()
    assert st["state"] == "missing" and st["state_zh"] == "归档包未生成" and st["can_retry"]
    page = await arch.get(f"/cases/{cid}")
    assert "归档包未生成" in page.text and "重新生成归档包" in page.text
    r = await arch.api("POST", f"/api/v1/cases/{cid}/archive/retry")
    assert r.status_code == 202 and r.json()["state"] in ("running", "done")
    await finished(app, cid)
    st = (await arch.get(f"/api/v1/cases/{cid}/archive")).json()
    assert st["state"] == "done" and (await archive_row(app, cid)).archive_no == st["archive_no"]
    # a case that is not archived has no package job
    h = await login("handler_a")
    other = await h.create_case()
    st = (await arch.get(f"/api/v1/cases/{other['id']}/archive")).json()
    assert st["state"] == "not_archived"
    r = await arch.api("POST", f"/api/v1/cases/{other['id']}/archive/retry")
    assert r.status_code == 409 and "尚未归档" in r.json()["detail"]


async def test_stopping_the_service_interrupts_a_build_cleanly(app, login, mp4, monkeypatch):
    cid, _segs = await closed_case(app, login, mp4)
    gate = hold_builds(monkeypatch, pause_in_copy=True)
    arch = await login("archivist")
    assert (await arch.post(f"/cases/{cid}/archive")).status_code == 303
    gate.go.set()
    await asyncio.wait_for(gate.in_copy.wait(), 120)
    stopping = asyncio.create_task(app.state.archive_jobs.shutdown())
    await asyncio.sleep(0)  # (lets shutdown flag the job before the worker resumes)
    gate.release.set()
    await asyncio.wait_for(stopping, 60)
    job = app.state.archive_jobs.get(cid)
    assert job.state == "failed" and "中断" in job.error and job.failed_phase == "copy"
    assert await archive_row(app, cid) is None
    root = app.state.settings.archive_dir
    assert not [p for p in root.iterdir() if p.name.endswith((".partial", ".download"))]


async def test_without_the_hub_key_the_case_is_only_locked(database_url, tmp_path, mp4):
    plain = admin_app(database_url, tmp_path / "plain-store")
    async with plain.router.lifespan_context(plain):
        h = Browser(in_process_client(plain))
        await h.login("handler_a", PASSWORD)
        case = await h.create_case()
        r = await h.api("POST", f"/api/v1/cases/{case['id']}/not-start", {"note": "不予立案"})
        assert r.status_code == 200
        a = Browser(in_process_client(plain))
        await a.login("archivist", PASSWORD)
        r = await a.post(f"/cases/{case['id']}/archive")
        assert r.status_code == 303
        assert plain.state.archive_jobs.get(case["id"]) is None
        st = (await a.get(f"/api/v1/cases/{case['id']}/archive")).json()
        assert st["state"] == "unconfigured" and not st["can_retry"]
        assert "未配置" in (await a.get(f"/cases/{case['id']}")).text
        r = await a.api("POST", f"/api/v1/cases/{case['id']}/archive/retry")
        assert r.status_code == 409 and "signing_key" in r.json()["detail"]


def test_errors_are_explained_in_chinese():
    from lerec.hub.archive import ArchiveError, BuildAborted

    full = OSError(errno.ENOSPC, "No space left on device", "/srv/archives/x.partial/data")
    assert archiving.error_zh(full).startswith("磁盘空间不足")
    assert "/srv/archives/x.partial/data" in archiving.error_zh(full)
    assert "权限" in archiving.error_zh(PermissionError(errno.EACCES, "denied", "/srv/a"))
    assert "中断" in archiving.error_zh(BuildAborted())
    assert archiving.error_zh(ArchiveError("1", "x", "执行尚未终结")) == "执行尚未终结"
    assert "重新生成归档包" in archiving.error_zh(RuntimeError("boom"))
