"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys.

A signed note is UTF-8 text ending in a newline, a blank line, then one or more lines
``— <key name> <base64(4-byte key id || signature)>``. The signature covers the text including
its final newline. The Ed25519 key id is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``.

Keys travel as strings in the format of Go's ``golang.org/x/mod/sumdb/note``:
verifier ``<name>+<hex key id>+<base64(0x01 || public key)>`` and signer
``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>``.

Parsing is strict: invalid UTF-8, control characters, a missing final newline, a signature line
of the wrong shape, non-canonical base64 and more than 100 signatures are all errors. Lines
signed by keys the verifier does not know are ignored, as the specification requires; a line
that claims the verifier's name and key id but does not verify rejects the whole note.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from hashlib import sha256

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import MalformedNoteError, SignatureError, VerifierKeyError

ALG_ED25519 = 0x01
MAX_SIGNATURES = 100
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_KEY_ID_HEX = re.compile("[0-9a-f]{8}")


def b64decode_strict(text: str) -> bytes | None:
    """Standard padded base64, canonical encodings only; ``None`` when not."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def is_valid_key_name(name: str) -> bool:
    """Non-empty, no Unicode space, no ``+``, no control character."""
    return bool(name) and not any(c.isspace() or c == "+" or c < " " for c in name)


def ed25519_key_id(name: str, public_key: bytes) -> bytes:
    """``SHA-256(name || 0x0A || 0x01 || public key)[:4]``."""
    return sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not is_valid_key_name(name):
        raise VerifierKeyError(f"key name {name!r} must be non-empty, without spaces or '+'")


def _split_key(text: str, parts: int) -> list[str]:
    fields = text.split("+", parts - 1)
    if len(fields) != parts:
        raise VerifierKeyError(f"expected {parts} '+'-separated fields")
    return fields


def _decode_key_material(name: str, id_hex: str, material_b64: str) -> tuple[bytes, bytes]:
    _check_name(name)
    if not _KEY_ID_HEX.fullmatch(id_hex):
        raise VerifierKeyError("key id must be 8 lowercase hex digits")
    material = b64decode_strict(material_b64)
    if material is None or len(material) != 33:
        raise VerifierKeyError("key must be canonical base64 of 33 bytes")
    if material[0] != ALG_ED25519:
        raise VerifierKeyError(f"unsupported key algorithm {material[0]:#04x}; only Ed25519")
    return bytes.fromhex(id_hex), material[1:]


@dataclass(frozen=True)
class VerifierKey:
    """An Ed25519 note verifier: key name and 32-byte public key."""

    name: str
    public_key: bytes
    key_id: bytes = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != 32:
            raise VerifierKeyError("Ed25519 public key must be 32 bytes")
        try:
            key = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError as exc:
            raise VerifierKeyError(f"not an Ed25519 public key: {exc}") from None
        object.__setattr__(self, "key_id", ed25519_key_id(self.name, self.public_key))
        object.__setattr__(self, "_key", key)

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Parse ``<name>+<hex key id>+<base64(0x01 || public key)>``; the id must match."""
        name, id_hex, material = _split_key(vkey, 3)
        key_id, public_key = _decode_key_material(name, id_hex, material)
        verifier = cls(name, public_key)
        if verifier.key_id != key_id:
            raise VerifierKeyError(f"key id {id_hex} does not match the key")
        return verifier

    def encode(self) -> str:
        return (
            f"{self.name}+{self.key_id.hex()}+{b64encode(bytes([ALG_ED25519]) + self.public_key)}"
        )

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class SignerKey:
    """An Ed25519 note signer. The seed never appears in ``repr``."""

    __slots__ = ("_private", "_verifier", "name")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._private = private_key
        public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._verifier = VerifierKey(name, public)

    @classmethod
    def generate(cls, name: str) -> SignerKey:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> SignerKey:
        if len(seed) != 32:
            raise VerifierKeyError("Ed25519 seed must be 32 bytes")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def parse(cls, skey: str) -> SignerKey:
        """Parse ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``."""
        private, key, name, id_hex, material = _split_key(skey, 5)
        if (private, key) != ("PRIVATE", "KEY"):
            raise VerifierKeyError("signer key must start with PRIVATE+KEY+")
        key_id, seed = _decode_key_material(name, id_hex, material)
        signer = cls.from_seed(name, seed)
        if signer.key_id != key_id:
            raise VerifierKeyError(f"key id {id_hex} does not match the key")
        return signer

    def encode(self) -> str:
        """The secret key string. Treat it as a secret."""
        seed = self._private.private_bytes_raw()
        material = b64encode(bytes([ALG_ED25519]) + seed)
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{material}"

    @property
    def key_id(self) -> bytes:
        return self._verifier.key_id

    def verifier(self) -> VerifierKey:
        return self._verifier

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"SignerKey({self.name!r}, key_id={self.key_id.hex()})"


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed signed note. ``text`` ends in a newline; signatures are not yet verified."""

    text: str
    signatures: tuple[NoteSignature, ...]


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNoteError("text must end with a newline")
    if _CONTROL.search(text):
        raise MalformedNoteError("text contains a control character")


def sign_note(text: str, *signers: SignerKey) -> bytes:
    """Sign ``text`` (which must end in a newline) with every signer, in order."""
    _check_text(text)
    if "\n\n" in text:
        raise MalformedNoteError("text must not contain a blank line")
    if not 1 <= len(signers) <= MAX_SIGNATURES:
        raise MalformedNoteError(f"a note needs 1 to {MAX_SIGNATURES} signatures")
    message = text.encode("utf-8")
    lines = (NoteSignature(s.name, s.key_id, s.sign(message)).line() for s in signers)
    return (text + "\n" + "".join(lines)).encode("utf-8")


def parse_note(message: bytes) -> Note:
    """Split a signed note into text and signature lines, checking syntax only."""
    try:
        decoded = message.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNoteError("not valid UTF-8") from None
    _check_text(decoded)
    split = decoded.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("no blank line before the signatures")
    text, sig_block = decoded[: split + 1], decoded[split + 2 :]
    if not sig_block:
        raise MalformedNoteError("no signature lines")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"more than {MAX_SIGNATURES} signatures")
    first_line = text.count("\n") + 2
    signatures = tuple(_parse_signature_line(ln, first_line + i) for i, ln in enumerate(lines))
    return Note(text, signatures)


def _parse_signature_line(line: str, line_no: int) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise MalformedNoteError("signature line must start with an em dash and a space", line_no)
    name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space or not is_valid_key_name(name):
        raise MalformedNoteError("bad key name in signature line", line_no)
    raw = b64decode_strict(encoded)
    if raw is None or len(raw) < 5:
        raise MalformedNoteError(
            "signature is not canonical base64 of key id and signature", line_no
        )
    return NoteSignature(name, raw[:4], raw[4:])


def verify_note(message: bytes, verifier: VerifierKey) -> Note:
    """Parse ``message`` and require a valid signature by ``verifier``; return the note.

    Signatures by other keys are ignored. Any line carrying the verifier's name and key id
    must verify, so a bad duplicate cannot ride along with a good signature.
    """
    note = parse_note(message)
    mine = [s for s in note.signatures if (s.name, s.key_id) == (verifier.name, verifier.key_id)]
    if not mine:
        raise SignatureError(
            verifier.name, verifier.key_id, "the note has no signature by this key"
        )
    body = note.text.encode("utf-8")
    for sig in mine:
        if not verifier.verify(body, sig.signature):
            raise SignatureError(verifier.name, verifier.key_id, "signature does not verify")
    return note
