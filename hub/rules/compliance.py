"""The compliance checker: a pure function from a case snapshot to findings.

``evaluate`` does no IO and never raises on a well-typed snapshot: whatever is odd about the
snapshot (unknown kinds, unknown stage) becomes a finding. Every finding cites its article
and says, in Chinese, what to do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from enum import StrEnum
from typing import Any

from .model import RecordKind
from .numerals import article_label
from .progress import completed_stages, condition_holds
from .rulebook import Rulebook
from .snapshot import Attachment, CaseSnapshot, Clip, Record
from .validation import is_blank, validate_record

CHINA_TZ = timezone(timedelta(hours=8), "CST")


class Code(StrEnum):
    MISSING_RECORD = "missing_record"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    UNKNOWN_KIND = "unknown_kind"
    UNKNOWN_STAGE = "unknown_stage"
    AV_REQUIRED_MISSING = "av_required_missing"
    AV_RECOMMENDED_MISSING = "av_recommended_missing"
    ATTACHMENT_METADATA_MISSING = "attachment_metadata_missing"
    AUDIO_WITHOUT_TRANSCRIPT = "audio_without_transcript"
    UPLOAD_LATE = "upload_late"
    ARCHIVE_LATE = "archive_late"
    ARCHIVE_DUE_SOON = "archive_due_soon"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One compliance gap. ``article`` is None only for snapshot problems no article covers.
    ``kind_id`` names the record kind concerned, or the kind group for a group that has no
    record at all (e.g. ``service_any``); ``hint`` carries the 第十二条 checklist for AV gaps."""

    code: Code
    severity: Severity
    article: int | None
    message: str
    record_id: str | None = None
    kind_id: str | None = None
    field_id: str | None = None
    clip_id: str | None = None
    attachment_id: str | None = None
    hint: str | None = None


def evaluate(case: CaseSnapshot, rulebook: Rulebook, now: datetime) -> list[Finding]:
    """All findings for ``case`` under ``rulebook`` at time ``now`` (errors first)."""
    findings = [
        *_missing_records(case, rulebook),
        *(f for record in case.records for f in _record_findings(record, case, rulebook)),
        *_clip_findings(case, rulebook, now),
        *_archive_findings(case, rulebook, now),
    ]
    rank = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    return sorted(findings, key=lambda f: rank[f.severity])  # stable: keeps check order


# -- stage progress -------------------------------------------------------------------------


def _missing_records(case: CaseSnapshot, rb: Rulebook) -> Iterator[Finding]:
    done = completed_stages(case, rb)
    if done is None:
        yield Finding(
            Code.UNKNOWN_STAGE, Severity.WARNING, None,
            f"案件所处环节「{case.stage}」不在《{rb.metadata.title}》的环节中："
            f"请将案件设为以下环节之一：{'、'.join(s.name for s in rb.stages.values())}。",
        )
        return
    present = {r.kind_id for r in case.records}
    for kind in rb.record_kinds.values():
        if kind.stage in done and kind.id not in present and condition_holds(kind.required_when, case):
            stage = rb.stages[kind.stage].name
            yield Finding(
                Code.MISSING_RECORD, Severity.ERROR, kind.article,
                f"依据{article_label(kind.article)}，案件已过「{stage}」环节，"
                f"但缺少「{kind.name}」记录：请补充制作该记录。",
                kind_id=kind.id,
            )
    for group in rb.kind_groups.values():
        if group.stage not in done or not condition_holds(group.required_when, case):
            continue
        if not present.intersection(group.kinds):
            names = "；".join(rb.record_kinds[k].name for k in group.kinds)
            yield Finding(
                Code.MISSING_RECORD, Severity(group.severity), group.article,
                f"依据{article_label(group.article)}，案件已过「{rb.stages[group.stage].name}」"
                f"环节，但没有任何{group.name}记录：请补充以下记录之一：{names}。",
                kind_id=group.id,
            )


# -- one record -----------------------------------------------------------------------------


def _record_findings(record: Record, case: CaseSnapshot, rb: Rulebook) -> Iterator[Finding]:
    if not rb.has_kind(record.kind_id):
        yield Finding(
            Code.UNKNOWN_KIND, Severity.WARNING, None,
            f"记录「{record.record_id}」的类型「{record.kind_id}」不在《{rb.metadata.title}》中："
            "请核对记录类型。",
            record_id=record.record_id, kind_id=str(record.kind_id),
        )
        return
    kind = rb.kind(record.kind_id)
    art = article_label(kind.article)
    facts = case.facts if isinstance(case.facts, frozenset) else frozenset(case.facts or ())
    fields = record.fields if isinstance(record.fields, Mapping) else {}
    for err in validate_record(rb, kind.id, fields, facts=facts):
        if err.code == "required":
            code, severity = Code.MISSING_FIELD, Severity.ERROR
            message = f"依据{art}，「{kind.name}」记录的「{err.label}」为必填项：请补充填写。"
        else:
            code, severity = Code.INVALID_FIELD, Severity.WARNING
            message = f"「{kind.name}」记录填写有误：{err.message.rstrip('。')}。请更正。"
        yield Finding(
            code, severity, kind.article, message,
            record_id=record.record_id, kind_id=kind.id, field_id=err.field or None,
        )
    yield from _av_findings(record, kind, case, rb)
    for attachment in record.attachments:
        yield from _attachment_findings(attachment, record, rb)


def _av_findings(record: Record, kind: RecordKind, case: CaseSnapshot, rb: Rulebook) -> Iterator[Finding]:
    av = kind.av
    if av is None:
        return
    clips = {c.segment_id: c for c in case.clips}
    linked = [clips[i] for i in record.clip_ids if i in clips]
    if any(c.media_kind in av.media for c in linked) or any(
        a.media_type in av.media for a in record.attachments
    ):
        return
    media = "或".join(_medium_name(rb, m) for m in av.media)
    hint = None
    if av.checklist is not None:
        cl = rb.checklists[av.checklist]
        hint = f"依据{article_label(cl.article)}，{cl.name}：" + "；".join(cl.items) + "。"
    art = article_label(av.article)
    if av.level == "required":
        yield Finding(
            Code.AV_REQUIRED_MISSING, Severity.ERROR, av.article,
            f"依据{art}，{kind.name}应当采用音像方式记录：请关联执法记录仪{media}。",
            record_id=record.record_id, kind_id=kind.id, hint=hint,
        )
    else:
        yield Finding(
            Code.AV_RECOMMENDED_MISSING, Severity.INFO, av.article,
            f"依据{art}，{kind.name}必要时应当进行音像记录：如已录制，请关联执法记录仪{media}。",
            record_id=record.record_id, kind_id=kind.id, hint=hint,
        )


def _attachment_findings(a: Attachment, record: Record, rb: Rulebook) -> Iterator[Finding]:
    er = rb.electronic_records
    art = article_label(er.article)
    name = _medium_name(rb, a.media_type)
    if a.media_type in er.media:
        meta = a.metadata if isinstance(a.metadata, Mapping) else {}
        missing = [label for mid, label in er.metadata.items() if is_blank(meta.get(mid))]
        if missing:
            yield Finding(
                Code.ATTACHMENT_METADATA_MISSING, Severity.ERROR, er.article,
                f"依据{art}，电子记录材料应当同时记录{'、'.join(er.metadata.values())}："
                f"附件「{a.attachment_id}」（{name}）缺少{'、'.join(missing)}，请补充。",
                record_id=record.record_id, kind_id=record.kind_id, attachment_id=a.attachment_id,
            )
    if a.media_type in er.transcript_media and not a.transcript_present:
        yield Finding(
            Code.AUDIO_WITHOUT_TRANSCRIPT, Severity.ERROR, er.article,
            f"依据{art}，声音资料应当附有该声音内容的{er.transcript_label}："
            f"请为附件「{a.attachment_id}」（{name}）补充{er.transcript_label}。",
            record_id=record.record_id, kind_id=record.kind_id, attachment_id=a.attachment_id,
        )


# -- clips and deadlines --------------------------------------------------------------------


def _clip_findings(case: CaseSnapshot, rb: Rulebook, now: datetime) -> Iterator[Finding]:
    er, upload = rb.electronic_records, rb.deadlines.upload
    for clip in case.clips:
        if clip.media_kind in er.transcript_media and not clip.transcript_present:
            yield Finding(
                Code.AUDIO_WITHOUT_TRANSCRIPT, Severity.ERROR, er.article,
                f"依据{article_label(er.article)}，声音资料应当附有该声音内容的"
                f"{er.transcript_label}：请为录音「{clip.segment_id}」补充{er.transcript_label}。",
                clip_id=clip.segment_id,
            )
        yield from _upload_finding(clip, upload.article, _period(upload.amount, upload.unit), now)


def _upload_finding(clip: Clip, article: int, period: str, now: datetime) -> Iterator[Finding]:
    if clip.upload_deadline is None:
        return
    deadline = _aware(clip.upload_deadline)
    art = article_label(article)
    if clip.uploaded_at is None:
        if _aware(now) > deadline:
            yield Finding(
                Code.UPLOAD_LATE, Severity.ERROR, article,
                f"依据{art}，音像记录应当在{period}内存储至执法信息系统：记录「{clip.segment_id}」"
                f"已超过期限（{_fmt(deadline)}）仍未上传，请立即上传，不得自行保管。",
                clip_id=clip.segment_id,
            )
    elif _aware(clip.uploaded_at) > deadline:
        yield Finding(
            Code.UPLOAD_LATE, Severity.WARNING, article,
            f"依据{art}，音像记录应当在{period}内存储至执法信息系统：记录「{clip.segment_id}」"
            f"于{_fmt(_aware(clip.uploaded_at))}上传，晚于期限（{_fmt(deadline)}），请在案卷中说明原因。",
            clip_id=clip.segment_id,
        )


def archive_deadline(case: CaseSnapshot, rb: Rulebook) -> datetime | None:
    """When the case file must be archived: the snapshot's override (a law's own deadline), else
    the end of the N-th calendar day after execution ended; None if it cannot be computed."""
    if case.archive_deadline is not None:
        return _aware(case.archive_deadline)
    rule = rb.deadlines.archive
    if case.execution_ended_at is None or rule.unit != "calendar_days":
        return None
    try:
        ended = _aware(case.execution_ended_at).astimezone(CHINA_TZ).date()
        return datetime.combine(ended + timedelta(days=rule.amount + 1), time(0), CHINA_TZ)
    except OverflowError:
        return None


def _archive_findings(case: CaseSnapshot, rb: Rulebook, now: datetime) -> Iterator[Finding]:
    rule = rb.deadlines.archive
    due = archive_deadline(case, rb)
    if due is None:
        return
    art, period = article_label(rule.article), _period(rule.amount, rule.unit)
    base = f"依据{art}，应当在行政执法行为执行终结之日起{period}内将执法记录形成案卷归档"
    last_day = _fmt_date(_before(due))
    if case.archived_at is not None:
        if _aware(case.archived_at) >= due:
            yield Finding(
                Code.ARCHIVE_LATE, Severity.WARNING, rule.article,
                f"{base}：本案于{_fmt_date(_aware(case.archived_at))}归档，晚于期限（{last_day}），"
                "请在案卷中说明原因。",
            )
        return
    current = _aware(now)
    if current >= due:
        yield Finding(
            Code.ARCHIVE_LATE, Severity.ERROR, rule.article,
            f"{base}：期限已于{last_day}届满，请立即归档。", hint=rule.note,
        )
    elif rule.due_soon_days is not None and due - current <= timedelta(days=rule.due_soon_days):
        yield Finding(
            Code.ARCHIVE_DUE_SOON, Severity.WARNING, rule.article,
            f"{base}：期限为{last_day}，即将届满，请尽快归档。", hint=rule.note,
        )


# -- helpers --------------------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    """Naive datetimes are China Standard Time."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=CHINA_TZ)
    return value


def _before(value: datetime) -> datetime:
    """The last instant before ``value`` (a deadline is exclusive)."""
    try:
        return value - timedelta(microseconds=1)
    except OverflowError:
        return value


def _local(value: datetime) -> datetime:
    try:
        return value.astimezone(CHINA_TZ)
    except OverflowError:
        return value


def _fmt(value: datetime) -> str:
    return _local(value).strftime("%Y-%m-%d %H:%M")


def _fmt_date(value: datetime) -> str:
    return _local(value).strftime("%Y-%m-%d")


def _period(amount: int, unit: str) -> str:
    return f"{amount}个工作日" if unit == "working_days" else f"{amount}日"


def _medium_name(rb: Rulebook, medium: Any) -> str:
    for method in rb.record_methods.values():
        if medium in method.kinds:
            return method.kinds[medium]
    return str(medium)
