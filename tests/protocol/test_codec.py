"""Round trips, strict decoding and signature checks for every lerec message."""

from __future__ import annotations

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from lerec.protocol import (
    Chunk,
    DecodeError,
    ProtocolError,
    Receipt,
    SchemaError,
    SegmentManifest,
    SignatureError,
    SizeError,
    UnsupportedVersion,
    decode_any,
    decode_message,
    decode_signed,
    encode_message,
    sign_message,
)
from lerec.protocol import encoding

from .strategies import manifests, signed_messages, unsigned_messages

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


@given(unsigned_messages)
def test_unsigned_round_trip(msg):
    wire = encode_message(msg)
    assert decode_message(wire, type(msg)) == msg
    assert decode_any(wire) == msg


@given(signed_messages)
def test_signed_round_trip(msg):
    wire = sign_message(msg, KEY)
    signed = decode_signed(wire, type(msg))
    assert signed.verify(KEY.public_key()) == msg
    assert signed.wire == wire
    with pytest.raises(SignatureError):
        signed.verify(OTHER.public_key())


@settings(max_examples=300)
@given(signed_messages, st.data())
def test_any_mutation_of_a_signed_message_is_rejected(msg, data):
    wire = bytearray(sign_message(msg, KEY))
    pos = data.draw(st.integers(0, len(wire) - 1))
    bit = data.draw(st.integers(0, 7))
    wire[pos] ^= 1 << bit
    with pytest.raises(ProtocolError):
        decode_signed(bytes(wire), type(msg)).verify(KEY.public_key())


@given(signed_messages, st.data())
def test_field_substitution_with_resigned_body_fails_original_key(msg, data):
    """Re-encoding a changed field (canonically) still fails: the signature covers it."""
    m = cbor2.loads(sign_message(msg, KEY))
    name = data.draw(st.sampled_from(sorted(k for k in m if k not in ("v", "t", "sig"))))
    if isinstance(m[name], bool):
        m[name] = not m[name]
    elif isinstance(m[name], int):
        m[name] = m[name] + 1 if m[name] < 2**31 else m[name] - 1
    elif isinstance(m[name], bytes) and m[name]:
        m[name] = bytes([m[name][0] ^ 1]) + m[name][1:]
    elif isinstance(m[name], str):
        m[name] = m[name] + "x" if len(m[name]) < 20 else m[name][:-1]
    else:
        return
    wire = encoding.encode(m)
    with pytest.raises(ProtocolError):
        decode_signed(wire, type(msg)).verify(KEY.public_key())


def _chunk_map() -> dict:
    return cbor2.loads(encode_message(Chunk("rec-1", "seg-1", 0, bytes(32), b"data")))


@pytest.mark.parametrize(
    "mutate, error",
    [
        (lambda m: m.update(v=2), UnsupportedVersion),
        (lambda m: m.pop("v"), SchemaError),
        (lambda m: m.update(t="bogus"), SchemaError),
        (lambda m: m.pop("index"), SchemaError),
        (lambda m: m.update(extra=1), SchemaError),
        (lambda m: m.update(index=-1), SchemaError),
        (lambda m: m.update(index="0"), SchemaError),
        (lambda m: m.update(sha256=b"short"), SchemaError),
        (lambda m: m.update(device_id="Rec/1"), SchemaError),
        (lambda m: m.update(data=b"x" * (1024 * 1024 + 17)), SchemaError),
        (lambda m: m.update(index=1.5), DecodeError),
    ],
    ids=["version", "no-version", "type", "missing", "extra", "range", "type-mismatch",
         "hash-size", "bad-id", "oversize-chunk", "float"],
)
def test_strict_decoder_rejects(mutate, error):
    m = _chunk_map()
    mutate(m)
    with pytest.raises(error):
        decode_message(cbor2.dumps(m, canonical=True), Chunk)


def test_truncated_and_garbage_payloads():
    wire = encode_message(Chunk("rec-1", "seg-1", 0, bytes(32), b"data"))
    for cut in range(len(wire)):
        with pytest.raises(DecodeError):
            decode_message(wire[:cut], Chunk)
    with pytest.raises(DecodeError):
        decode_message(wire + b"\x00", Chunk)
    with pytest.raises(DecodeError):
        decode_message(b"\xff\xfe not cbor", Chunk)
    with pytest.raises(DecodeError):
        decode_message(cbor2.dumps([1, 2, 3]), Chunk)


def test_non_canonical_encoding_rejected():
    m = _chunk_map()
    noncanonical = cbor2.dumps(dict(reversed(list(m.items()))), canonical=False)
    assert noncanonical != encoding.encode(m)
    with pytest.raises(DecodeError, match="canonical"):
        decode_message(noncanonical, Chunk)


def test_oversize_payload_rejected_before_parsing():
    with pytest.raises(SizeError):
        decode_message(b"\x00" * (encoding.MAX_MESSAGE_BYTES + 1), Chunk)


def test_wrong_message_type_for_topic():
    wire = sign_message(
        Receipt("hub", "rec-1", "s", 0, bytes(32), 0, bytes(32), 0, "x"), KEY
    )
    with pytest.raises(DecodeError):
        decode_signed(wire, SegmentManifest)


def test_signature_is_domain_separated():
    """A signature made over one message type does not verify as another."""
    receipt = sign_message(Receipt("hub", "rec-1", "s", 0, bytes(32), 0, bytes(32), 0, "x"), KEY)
    m = cbor2.loads(receipt)
    m["t"] = "heartbeat"
    with pytest.raises(ProtocolError):
        decode_signed(encoding.encode(m), SegmentManifest)


@given(manifests())
def test_manifest_chunk_geometry(m):
    total = sum(m.chunk_plain_length(i) for i in range(m.chunk_count))
    assert total == m.length or (m.length == 0 and total == 0)
