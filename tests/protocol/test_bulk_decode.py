"""The chunk fast path (``encoding.BlobLayout``) never disagrees with the general strict
decoder: it either decodes exactly what ``encoding.decode`` decodes or declines (None) and
leaves the verdict to it."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lerec.protocol import Chunk, ProtocolError, decode_message, encode_message
from lerec.protocol import encoding
from lerec.protocol.codec import _bulk_layout

from .strategies import chunks

LAYOUT = _bulk_layout(Chunk)


def general(wire: bytes) -> object:
    """What the strict decoder alone makes of ``wire``: the map, or the error's type."""
    try:
        return encoding.decode(wire)
    except ProtocolError as exc:
        return type(exc)


def outcome(fn, wire) -> object:
    try:
        return fn(wire)
    except ProtocolError as exc:
        return type(exc)


def check(wire: bytes) -> None:
    fast = outcome(LAYOUT.decode, wire)
    want = general(wire)
    if isinstance(fast, dict):
        assert fast == want, "the fast path decoded what the strict decoder would not"
    elif fast is not None:  # only the size limit is raised by the fast path itself
        assert fast is want
    # and the public entry point agrees with decoding by the general path
    via_fast = outcome(lambda w: decode_message(w, Chunk), wire)
    slow = want if not isinstance(want, dict) else outcome(
        lambda m: Chunk.from_map({k: v for k, v in m.items() if k not in ("t", "v")})
        if m.get("t") == "chunk" and m.get("v") == 1 else None, want)
    if isinstance(via_fast, type) and isinstance(slow, type):
        return  # both refused (the message may differ: type or schema error first)
    if slow is None:
        assert isinstance(via_fast, type)
        return
    assert via_fast == slow


def test_valid_chunks_take_the_fast_path():
    for size in (0, 1, 23, 24, 255, 256, 65535, 65536, 256 * 1024):
        c = Chunk("rec-a", "seg-1", size, bytes(32), bytes(range(256)) * (size // 256)
                  + bytes(size % 256))
        wire = encode_message(c)
        assert LAYOUT.decode(wire) == general(wire)
        assert LAYOUT.decode(memoryview(wire)) == general(wire)
        assert decode_message(memoryview(bytearray(wire)), Chunk) == c


@settings(max_examples=300, deadline=None)
@given(chunks, st.data())
def test_any_mutation_gets_the_same_verdict(chunk, data):
    wire = bytearray(encode_message(chunk))
    kind = data.draw(st.sampled_from(["flip", "cut", "insert", "delete", "append"]))
    at = data.draw(st.integers(0, len(wire) - 1))
    if kind == "flip":
        wire[at] ^= data.draw(st.integers(1, 255))
    elif kind == "cut":
        del wire[at:]
    elif kind == "insert":
        wire[at:at] = data.draw(st.binary(min_size=1, max_size=9))
    elif kind == "delete":
        del wire[at:at + data.draw(st.integers(1, 9))]
    else:
        wire += data.draw(st.binary(min_size=1, max_size=9))
    check(bytes(wire))


def _map(**changes):
    m = {"v": 1, "t": "chunk", "device_id": "rec-a", "segment_id": "seg-1", "index": 3,
         "sha256": bytes(32), "data": b"x" * 300}
    m.update(changes)
    return {k: v for k, v in m.items() if v is not None}


@pytest.mark.parametrize("wire", [
    cbor2.dumps(_map(), canonical=False),                      # insertion order, not canonical
    cbor2.dumps(_map(), canonical=True).replace(b"\x59\x01\x2c", b"\x5a\x00\x00\x01\x2c"),
    cbor2.dumps(_map(extra=1), canonical=True),                # unknown field
    cbor2.dumps(_map(index=None), canonical=True),             # missing field
    cbor2.dumps(_map(a=1), canonical=True),                    # a key sorting before "data"
    cbor2.dumps(_map(index=1.5), canonical=True),              # a float
    cbor2.dumps(_map(index=-1), canonical=True),
    cbor2.dumps(_map(v=2), canonical=True),
    cbor2.dumps(_map(t="want"), canonical=True),
    cbor2.dumps(_map(data="text"), canonical=True),            # text where bytes belong
    cbor2.dumps(_map(), canonical=True) + b"\x00",             # trailing byte
    cbor2.dumps(_map(), canonical=True)[:-1],                  # truncated
], ids=["order", "long-length", "extra", "missing", "early-key", "float", "negative",
        "version", "type", "text-data", "trailing", "truncated"])
def test_crafted_encodings_get_the_same_verdict(wire):
    check(wire)
    if isinstance(general(wire), type):  # not canonical CBOR of allowed types
        assert LAYOUT.decode(wire) is None


def test_the_layout_refuses_a_key_order_it_cannot_prove():
    with pytest.raises(ValueError):
        encoding.BlobLayout({"zzzzzz": 1}, "data", 3)


def test_a_view_in_is_a_view_out_and_encodes_like_bytes():
    """A chunk decoded from a ``memoryview`` (the hub's receive buffer) keeps its data as a
    read-only view of that buffer, not a copy; from ``bytes`` it is ``bytes``. Either way the
    chunk equals and re-encodes to the same message."""
    data = bytes(range(256)) * 1024
    wire = encode_message(Chunk("rec-a", "seg-1", 3, bytes(32), data))
    buf = bytearray(wire)
    c = decode_message(memoryview(buf), Chunk)
    assert isinstance(c.data, memoryview) and c.data.readonly
    assert c.data.obj is buf, "a view of the receive buffer itself"
    assert c == decode_message(wire, Chunk) and isinstance(decode_message(wire, Chunk).data, bytes)
    assert encode_message(c) == wire
    with pytest.raises(ProtocolError):  # a writable view is not taken as a field value
        Chunk("rec-a", "seg-1", 3, bytes(32), memoryview(bytearray(data)))
