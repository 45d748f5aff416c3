"""Encoding, signing, decoding and verifying lerec messages.

Wire form: a canonical CBOR map ``{"v": 1, "t": <type>, <fields...>}``; signed types also carry
``"sig"``, an Ed25519 signature over ``DOMAIN || type || 0x0A || canonical map without "sig"``.
The domain prefix keeps a signature on one message type from being valid on another.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import encoding
from .errors import DecodeError, SchemaError, SignatureError, UnsupportedVersion
from .messages import MESSAGE_TYPES, PROTOCOL_VERSION, Message

DOMAIN = b"lerec/v1 signed "
SIGNATURE_BYTES = 64

M = TypeVar("M", bound=Message)


def _signing_input(type_name: str, body: dict[str, Any]) -> bytes:
    return DOMAIN + type_name.encode() + b"\n" + encoding.encode(body)


def _body(msg: Message) -> dict[str, Any]:
    body = msg.to_map()
    body["v"] = PROTOCOL_VERSION
    body["t"] = msg.TYPE
    return body


def encode_message(msg: Message) -> bytes:
    """Encode an unsigned message."""
    if msg.SIGNED:
        raise TypeError(f"{msg.TYPE} messages must be signed; use sign_message()")
    return encoding.encode(_body(msg))


def sign_message(msg: Message, key: Ed25519PrivateKey) -> bytes:
    """Encode and sign a message that requires a signature."""
    if not msg.SIGNED:
        raise TypeError(f"{msg.TYPE} messages are not signed")
    body = _body(msg)
    body["sig"] = key.sign(_signing_input(msg.TYPE, body))
    return encoding.encode(body)


@dataclass(frozen=True)
class Signed(Generic[M]):
    """A decoded signed message whose signature has not necessarily been checked yet."""

    message: M
    signature: bytes
    signing_input: bytes
    wire: bytes

    @property
    def digest(self) -> bytes:
        """SHA-256 of the exact wire bytes (what hash chains and receipts refer to)."""
        return hashlib.sha256(self.wire).digest()

    def verify(self, public_key: Ed25519PublicKey) -> M:
        """Return the message if the signature verifies under ``public_key``."""
        try:
            public_key.verify(self.signature, self.signing_input)
        except InvalidSignature:
            raise SignatureError(
                f"{self.message.TYPE} signature does not verify with the enrolled key"
            ) from None
        return self.message


def _parse(data: bytes) -> tuple[type[Message], dict[str, Any]]:
    m = encoding.decode(data)
    version = m.pop("v", None)
    if version is None:
        raise SchemaError("v", "missing field")
    if version != PROTOCOL_VERSION:
        raise UnsupportedVersion(version)
    type_name = m.pop("t", None)
    cls = MESSAGE_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise SchemaError("t", f"unknown message type {type_name!r}")
    return cls, m


def _build(cls: type[M], m: dict[str, Any], data: bytes) -> M | Signed[M]:
    if not cls.SIGNED:
        return cls.from_map(m)
    sig = m.pop("sig", None)
    if not isinstance(sig, bytes) or len(sig) != SIGNATURE_BYTES:
        raise SchemaError("sig", "missing or malformed signature")
    msg = cls.from_map(m)
    body = dict(m, v=PROTOCOL_VERSION, t=cls.TYPE)
    return Signed(msg, sig, _signing_input(cls.TYPE, body), bytes(data))


def decode_any(data: bytes) -> Message | Signed[Message]:
    """Decode any lerec message; signed ones come back wrapped in :class:`Signed`."""
    cls, m = _parse(data)
    return _build(cls, m, data)


#: Unsigned message types that carry bulk data, and the field that holds it.
_BULK_FIELD = {"chunk": "data"}


@functools.cache
def _bulk_layout(cls: type[Message]) -> encoding.BlobLayout | None:
    key = _BULK_FIELD.get(cls.TYPE)
    if key is None:
        return None
    total = len(dataclasses.fields(cls)) + 2  # with "v" and "t"
    return encoding.BlobLayout({"t": cls.TYPE, "v": PROTOCOL_VERSION}, key, total)


def decode_message(data: bytes | bytearray | memoryview, cls: type[M]) -> M:
    """Decode an unsigned message that must be of type ``cls``."""
    if cls.SIGNED:
        raise TypeError(f"{cls.TYPE} is signed; use decode_signed()")
    layout = _bulk_layout(cls)
    if layout is not None:
        m = layout.decode(data)  # a chunk: its 256 KiB not copied (or once), not re-encoded
        if m is not None:
            del m["t"], m["v"]
            return cls.from_map(m)
    got, m = _parse(data)
    if got is not cls:
        raise DecodeError(f"expected a {cls.TYPE} message, got {got.TYPE}")
    return cls.from_map(m)


def decode_signed(data: bytes, cls: type[M]) -> Signed[M]:
    """Decode a signed message of type ``cls``; call ``.verify(key)`` before trusting it."""
    if not cls.SIGNED:
        raise TypeError(f"{cls.TYPE} is not signed; use decode_message()")
    got, m = _parse(data)
    if got is not cls:
        raise DecodeError(f"expected a {cls.TYPE} message, got {got.TYPE}")
    result = _build(cls, m, data)
    assert isinstance(result, Signed)
    return result


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
