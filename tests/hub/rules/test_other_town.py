"""A second, different rulebook works with the same code."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from lerec.hub.rules import Attachment, CaseSnapshot, Clip, Code, Record, Rulebook, evaluate

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=8)))


def test_other_rulebook_loads(other_rb: Rulebook) -> None:
    assert other_rb.id == "qinghe_example"
    assert other_rb.stage_order() == ["intake", "inquiry", "ruling", "closing"]
    assert [k.id for k in other_rb.kinds_for_stage("inquiry")] == ["talk"]
    table = other_rb.traceability()
    assert sorted(table) == list(range(1, 13)) and all(table.values())
    assert other_rb.deadlines.upload.amount == 3


def test_evaluate_with_other_rulebook(other_rb: Rulebook) -> None:
    talk = Record("r1", "talk", {"person": "王五", "notes": "谈话内容"},
                  attachments=(Attachment("a1", "sound", {"how": "录音笔"}),))
    snap = CaseSnapshot(
        case_id="Q-1", enforcement_type="penalty", start_mode="patrol", stage="closing",
        records=(talk, Record("r2", "ruling", {"signed_by": "镇长", "verdict": "tax"})),
        clips=(Clip("s1", "sound", NOW - timedelta(days=9), None, NOW - timedelta(days=5)),),
        execution_ended_at=NOW - timedelta(days=61),
    )
    got = {(f.code, f.article, f.field_id or f.kind_id or f.clip_id) for f in evaluate(snap, other_rb, NOW)}
    assert got == {
        (Code.MISSING_RECORD, 4, "patrol_report"),        # intake done, patrol start
        (Code.AV_REQUIRED_MISSING, 6, "talk"),            # 录像 only; a sound file is not enough
        (Code.ATTACHMENT_METADATA_MISSING, 9, "talk"),    # 拍摄时间、拍摄人
        (Code.AUDIO_WITHOUT_TRANSCRIPT, 9, "talk"),       # attachment
        (Code.AUDIO_WITHOUT_TRANSCRIPT, 9, "s1"),         # clip
        (Code.UPLOAD_LATE, 9, "s1"),
        (Code.INVALID_FIELD, 7, "verdict"),
        # 'delivery' (closing) is not yet due: the case is still in closing.
        # archive: 60 days, ended 61 days ago
        (Code.ARCHIVE_LATE, 10, None),
    }
    by_code = {f.code: f for f in evaluate(snap, other_rb, NOW)}
    assert "文字整理稿" in by_code[Code.AUDIO_WITHOUT_TRANSCRIPT].message
    assert "3个工作日" in by_code[Code.UPLOAD_LATE].message
    assert "拍摄时间、拍摄人" in by_code[Code.ATTACHMENT_METADATA_MISSING].message
    assert "60日" in by_code[Code.ARCHIVE_LATE].message


def test_other_rulebook_validate_record_limits(other_rb: Rulebook) -> None:
    errors = other_rb.validate_record("talk", {"person": "王五", "notes": "长" * 201})
    assert [(e.field, e.code) for e in errors] == [("notes", "too_long")]
    assert other_rb.validate_record("delivery", {}) != []
