"""第二十八条 end to end: a real uploaded clip, linked to a case, archived; the package is
verified offline with lerec-verify (no database, no network) and tampering is caught."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lerec.hub.cases import links_adapter, service
from lerec.hub.cases import users as user_service
from lerec.hub.cases.archiving import archive_package
from lerec.hub.archive.service import is_locked
from lerec.hub.rules import default_rulebook
from lerec.protocol import keys

from support.rig import fake_segment, stored_segments


def test_archived_case_package_verifies_offline_and_tamper_is_caught(rig, tmp_path):
    hub = rig.start_hub()
    store, up = rig.recorder("rec-a")
    store.seal(fake_segment(store, 30_000), officer_id="zf-7")
    with up:
        assert up.wait_idle(30)
    segment = stored_segments(hub)[0]
    rb = default_rulebook()
    sessions = hub.service.sessions

    async def prepare() -> int:
        async with sessions() as s, s.begin():
            handler = await user_service.create_user(
                s, rb, name="wangqiang", role="handler", password="Handler-pass-2024",
                display_name="王强")
            actor = service.Actor(handler.id, handler.name, handler.display_name, "handler",
                                  None, True)
            case = await service.create_case(
                s, rb, actor, title="测试案件", enforcement_type="penalty",
                start_mode="ex_officio", party="某某")
            await links_adapter.link(s, segment.segment_id, case.id, None, "user:wangqiang")
            await service.decide_not_to_start(s, rb, actor, case, "不予立案：证据不足")
            await service.archive_case(s, rb, actor, case)
            return case.id

    case_id = hub.call(prepare())
    result = hub.call(archive_package(
        sessions, hub.service.store, rb, case_id,
        hub_key=keys.ed25519_private(rig.pki.hub_signing_key.read_bytes()),
        archived_by="user:wuhong", archive_root=tmp_path / "archives"))

    async def locked() -> bool:
        async with sessions() as s:
            return await is_locked(s, str(case_id))

    assert hub.call(locked())
    verify = [str(Path(sys.executable).parent / "lerec-verify"), "archive", str(result.path)]
    ok = subprocess.run(verify, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-2000:]
    seg_dir = result.path / "data" / "segments"
    media = [seg_dir / f"{segment.segment_id}.mp4"]
    assert media[0].exists(), "the original signed segment is in the package"
    assert (seg_dir / f"{segment.segment_id}.manifest.cbor").read_bytes() == segment.manifest
    assert (seg_dir / f"{segment.segment_id}.receipt.cbor").read_bytes() == segment.receipt
    data = bytearray(media[0].read_bytes())
    data[len(data) // 2] ^= 1
    media[0].chmod(0o644)
    media[0].write_bytes(bytes(data))
    bad = subprocess.run(verify, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1, bad.stdout[-3000:]
