"""Canonical encoding of audit events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lerec.hub.audit.entries import (
    MAX_ENTRY_BYTES,
    AuditEvent,
    EventType,
    canonical_json,
    decode_event,
    encode_event,
)
from lerec.hub.audit.errors import AuditError, EntryError
from lerec.hub.audit.merkle import hash_leaf

BEIJING = timezone(timedelta(hours=8))
WHEN = datetime(2024, 5, 1, 16, 30, 0, 123456, tzinfo=BEIJING)


def _event(**changes: object) -> AuditEvent:
    fields: dict[str, object] = {
        "type": EventType.VIEW,
        "actor": "user:alice",
        "time": WHEN,
        "subjects": ("case:2024-17", "clip:ab12"),
        "details": {"reason": "review", "scope": ["video"], "count": 2},
    }
    fields.update(changes)
    return AuditEvent(**fields)  # type: ignore[arg-type]


def test_golden_encoding() -> None:
    assert encode_event(_event()) == (
        b'{"actor":"user:alice","details":{"count":2,"reason":"review","scope":["video"]},'
        b'"subjects":["case:2024-17","clip:ab12"],"time":"2024-05-01T08:30:00.123Z",'
        b'"type":"view","v":1}'
    )
    assert _event().leaf_hash() == hash_leaf(_event().encode())


def test_time_is_utc_milliseconds() -> None:
    event = _event()
    assert event.time == datetime(2024, 5, 1, 8, 30, 0, 123000, tzinfo=UTC)
    early = _event(time=datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert b'"time":"0999-01-02T03:04:05.000Z"' in early.encode()
    assert decode_event(early.encode()) == early
    with pytest.raises(EntryError):
        _event(time=datetime(2024, 5, 1))  # naive


def test_rfc8785_string_and_key_rules() -> None:
    # keys sort by UTF-16 code units: U+E000 (one unit) sorts after U+1F600 (surrogate pair D83D)
    value = {"\ue000": 1, "\U0001f600": 2, "b": '\u2028\x7f\x1f"\\\n', "a": [True, False, None]}
    assert (
        canonical_json(value)
        == (
            '{"a":[true,false,null],"b":"\u2028\x7f\\u001f\\"\\\\\\n","\U0001f600":2,"\ue000":1}'
        ).encode()
    )


@pytest.mark.parametrize(
    "details",
    [
        {"x": 1.5},
        {"x": 2**53},
        {"x": float("nan")},
        {1: "int key"},
        {"x": object()},
        {"x": b"bytes"},
        {"x": "\ud800"},  # lone surrogate
    ],
)
def test_bad_details_rejected(details: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(EntryError):
        _event(details=details).encode()


@pytest.mark.parametrize(
    "change",
    [
        {"type": "coffee_break"},
        {"actor": ""},
        {"actor": "bad\nactor"},
        {"actor": 7},
        {"subjects": "case:1"},
        {"subjects": ("",)},
        {"details": ["not", "a", "dict"]},
    ],
)
def test_bad_fields_rejected(change: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(EntryError) as info:
        _event(**change)
    assert isinstance(info.value, AuditError) and isinstance(info.value, ValueError)
    assert info.value.field in change


def test_oversized_entry_rejected() -> None:
    with pytest.raises(EntryError):
        _event(details={"blob": "x" * MAX_ENTRY_BYTES}).encode()
    with pytest.raises(EntryError):
        decode_event(b" " * (MAX_ENTRY_BYTES + 1))


GOOD = encode_event(_event())


@pytest.mark.parametrize(
    "data",
    [
        GOOD.replace(b'"v":1', b'"v":2'),
        GOOD.replace(b'"v":1', b'"v":true'),
        GOOD.replace(b'"type":"view"', b'"type":"VIEW"'),
        GOOD.replace(b"08:30:00.123Z", b"08:30:00.123+00:00"),
        GOOD.replace(b"08:30:00.123Z", b"08:30:00Z"),
        GOOD.replace(b"2024-05-01", b"2024-02-30"),
        GOOD.replace(b'"count":2', b'"count":2.0'),
        GOOD.replace(b'"count":2', b'"count":-0'),
        GOOD.replace(b'"count":2', b'"count":NaN'),
        GOOD.replace(b'"count":2', b'"count":2,"count":2'),
        GOOD.replace(b',"v":1}', b"}"),
        GOOD.replace(b',"v":1}', b',"v":1,"extra":0}'),
        GOOD.replace(b'{"actor"', b'{ "actor"'),
        GOOD.replace(b'"reason":"review"', b'"reason":"\\u0072eview"'),
        json.dumps(json.loads(GOOD)).encode(),  # spaces after separators
        json.dumps(json.loads(GOOD), sort_keys=False).encode()[::-1],
        GOOD + b"\n",
        b"\xff" + GOOD,
        b"[]",
        b"",
    ],
)
def test_non_canonical_or_invalid_bytes_rejected(data: bytes) -> None:
    with pytest.raises(EntryError):
        decode_event(data)


_json_leaf = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
_label = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=20)
_zones = st.sampled_from([UTC, BEIJING, timezone(timedelta(hours=-5, minutes=-30))])


@given(
    st.sampled_from(list(EventType)),
    _label,
    st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1), timezones=_zones),
    st.lists(_label, max_size=4),
    st.dictionaries(st.text(max_size=6), _json, max_size=4),
)
def test_round_trip_is_exact(
    kind: EventType,
    actor: str,
    when: datetime,
    subjects: list[str],
    details: dict,  # type: ignore[type-arg]
) -> None:
    event = AuditEvent(kind, actor, when, tuple(subjects), details)
    data = encode_event(event)
    again = decode_event(data)
    assert again == event and encode_event(again) == data
    assert again.time.tzinfo is UTC and again.time == when.replace(
        microsecond=when.microsecond // 1000 * 1000
    )
    json.loads(data)  # and it is plain JSON for any other tool
