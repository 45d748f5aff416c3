"""Audit events and their canonical encoding: the bytes that become Merkle leaves.

An event encodes as canonical JSON in the manner of RFC 8785 (JCS): object keys sorted by
their UTF-16 code units, no insignificant whitespace, minimal string escaping, UTF-8. Numbers
are restricted to integers within +-(2**53 - 1) (no floats: put decimals in strings), which
keeps the encoding identical to JCS and free of float formatting questions. Example::

    {"actor":"user:alice","details":{"reason":"review"},"subjects":["case:2024-17"],
     "time":"2024-05-01T08:30:00.123Z","type":"view","v":1}

``decode_event`` accepts only bytes that ``encode_event`` would produce: unknown or missing
fields, duplicate keys, floats, non-canonical spacing or ordering are all :class:`EntryError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeAlias

from .errors import EntryError
from .merkle import hash_leaf

ENTRY_VERSION = 1
MAX_ENTRY_BYTES = 64 * 1024
MAX_DEPTH = 16
MAX_SAFE_INTEGER = 2**53 - 1
_FIELDS = frozenset({"v", "type", "actor", "time", "subjects", "details"})
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", re.ASCII)
_CONTROL = re.compile("[\x00-\x1f\x7f]")

JSONValue: TypeAlias = "None | bool | int | str | Sequence[JSONValue] | Mapping[str, JSONValue]"


class EventType(StrEnum):
    """What happened. The set is fixed; a new kind of event is a new member here."""

    SEGMENT_INGESTED = "segment_ingested"
    RECEIPT_ISSUED = "receipt_issued"
    GAP_DETECTED = "gap_detected"
    LINK = "link"
    UNLINK = "unlink"
    VIEW = "view"
    DOWNLOAD = "download"
    EXPORT = "export"
    RECORD_CREATED = "record_created"
    RECORD_CHANGED = "record_changed"
    APPROVAL = "approval"
    ARCHIVE = "archive"
    DELETION = "deletion"
    ACCESS_REQUEST = "access_request"
    ACCESS_REVOKED = "access_revoked"
    ACCESS_DENIED = "access_denied"
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    USER_CHANGED = "user_changed"
    DEVICE_ENROLLED = "device_enrolled"
    DEVICE_REVOKED = "device_revoked"
    CONFIG_CHANGED = "config_changed"
    KEY_ROTATED = "key_rotated"


def format_time(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC (the moment must be timezone-aware)."""
    t = moment.astimezone(UTC)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond // 1000:03d}Z"
    )


def _normalise_time(moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise EntryError("time", "must be a timezone-aware datetime")
    utc = moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _check_label(name: str, value: object) -> str:
    if not isinstance(value, str) or not value or _CONTROL.search(value):
        raise EntryError(name, "must be a non-empty string without control characters")
    if len(value) > 256:
        raise EntryError(name, "must be at most 256 characters")
    return value


def _freeze(value: Any, path: str, depth: int = 0) -> Any:
    """Validate a details value and return an immutable copy."""
    if depth > MAX_DEPTH:
        raise EntryError(path, f"nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise EntryError(path, "integer outside +-(2**53 - 1); use a string")
        return value
    if isinstance(value, float):
        raise EntryError(path, "floats are not allowed; use a string or integer units")
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise EntryError(path, "object keys must be strings")
        return MappingProxyType({k: _freeze(v, f"{path}.{k}", depth + 1) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
    raise EntryError(path, f"{type(value).__name__} is not a JSON value")


@dataclass(frozen=True)
class AuditEvent:
    """One audit log entry. ``time`` is kept in UTC at millisecond precision."""

    type: EventType
    actor: str
    time: datetime
    subjects: tuple[str, ...] = ()
    details: Mapping[str, JSONValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            kind = EventType(self.type)
        except ValueError:
            raise EntryError("type", f"unknown event type {self.type!r}") from None
        if isinstance(self.subjects, str):
            raise EntryError("subjects", "must be a sequence of ids, not one string")
        subjects = tuple(_check_label("subjects", s) for s in self.subjects)
        if not isinstance(self.details, Mapping):
            raise EntryError("details", "must be an object")
        object.__setattr__(self, "type", kind)
        object.__setattr__(self, "actor", _check_label("actor", self.actor))
        object.__setattr__(self, "time", _normalise_time(self.time))
        object.__setattr__(self, "subjects", subjects)
        object.__setattr__(self, "details", _freeze(self.details, "details"))

    def encode(self) -> bytes:
        return encode_event(self)

    def leaf_hash(self) -> bytes:
        return hash_leaf(encode_event(self))


def canonical_json(value: Any) -> bytes:
    """JCS-style canonical JSON of a value made of None, bool, int, str, lists and dicts."""
    parts: list[str] = []
    _write(_freeze(value, "value"), parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        raise EntryError("value", "string is not valid Unicode (lone surrogate)") from None


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            out.append("," if i else "")
            out.append(json.dumps(key, ensure_ascii=False) + ":")
            _write(value[key], out)
        out.append("}")
    else:
        out.append("[")
        for i, item in enumerate(value):
            out.append("," if i else "")
            _write(item, out)
        out.append("]")


def encode_event(event: AuditEvent) -> bytes:
    """The canonical bytes of ``event`` (the Merkle leaf data)."""
    data = canonical_json(
        {
            "v": ENTRY_VERSION,
            "type": event.type.value,
            "actor": event.actor,
            "time": format_time(event.time),
            "subjects": list(event.subjects),
            "details": event.details,
        }
    )
    if len(data) > MAX_ENTRY_BYTES:
        raise EntryError("details", f"entry is {len(data)} bytes, limit {MAX_ENTRY_BYTES}")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise EntryError("details", "duplicate object key")
    return result


def _reject_number(text: str) -> Any:
    raise EntryError("details", f"non-integer number {text!r}")


def decode_event(data: bytes) -> AuditEvent:
    """Parse and validate canonical entry bytes; anything else is :class:`EntryError`."""
    if len(data) > MAX_ENTRY_BYTES:
        raise EntryError("data", f"entry is {len(data)} bytes, limit {MAX_ENTRY_BYTES}")
    try:
        obj = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_float=_reject_number,
            parse_constant=_reject_number,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, EntryError):
            raise
        raise EntryError("data", f"not UTF-8 JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.keys() != _FIELDS:
        raise EntryError("data", f"must be an object with exactly the fields {sorted(_FIELDS)}")
    if type(obj["v"]) is not int or obj["v"] != ENTRY_VERSION:
        raise EntryError("v", f"unsupported entry version {obj['v']!r}")
    time_text = obj["time"]
    if not isinstance(time_text, str) or not _TIME.fullmatch(time_text):
        raise EntryError("time", "must be YYYY-MM-DDTHH:MM:SS.mmmZ")
    try:
        moment = datetime.strptime(time_text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise EntryError("time", f"not a valid date and time: {time_text}") from None
    if not isinstance(obj["subjects"], list):
        raise EntryError("subjects", "must be a list")
    if not isinstance(obj["details"], dict):
        raise EntryError("details", "must be an object")
    event = AuditEvent(obj["type"], obj["actor"], moment, tuple(obj["subjects"]), obj["details"])
    if encode_event(event) != data:
        raise EntryError("data", "not in canonical form (key order, spacing or escaping)")
    return event
