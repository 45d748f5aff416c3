"""Sealing segment chunks to the hub's X25519 key (ChaCha20-Poly1305; fast on a Pi 4,
which has no AES instructions).

For each segment the recorder makes an ephemeral X25519 key pair, derives a one-segment key with
HKDF-SHA256 from the shared secret, seals every chunk with ChaCha20-Poly1305 and then forgets
the private key: after sealing, only the hub can read the segment. The nonce is the chunk index
plus a final-chunk flag and the associated data binds segment id, index and the flag, so chunks
cannot be reordered, swapped between segments or truncated without detection.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import EnvelopeError
from .messages import Encryption

ALG = "x25519-hkdf-sha256-chacha20poly1305"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(*_RAW)


def recipient_id(key: X25519PublicKey) -> bytes:
    """Short identifier of a hub encryption key (lets a hub notice a key mismatch early)."""
    return hashlib.sha256(public_bytes(key)).digest()[:8]


def _derive(shared: bytes, epk: bytes, hub_pub: bytes, segment_id: str) -> ChaCha20Poly1305:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=epk + hub_pub,
        info=b"lerec/v1 segment " + segment_id.encode(),
    ).derive(shared)
    return ChaCha20Poly1305(key)


def _nonce_aad(segment_id: str, index: int, last: bool) -> tuple[bytes, bytes]:
    nonce = index.to_bytes(8, "big") + (b"\x00\x00\x00\x01" if last else bytes(4))
    return nonce, segment_id.encode() + b"\x00" + nonce


class Sealer:
    """Recorder side: seals the chunks of one segment."""

    def __init__(self, hub_public: X25519PublicKey, segment_id: str) -> None:
        ephemeral = X25519PrivateKey.generate()
        epk = public_bytes(ephemeral.public_key())
        hub_pub = public_bytes(hub_public)
        self._aead = _derive(ephemeral.exchange(hub_public), epk, hub_pub, segment_id)
        self._segment_id = segment_id
        self.encryption = Encryption(alg=ALG, epk=epk, recipient=recipient_id(hub_public))

    def seal(self, index: int, plaintext: bytes, last: bool) -> bytes:
        nonce, aad = _nonce_aad(self._segment_id, index, last)
        return self._aead.encrypt(nonce, plaintext, aad)


class Opener:
    """Hub side: opens the chunks of one segment."""

    def __init__(self, hub_private: X25519PrivateKey, enc: Encryption, segment_id: str) -> None:
        hub_pub = public_bytes(hub_private.public_key())
        if enc.alg != ALG:
            raise EnvelopeError(f"unsupported encryption {enc.alg!r}")
        if enc.recipient != recipient_id(hub_private.public_key()):
            raise EnvelopeError("segment was sealed to a different hub key")
        try:
            shared = hub_private.exchange(X25519PublicKey.from_public_bytes(enc.epk))
        except ValueError as exc:
            raise EnvelopeError(f"bad ephemeral key: {exc}") from None
        self._aead = _derive(shared, enc.epk, hub_pub, segment_id)
        self._segment_id = segment_id

    def open(self, index: int, ciphertext: bytes, last: bool) -> bytes:
        nonce, aad = _nonce_aad(self._segment_id, index, last)
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise EnvelopeError(f"chunk {index} does not authenticate (tampered or wrong key)") from None
