"""Canonical CBOR (RFC 8949 section 4.2.1, core deterministic encoding).

Every lerec message is a CBOR map with text keys. Encoding is deterministic, so a signature
covers exactly one byte string per message. Decoding is strict: the input must be the canonical
encoding of a map built only from the types below, with no duplicate keys, no indefinite
lengths, no tags and no trailing bytes. Anything else raises :class:`DecodeError`.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2

from .errors import DecodeError, SizeError

#: Hard ceiling on any encoded message (a 1 MiB chunk plus its header fits).
MAX_MESSAGE_BYTES = 1024 * 1024 + 4096

_ALLOWED = (bool, int, str, bytes, type(None))


def encode(obj: dict[str, Any]) -> bytes:
    """Encode a map canonically."""
    return cbor2.dumps(obj, canonical=True)


def _check_types(value: Any, depth: int = 0) -> None:
    if depth > 8:
        raise DecodeError("nesting too deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise DecodeError("map keys must be text strings")
            _check_types(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_types(item, depth + 1)
    elif not isinstance(value, _ALLOWED):
        raise DecodeError(f"type {type(value).__name__} is not allowed on the wire")


def decode(data: bytes, *, limit: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """Decode canonical CBOR bytes into a map, rejecting anything non-canonical."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("payload must be bytes")
    if len(data) > limit:
        raise SizeError(len(data), limit)
    raw = bytes(data)
    stream = io.BytesIO(raw)
    try:
        decoder = cbor2.CBORDecoder(
            stream, allow_indefinite=False, allow_duplicate_keys=False, max_depth=16
        )
        obj = decoder.decode()
    except Exception as exc:  # cbor2 raises several unrelated types on garbage
        raise DecodeError(f"not valid CBOR: {exc}") from None
    if stream.tell() != len(raw):
        raise DecodeError(f"{len(raw) - stream.tell()} trailing bytes after the message")
    if not isinstance(obj, dict):
        raise DecodeError("top level must be a map")
    _check_types(obj)
    if encode(obj) != raw:
        raise DecodeError("encoding is not canonical")
    return obj
