"""Server-side validation of submitted records (Chinese messages)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from lerec.hub.rules import RecordKind, Rulebook, validate_record

Fill = Callable[[RecordKind], dict[str, Any]]


def test_complete_record_of_every_kind_is_valid(rb: Rulebook, fill: Fill) -> None:
    for kind in rb.record_kinds.values():
        facts = {f for fd in kind.fields.values() for f in fd.required_if}
        assert rb.validate_record(kind.id, fill(kind), facts=facts) == [], kind.id


def test_required_field_message(rb: Rulebook, fill: Fill) -> None:
    fields = fill(rb.kind("direct_service"))
    fields["server"] = "  "
    del fields["place"]
    errors = rb.validate_record("direct_service", fields)
    assert [(e.field, e.code, e.message) for e in errors] == [
        ("place", "required", "「送达地点」为必填项"),
        ("server", "required", "「送达人」为必填项"),
    ]


def test_optional_and_conditional_fields(rb: Rulebook, fill: Fill) -> None:
    fields = fill(rb.kind("decision"))
    for fid in ("legal_review_opinion", "legal_reviewer", "expert_review", "collective_discussion"):
        del fields[fid]
    assert rb.validate_record("decision", fields) == []
    errors = rb.validate_record("decision", fields, facts={"legal_review_required"})
    assert [e.message for e in errors] == ["「法制审核意见」为必填项", "「审查人」为必填项"]
    fields = fill(rb.kind("application"))
    del fields["on_site_correction"]
    assert rb.validate_record("application", fields) == []


def test_unknown_field_and_kind(rb: Rulebook, fill: Fill) -> None:
    fields = {**fill(rb.kind("direct_service")), "weather": "晴"}
    errors = rb.validate_record("direct_service", fields)
    assert [(e.field, e.code) for e in errors] == [("weather", "unknown_field")]
    assert "「weather」不是「直接送达」记录的字段" in errors[0].message
    [err] = rb.validate_record("no_such_kind", {})
    assert err.code == "unknown_kind" and "no_such_kind" in err.message


def test_oversized_text(rb: Rulebook, fill: Fill) -> None:
    fields = fill(rb.kind("ex_officio_start"))
    fields["case_source"] = "来" * 501
    fields["case_facts"] = "案" * 20001
    errors = {e.field: e for e in rb.validate_record("ex_officio_start", fields)}
    assert errors["case_source"].code == "too_long"
    assert errors["case_source"].message.startswith("「案件来源」超过最大长度 500 字")
    assert errors["case_facts"].code == "too_long"
    # the limit is configurable per call
    fields["case_facts"] = "案" * 100
    errors2 = rb.validate_record("ex_officio_start", fields, text_max=1000, longtext_max=50)
    assert [e.field for e in errors2] == ["case_facts"]
    assert "50 字" in errors2[0].message


@pytest.mark.parametrize(
    ("kind_id", "field", "value", "code", "fragment"),
    [
        ("direct_service", "served_at", "昨天下午", "invalid_type", "「送达时间」应为日期时间"),
        ("direct_service", "served_at", "2025-03-01", "invalid_type", "日期时间"),
        ("direct_service", "seal", "是", "invalid_type", "「已加盖行政机关印章」应为是或否"),
        ("direct_service", "server", 42, "invalid_type", "「送达人」应为人员"),
        ("direct_service", "server", {"id": "p1"}, "invalid_type", "人员"),
        ("court_enforcement", "applied_on", "2025-13-01", "invalid_type", "「申请日期」应为日期"),
        ("mail_service", "mail_method", "pigeon", "invalid_choice", "挂号信（registered_mail）"),
        ("mail_service", "registration", [1, 2], "invalid_type", "附件"),
        ("direct_service", "document", ["a"], "invalid_type", "「送达文书名称」应为文字"),
    ],
)
def test_invalid_values(rb: Rulebook, fill: Fill, kind_id: str, field: str, value: Any,
                        code: str, fragment: str) -> None:
    fields = {**fill(rb.kind(kind_id)), field: value}
    errors = validate_record(rb, kind_id, fields)
    assert [(e.field, e.code) for e in errors] == [(field, code)]
    assert fragment in errors[0].message


def test_accepts_python_objects(rb: Rulebook, fill: Fill) -> None:
    fields = {**fill(rb.kind("direct_service")), "served_at": datetime(2025, 3, 1, 9),
              "server": {"name": "李四", "badge": "0012"}, "receipt": "att-9"}
    assert rb.validate_record("direct_service", fields) == []
