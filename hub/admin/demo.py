"""``lerec-admin seed-demo``: a few realistic users, recorders, clips and cases for a demo.

Also home of :func:`make_mp4` (a real small H.264 MP4 made with PyAV) and
:func:`store_segment` (a stored segment row + blob, as the ingest daemon would leave it),
which the browser tests and the benchmark use too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from fractions import Fraction
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..cases import service
from ..cases import users as user_service
from ..db.cases_models import User
from ..db.models import Device, Segment
from ..db.types import utcnow
from ..rules import Rulebook

CHINA = dt.timezone(dt.timedelta(hours=8))

DEMO_USERS = [
    ("zhangwei", "officer", "张伟"),
    ("lina", "officer", "李娜"),
    ("wangqiang", "handler", "王强"),
    ("liuyang", "handler", "刘洋"),
    ("chenjie", "unit_head", "陈杰（综合行政执法办公室主任）"),
    ("yangmin", "legal_reviewer", "杨敏"),
    ("zhoujun", "agency_head", "周军（镇长）"),
    ("wuhong", "archivist", "吴红（党政办）"),
    ("zhengli", "auditor", "郑丽"),
]


def make_mp4(path: Path, seconds: float = 3.0, width: int = 320, height: int = 240,
             fps: int = 15, label: int = 0) -> Path:
    """A real H.264 MP4 (faststart, yuv420p) a browser can play: moving bars (PyAV only)."""
    import av

    path = Path(path)
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame(width, height, "yuv420p")
            for p, plane in enumerate(frame.planes):
                h = height if p == 0 else height // 2
                row = bytes(((x * (p + 1) + i * 6 + label * 40) % 256)
                            for x in range(plane.line_size))
                plane.update(row * h)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


async def ensure_device(session: AsyncSession, device_id: str, officer_id: str,
                        label: str = "") -> Device:
    dev = await session.get(Device, device_id)
    if dev is None:
        dev = Device(device_id=device_id, signing_key=secrets.token_bytes(32),
                     label=label, officer_id=officer_id, enrolled_at=utcnow(),
                     last_seen_at=utcnow(), last_seq_reported=None)
        session.add(dev)
        await session.flush()
    return dev


async def store_segment(session: AsyncSession, store: Any, path: Path, *, device_id: str,
                        officer_id: str, start: dt.datetime, seconds: float, seq: int | None = None,
                        media_type: str = "video/mp4") -> Segment:
    """Put a media file into the blob store and add its Segment row (a demo/test stand-in for
    what the ingest daemon stores after verifying a signed upload)."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    staged = store.staging_dir / f"demo-{secrets.token_hex(6)}"
    staged.write_bytes(data)
    ref = await store.put_file(staged, digest, len(data))
    if seq is None:
        last = (await session.execute(select(Segment.seq).where(Segment.device_id == device_id)
                                      .order_by(Segment.seq.desc()).limit(1))).scalar()
        seq = 0 if last is None else last + 1
    manifest = f"demo:{device_id}:{seq}:{digest}".encode()
    seg = Segment(
        segment_id=hashlib.sha256(manifest).hexdigest()[:32], device_id=device_id, seq=seq,
        officer_id=officer_id, start_at=start, end_at=start + dt.timedelta(seconds=seconds),
        media_type=media_type, length=len(data), sha256=digest, important=False,
        recovered=False, clock_state="synced", clock_offset_ms=0, prev_hash=b"\0" * 32,
        manifest=manifest, manifest_hash=hashlib.sha256(manifest).digest(), receipt=b"demo",
        stored_ref=ref, received_at=start + dt.timedelta(seconds=seconds, minutes=30),
    )
    session.add(seg)
    await session.flush()
    return seg


def _t(days_ago: int, hour: int, minute: int = 0) -> dt.datetime:
    day = dt.datetime.now(CHINA).date() - dt.timedelta(days=days_ago)
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=CHINA)


async def seed_demo(sessions: Any, store: Any, rb: Rulebook, password: str,
                    workdir: Path) -> list[str]:
    """Create the demo; returns lines to print. Idempotent for users (skips existing)."""
    lines: list[str] = []
    async with sessions() as s, s.begin():
        users: dict[str, User] = {}
        for name, role, display in DEMO_USERS:
            u = await user_service.by_name(s, name)
            if u is None:
                u = await user_service.create_user(s, rb, name=name, role=role,
                                                   password=password, display_name=display,
                                                   actor="hub")
                lines.append(f"用户 {name}（{rb.roles[role].name}）")
            users[name] = u

        def actor(name: str) -> service.Actor:
            u = users[name]
            return service.Actor(u.id, u.name, u.display_name, u.role, u.officer_id, False)

        await ensure_device(s, "rec-001", "zhangwei", "1号执法记录仪")
        await ensure_device(s, "rec-002", "lina", "2号执法记录仪")
        inspected = _t(1, 9, 30)
        clip_file = make_mp4(workdir / "demo-clip.mp4", seconds=4)
        await store_segment(s, store, clip_file, device_id="rec-001", officer_id="zhangwei",
                            start=inspected + dt.timedelta(minutes=2), seconds=4)
        clip2 = make_mp4(workdir / "demo-clip2.mp4", seconds=3, label=3)
        await store_segment(s, store, clip2, device_id="rec-002", officer_id="lina",
                            start=_t(0, 10, 15), seconds=3)

        h = actor("wangqiang")
        # 1. 依职权：占道经营，现场检查（自动关联录像）
        c1 = await service.create_case(
            s, rb, h, title="新乡镇场镇某餐馆占道经营案", enforcement_type="penalty",
            start_mode="ex_officio", party="新乡镇某某餐馆（经营者：刘某）",
            officer_ids=[users["zhangwei"].id, users["lina"].id])
        await service.add_record(s, rb, h, c1, "ex_officio_start", {
            "reason": "日常巡查发现该餐馆在门前人行道摆放桌椅经营", "case_source": "日常巡查",
            "party_info": "新乡镇某某餐馆，经营者刘某，身份证号略", "case_facts":
            "该餐馆于晚间在门前人行道摆放桌椅约 12 张，占用人行道约 30 平方米",
            "handler_opinion": "建议立案调查", "unit_opinion": "同意立案",
            "head_opinion": "同意", "recorded_at": _t(2, 16).isoformat()})
        await service.advance_stage(s, rb, h, c1, "investigation", "立案审批完成")
        await service.add_record(s, rb, actor("zhangwei"), c1, "site_inspection", {
            "inspected_at": inspected.isoformat(), "place": "新乡镇场镇滨江路 18 号门前",
            "target": "premises", "inspectors": "张伟、李娜", "party_or_witness": "刘某",
            "findings": "现场有桌椅 12 张摆放于人行道，当事人在场，已拍照录像"})
        await service.add_record(s, rb, h, c1, "inquiry_party", {
            "started_at": _t(1, 14).isoformat(), "place": "新乡镇综合行政执法办公室",
            "interviewer": "王强", "recorder": "李娜", "interviewee": "刘某",
            "transcript": "问：你是否在门前人行道摆放桌椅经营？答：是的，晚上客人多。",
            "signed": True})
        lines.append(f"案件 {c1.case_no} {c1.title}")
        # 2. 投诉举报：实名投诉，经审查不启动
        c2 = await service.create_case(
            s, rb, actor("liuyang"), title="关于某小区夜间施工噪声的实名投诉",
            enforcement_type="penalty", start_mode="complaint", party="某建筑公司",
            facts=["real_name_complaint"])
        await service.add_record(s, rb, actor("liuyang"), c2, "complaint", {
            "complainant_info": "李某，联系电话略（实名）", "content": "反映某小区工地夜间施工噪声扰民",
            "recorder": "刘洋", "handling": "经核实该工地已取得夜间施工许可，不予立案",
            "received_at": _t(5, 11).isoformat()})
        await service.decide_not_to_start(s, rb, actor("liuyang"), c2,
                                          "该工地已依法取得夜间施工许可，不属于违法行为")
        lines.append(f"案件 {c2.case_no} {c2.title}")
        # 3. 依申请：行政许可
        c3 = await service.create_case(
            s, rb, h, title="张某临时占用道路堆放建材许可申请", enforcement_type="licensing",
            start_mode="application", party="张某")
        await service.add_record(s, rb, h, c3, "application", {
            "applicant": "张某", "application_form": "written", "applied_at":
            _t(3, 9).isoformat(), "content": "申请临时占用新乡路 20 米用于堆放建材 15 日",
            "acceptance": "accepted", "acceptance_reason": "材料齐全，符合受理条件",
            "supplement": "当场补正施工平面图一份", "recorded_at": _t(3, 9, 40).isoformat()})
        await service.advance_stage(s, rb, h, c3, "investigation")
        await service.advance_stage(s, rb, h, c3, "decision")
        lines.append(f"案件 {c3.case_no} {c3.title}")
        # 4. 行政强制：违法建设
        c4 = await service.create_case(
            s, rb, actor("liuyang"), title="某村民违法搭建彩钢棚案", enforcement_type="coercion",
            start_mode="ex_officio", party="陈某", officer_ids=[users["lina"].id],
            facts=["compulsory_execution"])
        lines.append(f"案件 {c4.case_no} {c4.title}")
    return lines
