"""Server-side validation of a submitted record against its kind's field definitions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from .model import FieldDef

if TYPE_CHECKING:
    from .rulebook import Rulebook


@dataclass(frozen=True)
class FieldError:
    """One problem with one submitted field. ``code`` is one of: unknown_kind, unknown_field,
    required, too_long, invalid_type, invalid_choice. ``message`` is for people (Chinese)."""

    field: str
    code: str
    message: str
    label: str | None = None


_TYPE_HINTS = {
    "text": "文字",
    "longtext": "文字",
    "datetime": "日期时间（如 2024-10-15T09:30:00+08:00）",
    "date": "日期（如 2024-10-15）",
    "person": "人员姓名，或含 name 的人员信息",
    "bool": "是或否",
    "attachment": "附件编号或附件编号列表",
}


def is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return len(value) == 0
    return False


def validate_record(
    rulebook: Rulebook,
    kind_id: str,
    fields: Mapping[str, Any],
    *,
    facts: frozenset[str] | set[str] = frozenset(),
    text_max: int | None = None,
    longtext_max: int | None = None,
) -> list[FieldError]:
    """Check ``fields`` (field id -> submitted value) against the record kind ``kind_id``.

    Required fields must be present and not blank (``required_if`` fields only when the case
    has those ``facts``); unknown fields are rejected; text longer than the field's
    ``max_length`` or the limit (argument, else the rulebook's ``limits``) is rejected.
    Returns an empty list when the record is acceptable.
    """
    if not rulebook.has_kind(kind_id):
        return [FieldError("", "unknown_kind", f"未知的记录类型「{kind_id}」，请从规则中选择记录类型。")]
    kind = rulebook.kind(kind_id)
    limits = {
        "text": text_max if text_max is not None else rulebook.limits.text_max,
        "longtext": longtext_max if longtext_max is not None else rulebook.limits.longtext_max,
    }
    errors: list[FieldError] = []
    if not isinstance(fields, Mapping):
        fields = {}
    for key in fields:
        if not isinstance(key, str) or key not in kind.fields:
            errors.append(
                FieldError(str(key), "unknown_field", f"「{key}」不是「{kind.name}」记录的字段，请删除。")
            )
    for fid, fdef in kind.fields.items():
        value = fields.get(fid)
        if is_blank(value):
            if fdef.is_required(facts):
                errors.append(FieldError(fid, "required", f"「{fdef.label}」为必填项", fdef.label))
            continue
        problem = _check_value(fdef, value, limits)
        if problem is not None:
            code, message = problem
            errors.append(FieldError(fid, code, message, fdef.label))
    return errors


def _check_value(fdef: FieldDef, value: Any, limits: dict[str, int]) -> tuple[str, str] | None:
    label, kind = fdef.label, fdef.type
    bad_type = ("invalid_type", f"「{label}」应为{_TYPE_HINTS.get(kind, kind)}")
    if kind in ("text", "longtext"):
        if not isinstance(value, str):
            return bad_type
        limit = fdef.max_length or limits[kind]
        if len(value) > limit:
            return ("too_long", f"「{label}」超过最大长度 {limit} 字（现为 {len(value)} 字），请精简。")
        return None
    if kind == "datetime":
        return None if _is_datetime(value) else bad_type
    if kind == "date":
        return None if _is_date(value) else bad_type
    if kind == "bool":
        return None if isinstance(value, bool) else bad_type
    if kind == "person":
        if isinstance(value, str):
            ok = len(value) <= limits["text"]
        elif isinstance(value, Mapping):
            name = value.get("name")
            ok = isinstance(name, str) and bool(name.strip()) and len(name) <= limits["text"]
        else:
            ok = False
        return None if ok else bad_type
    if kind == "attachment":
        items = [value] if isinstance(value, str) else value
        ok = isinstance(items, (list, tuple)) and all(isinstance(i, str) and i for i in items)
        return None if ok else bad_type
    if kind == "choice":
        options = fdef.options or {}
        if isinstance(value, str) and value in options:
            return None
        allowed = "、".join(f"{v}（{k}）" for k, v in options.items())
        return ("invalid_choice", f"「{label}」只能选择：{allowed}")
    return bad_type


def _is_datetime(value: Any) -> bool:
    if isinstance(value, datetime):
        return True
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return "T" in value or " " in value.strip()


def _is_date(value: Any) -> bool:
    if isinstance(value, date) and not isinstance(value, datetime):
        return True
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True
