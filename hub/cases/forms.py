"""HTML form values <-> typed record fields, driven by the rulebook's field definitions.

Browsers send strings; the rulebook's validation wants typed values (bool, ISO datetimes with
an offset, lists of attachment ids). Times typed in a form are China Standard Time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

from ..rules import RecordKind

CHINA = dt.timezone(dt.timedelta(hours=8))
_TRUE = {"on", "true", "1", "yes", "是"}


class FormLike(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def getlist(self, key: str) -> list[Any]: ...


def local_iso(value: str) -> str:
    """'2024-10-15T09:30' (datetime-local) -> '2024-10-15T09:30:00+08:00'; others unchanged."""
    text = value.strip()
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CHINA)
    return moment.isoformat()


def fields_from_form(kind: RecordKind, form: FormLike, prefix: str = "f_") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fid, fdef in kind.fields.items():
        key = prefix + fid
        if fdef.type == "bool":
            raw = form.get(key)
            out[fid] = isinstance(raw, str) and raw.strip().lower() in _TRUE
            continue
        if fdef.type == "attachment":
            items = [str(v).strip() for v in form.getlist(key) if str(v).strip()]
            if items:
                out[fid] = items
            continue
        raw = form.get(key)
        if not isinstance(raw, str):
            continue
        text = raw.replace("\r\n", "\n").strip()
        if not text:
            continue
        out[fid] = local_iso(text) if fdef.type == "datetime" else text
    return out


def input_value(ftype: str, value: Any) -> Any:
    """A stored value as the form control expects it (datetime-local in China time)."""
    if value is None:
        return ""
    if ftype == "datetime" and isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None:
            moment = moment.astimezone(CHINA)
        return moment.strftime("%Y-%m-%dT%H:%M")
    if ftype == "person" and isinstance(value, Mapping):
        return value.get("name", "")
    return value


def display_value(ftype: str, value: Any, options: Mapping[str, str] | None = None) -> str:
    """A stored value for reading (Chinese)."""
    if value is None or value == "":
        return "—"
    if ftype == "bool":
        return "是" if value else "否"
    if ftype == "choice" and options and isinstance(value, str):
        return options.get(value, value)
    if ftype == "datetime" and isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None:
            moment = moment.astimezone(CHINA)
        return moment.strftime("%Y-%m-%d %H:%M")
    if ftype == "person" and isinstance(value, Mapping):
        return str(value.get("name", ""))
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    return str(value)
