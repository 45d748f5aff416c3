"""The case service without the web layer: numbering, which kinds apply, forms, snapshots."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from lerec.hub.cases import forms, service
from lerec.hub.cases.errors import InvalidInput, InvalidTransition
from lerec.hub.cases.snapshot import build_snapshot, media_kind
from lerec.hub.db import make_engine, sessionmaker
from lerec.hub.db.cases_models import Case, CaseRecordVersion, User
from lerec.hub.rules import default_rulebook, evaluate
from sqlalchemy import select

RB = default_rulebook()


@pytest.fixture
async def sessions(database_url):
    engine = make_engine(database_url)
    yield sessionmaker(engine)
    await engine.dispose()


async def actor(s, name: str) -> service.Actor:
    u = (await s.execute(select(User).where(User.name == name))).scalar_one()
    return service.Actor(u.id, u.name, u.display_name, u.role, u.officer_id,
                         u.role not in ("officer", "handler"))


async def test_case_number_and_first_stage(sessions):
    async with sessions() as s, s.begin():
        h = await actor(s, "handler_a")
        case = await service.create_case(s, RB, h, title="占道经营", enforcement_type="penalty",
                                         start_mode="ex_officio")
        assert case.case_no == f"新乡执〔{dt.datetime.now(service.CHINA).year}〕{case.id:05d}号"
        assert case.stage == "start" and case.handler_id == h.user_id
    with pytest.raises(InvalidInput, match="启动方式"):
        async with sessions() as s, s.begin():
            await service.create_case(s, RB, h, title="x", enforcement_type="penalty",
                                      start_mode="whim")


@pytest.mark.parametrize("mode,allowed,refused", [
    ("application", "application", "ex_officio_start"),
    ("ex_officio", "ex_officio_start", "complaint"),
    ("complaint", "complaint", "application"),
])
async def test_start_records_follow_the_start_mode(sessions, mode, allowed, refused):
    async with sessions() as s, s.begin():
        h = await actor(s, "handler_a")
        case = await service.create_case(s, RB, h, title="x", enforcement_type="penalty",
                                         start_mode=mode)
        kinds = service.addable_kinds(RB, case)
        assert allowed in kinds and refused not in kinds
        assert all(RB.kind(k).stage == "start" for k in kinds)
        assert "第" in (service.kind_applies(RB, case, refused) or "")


async def test_change_keeps_versions_and_invalid_stage_moves_are_refused(sessions):
    fields = {"reason": "r", "case_source": "s", "party_info": "p", "case_facts": "f",
              "handler_opinion": "h", "unit_opinion": "u", "head_opinion": "a",
              "recorded_at": "2026-11-20T09:00:00+08:00"}
    async with sessions() as s, s.begin():
        h = await actor(s, "handler_a")
        case = await service.create_case(s, RB, h, title="x", enforcement_type="penalty",
                                         start_mode="ex_officio")
        rec = await service.add_record(s, RB, h, case, "ex_officio_start", fields)
        await service.change_record(s, RB, h, case, rec, {**fields, "case_facts": "g"}, "更正")
        with pytest.raises(InvalidInput, match="没有变化"):
            await service.change_record(s, RB, h, case, rec, {**fields, "case_facts": "g"}, "x")
        with pytest.raises(InvalidTransition):
            await service.advance_stage(s, RB, h, case, "decision")
        versions = list((await s.execute(select(CaseRecordVersion).where(
            CaseRecordVersion.record_id == rec.id).order_by(CaseRecordVersion.version))).scalars())
        assert [json.loads(v.fields)["case_facts"] for v in versions] == ["f", "g"]


async def test_snapshot_carries_facts_and_not_started(sessions):
    async with sessions() as s, s.begin():
        h = await actor(s, "handler_a")
        case = await service.create_case(s, RB, h, title="x", enforcement_type="penalty",
                                         start_mode="ex_officio", facts=["hearing_held"])
        await service.decide_not_to_start(s, RB, h, case, "不属于违法行为")
        snap = await build_snapshot(s, RB, case)
        assert snap.not_started and snap.facts == frozenset({"hearing_held"})
        kinds = {f.kind_id for f in evaluate(snap, RB, dt.datetime.now(dt.UTC))}
        assert "not_started_notice" in kinds  # 第七条第二款
        row = await s.get(Case, case.id)
        assert row is not None and row.finding_errors >= 1


def test_form_values_become_typed_fields():
    kind = RB.kind("inquiry_party")

    class Form(dict):
        def getlist(self, key):
            v = self.get(key)
            return [] if v is None else [v]

    out = forms.fields_from_form(kind, Form({"f_started_at": "2026-11-20T09:30",
                                             "f_place": "  办公室 ", "f_signed": "on",
                                             "f_transcript": "a\r\nb"}))
    assert out == {"started_at": "2026-11-20T09:30:00+08:00", "place": "办公室", "signed": True,
                   "transcript": "a\nb"}
    assert forms.input_value("datetime", "2026-11-20T01:30:00+00:00") == "2026-11-20T09:30"
    assert forms.display_value("choice", "premises", RB.kind("site_inspection")
                               .fields["target"].options) == "场所"
    assert forms.display_value("bool", False) == "否"


def test_media_kinds():
    assert [media_kind(t) for t in ("video/mp4", "audio/mp4", "image/jpeg", "")] == [
        "video", "audio", "photo", "video"]
