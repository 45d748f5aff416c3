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


class BlobLayout:
    """Fast strict decoding of the one kind of map that carries bulk data.

    A chunk message is a canonical map whose first entries are always the same (``fixed``,
    e.g. ``{"t": "chunk", "v": 1}``), then the byte string under ``key`` (256 KiB), then
    ``total`` minus those entries of small fields. :meth:`decode` takes the byte string
    without a copy from a ``memoryview`` (with one copy otherwise) and proves canonical form
    without re-encoding it: the exact fixed prefix, the shortest
    length header, and a rest that :func:`decode` accepts as a canonical map whose keys all sort
    after ``key``. It returns None for anything else, and the caller then uses :func:`decode`,
    which gives the authoritative answer (and the precise error): the fast path never accepts
    what :func:`decode` would refuse, nor decodes anything differently.
    """

    def __init__(self, fixed: dict[str, Any], key: str, total: int) -> None:
        keys = sorted([*fixed, key], key=_canonical_key)
        if keys[-1] != key or not len(fixed) < total < 24:
            raise ValueError("the fixed entries must sort before the blob's key")
        self.fixed = dict(fixed)
        self.key = key
        self._key_order = _canonical_key(key)
        self.rest = total - len(fixed) - 1
        self.head = bytes([0xA0 | total]) + encode(self.fixed)[1:] + encode({key: b""})[1:-1]
        self._rest_header = bytes([0xA0 | self.rest])

    def decode(self, data: bytes | bytearray | memoryview,
               *, limit: int = MAX_MESSAGE_BYTES) -> dict[str, Any] | None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            return None
        if len(data) > limit:
            raise SizeError(len(data), limit)
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            return None
        n, pos = len(view), len(self.head)
        if n <= pos or view[:pos] != self.head:
            return None
        ib = view[pos]
        if ib >> 5 != 2:  # not a byte string
            return None
        ai = ib & 0x1F
        if ai < 24:
            size, pos = ai, pos + 1
        elif ai <= 26:
            width = 1 << (ai - 24)  # 1, 2 or 4 length bytes
            size = int.from_bytes(view[pos + 1:pos + 1 + width], "big")
            if size < (24, 256, 65536)[ai - 24]:
                return None  # a longer length header than needed: not canonical
            pos += 1 + width
        else:
            return None
        end = pos + size
        if end > n:
            return None
        try:
            rest = decode(self._rest_header + bytes(view[end:]), limit=limit)
        except DecodeError:
            return None
        if len(rest) != self.rest or any(_canonical_key(k) <= self._key_order for k in rest):
            return None
        rest.update(self.fixed)
        # A view in, a view out: the byte string is not copied out of a message the caller
        # handed over as a memoryview (the hub's receive buffer; nothing writes to it again).
        blob = view[pos:end]
        rest[self.key] = blob.toreadonly() if isinstance(data, memoryview) else blob.tobytes()
        return rest


def _canonical_key(k: str) -> tuple[int, bytes]:
    """Sort key of a text map key in canonical CBOR (length first, then bytewise)."""
    b = k.encode()
    return len(b), b


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
