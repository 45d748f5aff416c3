"""The default rulebook loads, encodes the regulation, and covers every article."""

from __future__ import annotations

import importlib
from datetime import date

import pytest
from lerec.hub.rules import (
    Rulebook,
    RulebookError,
    UnknownEntryError,
    article_label,
    default_rulebook,
)


def test_default_rulebook_loads_and_is_cached(rb: Rulebook) -> None:
    assert default_rulebook() is rb
    assert rb.metadata.title == "重庆市万州区新乡镇行政执法全过程记录制度"
    assert rb.metadata.document_number == "新乡府发〔2024〕52号"
    assert rb.metadata.effective_date == date(2024, 10, 15)
    assert sorted(rb.articles()) == list(range(1, 31))
    assert rb.article(11).text.startswith("检查当事人的人身、场所、物品")


def test_enforcement_types_methods_stages(rb: Rulebook) -> None:
    assert [t.name for t in rb.enforcement_types.values()] == [
        "行政许可", "行政处罚", "行政强制", "行政确认", "行政征收"]
    assert rb.stage_order() == ["start", "investigation", "decision", "service_execution", "archive"]
    assert [s.name for s in rb.stages.values()] == ["程序启动", "调查取证", "审查决定", "送达执行", "归档管理"]
    av = rb.record_methods["audiovisual"]
    assert av.audiovisual and list(av.kinds.values()) == ["照片", "录音", "录像", "视频监控"]
    assert rb.record_methods["written"].name == "文字记录"
    assert {m.id: m.article for m in rb.start_modes.values()} == {
        "application": 6, "ex_officio": 7, "complaint": 8}
    assert rb.not_start.articles == (7, 8)


def test_roles(rb: Rulebook) -> None:
    assert {r.id: r.name for r in rb.roles.values()} == {
        "officer": "执法人员", "handler": "承办人", "unit_head": "承办机构负责人",
        "legal_reviewer": "法制审核人员", "agency_head": "行政机关负责人", "archivist": "党政办",
        "auditor": "审计", "party": "当事人"}
    assert rb.access.approver_role == "agency_head"
    assert set(rb.access.confidentiality_classes.values()) >= {"国家秘密", "商业秘密", "个人隐私"}
    assert rb.role(rb.archive.archivist_role).name == "党政办"


def test_deadlines_and_electronic_records(rb: Rulebook) -> None:
    up, ar = rb.deadlines.upload, rb.deadlines.archive
    assert (up.article, up.amount, up.unit) == (26, 2, "working_days")
    assert (ar.article, ar.amount, ar.unit) == (28, 30, "calendar_days")
    assert ar.note and "特殊规定" in ar.note
    assert list(rb.electronic_records.metadata.values()) == ["制作方法", "制作时间", "制作人", "证明对象"]
    assert rb.electronic_records.transcript_media == ("audio",)


def test_record_kinds_cover_articles_6_to_25(rb: Rulebook) -> None:
    by_article: dict[int, list[str]] = {}
    for k in [*rb.record_kinds.values(), *rb.kind_groups.values()]:
        by_article.setdefault(k.article, []).append(k.id)
    # 第十一条、第十二条 are not record kinds: they are the AV rules and their checklist.
    assert sorted(by_article) == [n for n in range(6, 26) if n not in (11, 12)]
    items = sorted(k.item for k in rb.record_kinds.values() if k.article == 9)
    assert items == [1, 2, 3, 4, 5, 6, 7, 8]  # 第九条（一）..（八）, one kind each


@pytest.mark.parametrize(
    ("kind_id", "labels"),
    [
        ("ex_officio_start", ["启动原因", "案件来源", "当事人基本情况", "基本案情", "承办人意见",
                              "承办机构意见", "行政机关负责人意见", "时间"]),
        ("complaint", ["投诉举报人基本情况", "投诉举报内容", "记录人情况", "投诉举报处理情况"]),
        ("direct_service", ["送达文书名称", "送达时间", "送达地点", "已加盖行政机关印章", "送达人",
                            "受送达人或者符合法定条件的签收人"]),
        ("decision", ["主要负责人签署意见", "签发时间", "法制审核意见", "审查人", "专家论证情况",
                      "集体讨论情况"]),
    ],
)
def test_kind_fields_follow_the_text(rb: Rulebook, kind_id: str, labels: list[str]) -> None:
    kind = rb.kind(kind_id)
    got = [f.label for f in kind.fields.values()]
    assert all(label in got for label in labels), (labels, got)


def test_applicability(rb: Rulebook) -> None:
    assert rb.kind("ex_officio_start").applicability == "start_mode"
    assert rb.kind("statement_waiver").applicability == "conditional"
    assert rb.kind("site_inspection").applicability == "optional"
    assert rb.kind("case_review").applicability == "always"
    assert rb.kind("not_started_notice").applicability == "not_started"
    decision = rb.kind("decision")
    assert decision.fields["issued_at"].is_required()
    assert not decision.fields["legal_review_opinion"].is_required()
    assert decision.fields["legal_review_opinion"].is_required({"legal_review_required"})


def test_av_rules(rb: Rulebook) -> None:
    required = {k.id: k.av.article for k in rb.av_kinds() if k.av and k.av.level == "required"}
    recommended = {k.id: k.av.article for k in rb.av_kinds() if k.av and k.av.level == "recommended"}
    assert required == {
        "inquiry_party": 11, "inquiry_witness": 11, "site_inspection": 11, "sampling": 11,
        "evidence_preservation": 11, "seal_up": 11, "seize": 11, "lodged_service": 20,
        "notice_posting_service": 22, "compulsory_execution": 24}
    assert recommended == {"hearing": 15, "correction_check": 23}
    for kind in rb.av_kinds():
        assert kind.av and kind.av.checklist == "scene"
    assert len(rb.checklists["scene"].items) == 6 and rb.checklists["scene"].article == 12


def test_lookups(rb: Rulebook) -> None:
    assert [k.id for k in rb.kinds_for_stage("start")] == [
        "application", "ex_officio_start", "not_started_notice", "complaint",
        "complaint_not_started_notice"]
    with pytest.raises(UnknownEntryError) as info:
        rb.kind("no_such_kind")
    assert isinstance(info.value, KeyError) and isinstance(info.value, RulebookError)
    assert "record_kinds.no_such_kind" in str(info.value)
    with pytest.raises(UnknownEntryError):
        rb.kinds_for_stage("nowhere")
    with pytest.raises(UnknownEntryError):
        rb.article(31)


def _resolve_code(ref: str) -> object:
    module, _, attr = ref.removeprefix("code:").partition(":")
    obj: object = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_article_is_traceable(rb: Rulebook) -> None:
    """Article -> the rulebook entries or code implementing it. A stage listing an article
    does not count on its own: some entry must cite it, or implemented_by must name one."""
    table = rb.traceability()
    print(f"\n{rb.metadata.document_number} traceability (article -> entries)")
    unmapped = []
    for number, refs in table.items():
        print(f"  {number:>2} {article_label(number)}: {', '.join(refs) or '-- UNMAPPED --'}")
        if not [r for r in refs if not r.startswith("stages.")]:
            unmapped.append(number)
    assert sorted(table) == list(range(1, 31))
    assert unmapped == [], f"articles without an implementing entry: {unmapped}"
    for refs in table.values():
        for ref in refs:
            if ref.startswith("code:"):
                assert callable(_resolve_code(ref)), ref
