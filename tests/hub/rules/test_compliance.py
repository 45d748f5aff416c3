"""Compliance findings for representative cases (each finding cites its article)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from lerec.hub.rules import (
    Attachment,
    CaseSnapshot,
    Clip,
    Code,
    FieldDef,
    Finding,
    Record,
    Rulebook,
    Severity,
    archive_deadline,
    default_rulebook,
    evaluate,
)

RB = default_rulebook()
CST = timezone(timedelta(hours=8))
NOW = datetime(2025, 3, 20, 10, 0, tzinfo=CST)
SAMPLE = {"text": "示例", "longtext": "示例内容", "datetime": "2025-03-01T09:30:00+08:00",
          "date": "2025-03-01", "person": "张三", "bool": True, "attachment": ["att-1"]}


def value(fdef: FieldDef) -> Any:
    return next(iter(fdef.options)) if fdef.options else SAMPLE[fdef.type]
META = {"method": "执法记录仪录制", "made_at": "2025-03-01T09:30", "maker": "张三", "proves": "现场状况"}


def rec(kind_id: str, *, drop: tuple[str, ...] = (), clips: tuple[str, ...] = (),
        attachments: tuple[Attachment, ...] = (), **fields: Any) -> Record:
    values = {**{f.id: value(f) for f in RB.kind(kind_id).fields.values()}, **fields}
    for name in drop:
        values.pop(name)
    return Record(f"r-{kind_id}", kind_id, values, NOW - timedelta(days=20), attachments, clips)


def clip(segment_id: str = "seg-1", media: str = "video", *, uploaded: bool = True,
         late: bool = False, transcript: bool = False) -> Clip:
    end = NOW - timedelta(days=10)
    deadline = end + timedelta(days=2)
    uploaded_at = (deadline + timedelta(hours=5) if late else end + timedelta(hours=3)) if uploaded else None
    return Clip(segment_id, media, end, uploaded_at, deadline, transcript)


def case(stage: str = "investigation", *records: Record, **kw: Any) -> CaseSnapshot:
    base: dict[str, Any] = {
        "case_id": "C-1", "enforcement_type": "penalty", "start_mode": "ex_officio",
        "stage": stage, "started_at": NOW - timedelta(days=40), "records": records,
    }
    base.update(kw)
    return CaseSnapshot(**base)


def compliant_case() -> CaseSnapshot:
    """An ex officio penalty case that did everything right and was archived on time."""
    ended = NOW - timedelta(days=20)
    return case(
        "archive",
        rec("ex_officio_start"),
        rec("site_inspection", clips=("seg-1",)),
        rec("case_review"), rec("statement_notice"), rec("decision"),
        rec("direct_service"), rec("execution"),
        clips=(clip("seg-1"),),
        execution_ended_at=ended,
        archived_at=ended + timedelta(days=10),
    )


def keys(findings: list[Finding]) -> set[tuple[str, int | None, str | None]]:
    return {(f.code.value, f.article, f.field_id or f.kind_id or f.clip_id) for f in findings}


CASES: list[tuple[str, Callable[[], CaseSnapshot], set[tuple[str, int | None, str | None]]]] = [
    ("compliant case has no findings", compliant_case, set()),
    ("ex officio: 第七条 fields missing",
     lambda: case("investigation", rec("ex_officio_start", drop=("case_source",), head_opinion="")),
     {("missing_field", 7, "case_source"), ("missing_field", 7, "head_opinion")}),
    ("ex officio: 第七条 record missing once past start",
     lambda: case("investigation"), {("missing_record", 7, "ex_officio_start")}),
    ("nothing due while still in the start stage", lambda: case("start"), set()),
    ("application start needs 第六条 record",
     lambda: case("investigation", start_mode="application", enforcement_type="licensing"),
     {("missing_record", 6, "application")}),
    ("site inspection without video -> 第十一条",
     lambda: case("investigation", rec("ex_officio_start"), rec("site_inspection")),
     {("av_required_missing", 11, "site_inspection")}),
    ("site inspection with linked video: ok",
     lambda: case("investigation", rec("ex_officio_start"), rec("site_inspection", clips=("seg-1",)),
                  clips=(clip("seg-1"),)), set()),
    ("linked clip id that is not in the snapshot does not count",
     lambda: case("investigation", rec("ex_officio_start"), rec("seize", clips=("seg-x",))),
     {("av_required_missing", 11, "seize")}),
    ("a photo is not an audio/video recording of the scene",
     lambda: case("investigation", rec("ex_officio_start"),
                  rec("sampling", attachments=(Attachment("a1", "photo", META),))),
     {("av_required_missing", 11, "sampling")}),
    ("lodged service without video -> 第二十条",
     lambda: case("service_execution", rec("ex_officio_start"), rec("evidence_collection"),
                  rec("case_review"), rec("statement_notice"), rec("decision"),
                  rec("lodged_service")),
     {("av_required_missing", 20, "lodged_service")}),
    ("hearing without AV is only recommended -> info 第十五条",
     lambda: case("decision", rec("ex_officio_start"), rec("evidence_collection"), rec("hearing"),
                  facts=frozenset({"hearing_held"})),
     {("av_recommended_missing", 15, "hearing")}),
    ("audio clip without transcript -> 第二十七条",
     lambda: case("investigation", rec("ex_officio_start"), rec("inquiry_party", clips=("seg-a",)),
                  clips=(clip("seg-a", "audio"),)),
     {("audio_without_transcript", 27, "seg-a")}),
    ("audio clip with transcript: ok",
     lambda: case("investigation", rec("ex_officio_start"), rec("inquiry_party", clips=("seg-a",)),
                  clips=(clip("seg-a", "audio", transcript=True),)), set()),
    ("attachment without 第二十七条 metadata and transcript",
     lambda: case("investigation", rec("ex_officio_start"), rec("inquiry_witness", attachments=(
         Attachment("att-7", "audio", {"method": "录音笔", "maker": "张三"}),))),
     {("attachment_metadata_missing", 27, "inquiry_witness"),
      ("audio_without_transcript", 27, "inquiry_witness")}),
    ("clip not uploaded after the deadline -> 第二十六条",
     lambda: case("start", rec("ex_officio_start"), clips=(clip("seg-9", uploaded=False),)),
     {("upload_late", 26, "seg-9")}),
    ("clip uploaded after the deadline -> 第二十六条 warning",
     lambda: case("start", rec("ex_officio_start"), clips=(clip("seg-9", late=True),)),
     {("upload_late", 26, "seg-9")}),
    ("case at 送达执行 must have its 审查决定 records",
     lambda: case("service_execution", rec("ex_officio_start"), rec("evidence_collection")),
     {("missing_record", 13, "case_review"), ("missing_record", 14, "statement_notice"),
      ("missing_record", 16, "decision")}),
    ("licensing case needs no 告知陈述申辩",
     lambda: case("service_execution", rec("application"), rec("case_review"), rec("decision"),
                  start_mode="application", enforcement_type="licensing"), set()),
    ("decision needing legal review lacks its fields",
     lambda: case("service_execution", rec("ex_officio_start"), rec("evidence_collection"),
                  rec("case_review"), rec("statement_notice"),
                  rec("decision", drop=("legal_review_opinion", "legal_reviewer")),
                  facts=frozenset({"legal_review_required"})),
     {("missing_field", 16, "legal_review_opinion"), ("missing_field", 16, "legal_reviewer")}),
    ("waived statement needs its record once past decision",
     lambda: case("service_execution", rec("ex_officio_start"), rec("evidence_collection"),
                  rec("case_review"), rec("statement_notice"), rec("decision"),
                  facts=frozenset({"statement_waived"})),
     {("missing_record", 14, "statement_waiver")}),
    ("archive stage without any service -> 第十七条 and 第二十三条",
     lambda: replace(compliant_case(), records=compliant_case().records[:5]),
     {("missing_record", 17, "service_any"), ("missing_record", 23, "execution")}),
    ("execution ended 31 days ago, not archived -> 第二十八条",
     lambda: replace(compliant_case(), stage="archive", archived_at=None,
                     execution_ended_at=NOW - timedelta(days=31)),
     {("archive_late", 28, None)}),
    ("execution ended 27 days ago -> archive due soon",
     lambda: replace(compliant_case(), archived_at=None, execution_ended_at=NOW - timedelta(days=27)),
     {("archive_due_soon", 28, None)}),
    ("execution ended 10 days ago: nothing yet",
     lambda: replace(compliant_case(), archived_at=None, execution_ended_at=NOW - timedelta(days=10)),
     set()),
    ("archived after the deadline -> warning",
     lambda: replace(compliant_case(), execution_ended_at=NOW - timedelta(days=50),
                     archived_at=NOW - timedelta(days=5)),
     {("archive_late", 28, None)}),
    ("a law's longer archive deadline overrides 30 days",
     lambda: replace(compliant_case(), archived_at=None, execution_ended_at=NOW - timedelta(days=31),
                     archive_deadline=NOW + timedelta(days=60)), set()),
    ("ex officio not started needs the 第七条第二款 notice",
     lambda: case("start", not_started=True), {("missing_record", 7, "not_started_notice")}),
    ("ex officio not started with notice: ok",
     lambda: case("start", rec("not_started_notice"), not_started=True), set()),
    ("real-name complaint not started -> 第八条 records",
     lambda: case("start", start_mode="complaint", not_started=True,
                  facts=frozenset({"real_name_complaint"})),
     {("missing_record", 8, "complaint"), ("missing_record", 8, "complaint_not_started_notice")}),
    ("penalty case without any investigation record -> 第九条 warning",
     lambda: case("decision", rec("ex_officio_start")),
     {("missing_record", 9, "investigation_any")}),
    ("unknown kind and stage are reported, not raised",
     lambda: case("trial", Record("r-x", "telepathy", {})),
     {("unknown_stage", None, None), ("unknown_kind", None, "telepathy")}),
]


@pytest.mark.parametrize(("make", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_findings_table(make: Callable[[], CaseSnapshot], expected: set[Any]) -> None:
    findings = evaluate(make(), RB, NOW)
    assert keys(findings) == expected, "\n".join(f.message for f in findings)
    for f in findings:
        if f.article is not None:
            assert RB.article(f.article)
            assert f.message.startswith("依据第"), f.message


def test_messages_cite_the_article_and_say_what_to_do(rb: Rulebook) -> None:
    [f] = evaluate(case("investigation", rec("ex_officio_start"), rec("site_inspection")), rb, NOW)
    assert f.code is Code.AV_REQUIRED_MISSING and f.severity is Severity.ERROR
    assert f.record_id == "r-site_inspection"
    assert f.message == "依据第十一条，现场检查（勘验）应当采用音像方式记录：请关联执法记录仪录像或录音。"
    assert f.hint and "执法现场的环境" in f.hint and "第十二条" in f.hint
    [f] = evaluate(case("investigation", rec("ex_officio_start", drop=("case_source",))), rb, NOW)
    assert f.message == "依据第七条，「依职权启动审批记录」记录的「案件来源」为必填项：请补充填写。"


def test_adding_the_clip_removes_the_finding(rb: Rulebook) -> None:
    before = case("investigation", rec("ex_officio_start"), rec("seal_up"))
    assert [f.code for f in evaluate(before, rb, NOW)] == [Code.AV_REQUIRED_MISSING]
    after = replace(before, records=(before.records[0], replace(before.records[1], clip_ids=("s",))),
                    clips=(clip("s"),))
    assert evaluate(after, rb, NOW) == []


def test_severities(rb: Rulebook) -> None:
    late = evaluate(case("start", rec("ex_officio_start"), clips=(clip(uploaded=False),)), rb, NOW)
    uploaded_late = evaluate(case("start", rec("ex_officio_start"), clips=(clip(late=True),)), rb, NOW)
    assert [f.severity for f in late] == [Severity.ERROR]
    assert [f.severity for f in uploaded_late] == [Severity.WARNING]
    assert "不得自行保管" in late[0].message and "2个工作日" in late[0].message
    hearing = evaluate(case("decision", rec("ex_officio_start"), rec("evidence_collection"),
                            rec("hearing"),
                            facts=frozenset({"hearing_held"})), rb, NOW)
    assert [f.severity for f in hearing] == [Severity.INFO]


def test_findings_are_sorted_errors_first(rb: Rulebook) -> None:
    snap = case("decision", rec("hearing"), facts=frozenset({"hearing_held"}))
    severities = [f.severity for f in evaluate(snap, rb, NOW)]
    assert severities == sorted(severities, key=[Severity.ERROR, Severity.WARNING, Severity.INFO].index)
    assert Severity.INFO in severities and Severity.ERROR in severities


def test_archive_deadline_is_end_of_day_30_in_china_time(rb: Rulebook) -> None:
    ended = datetime(2025, 1, 10, 23, 30, tzinfo=CST)
    snap = case("archive", execution_ended_at=ended)
    assert archive_deadline(snap, rb) == datetime(2025, 2, 10, 0, 0, tzinfo=CST)
    naive = case("archive", execution_ended_at=datetime(2025, 1, 10, 23, 30))
    assert archive_deadline(naive, rb) == datetime(2025, 2, 10, 0, 0, tzinfo=CST)
    assert archive_deadline(case("archive"), rb) is None
