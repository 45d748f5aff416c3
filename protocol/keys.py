"""Parsing the key types lerec uses from PEM bytes (pure: callers read the files)."""

from __future__ import annotations

from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

K = TypeVar("K")


def _expect(key: object, kind: type[K], what: str) -> K:
    if not isinstance(key, kind):
        raise ValueError(f"expected {what}, got {type(key).__name__}")
    return key


def ed25519_private(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    return _expect(key, Ed25519PrivateKey, "an Ed25519 private key")


def ed25519_public(pem: bytes) -> Ed25519PublicKey:
    return _expect(serialization.load_pem_public_key(pem), Ed25519PublicKey, "an Ed25519 public key")


def x25519_private(pem: bytes) -> X25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    return _expect(key, X25519PrivateKey, "an X25519 private key")


def x25519_public(pem: bytes) -> X25519PublicKey:
    return _expect(serialization.load_pem_public_key(pem), X25519PublicKey, "an X25519 public key")


def raw_public(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
