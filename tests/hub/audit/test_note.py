"""C2SP signed notes against the published vectors of golang.org/x/mod/sumdb/note.

Vectors: sumdb/note/note_test.go (PeterNeumann, EnochRoot).
"""

from __future__ import annotations

import pytest
from lerec.hub.audit.errors import (
    CheckpointError,
    MalformedNoteError,
    SignatureError,
    VerifierKeyError,
)
from lerec.hub.audit.note import (
    NoteSignature,
    SignerKey,
    VerifierKey,
    ed25519_key_id,
    parse_note,
    sign_note,
    verify_note,
)

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvq"
    "fqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwn"
    "WLox33WWd1RvMc+QQ=\n"
)


def test_verifier_key_vector_round_trips() -> None:
    key = VerifierKey.parse(PETER_VKEY)
    assert key.name == "PeterNeumann"
    assert key.key_id == bytes.fromhex("c74f20a3")
    assert key.key_id == ed25519_key_id(key.name, key.public_key)
    assert key.encode() == PETER_VKEY
    assert VerifierKey.parse(ENOCH_VKEY).encode() == ENOCH_VKEY


def test_signer_key_vector_round_trips_and_matches_verifier() -> None:
    signer = SignerKey.parse(PETER_SKEY)
    assert signer.encode() == PETER_SKEY
    assert signer.verifier() == VerifierKey.parse(PETER_VKEY)
    assert "AYEKF" not in repr(signer)


def test_sign_reproduces_published_note() -> None:
    assert sign_note(TEXT, SignerKey.parse(PETER_SKEY)) == (TEXT + "\n" + PETER_SIG).encode()


def test_open_published_note_with_two_signatures() -> None:
    message = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    note = verify_note(message, VerifierKey.parse(PETER_VKEY))
    assert note.text == TEXT
    assert [s.name for s in note.signatures] == ["PeterNeumann", "EnochRoot"]
    verify_note(message, VerifierKey.parse(ENOCH_VKEY))


def test_vkey_manglings_rejected() -> None:
    """Every proper substring and every single-byte increment is rejected (as in Go)."""
    raw = PETER_VKEY.encode()
    for i in range(len(raw) + 1):
        for j in range(i + 1, len(raw) + 1):
            if (i, j) != (0, len(raw)):
                with pytest.raises(VerifierKeyError):
                    VerifierKey.parse(raw[i:j].decode())
    for i in range(len(raw)):
        mangled = raw[:i] + bytes([raw[i] + 1]) + raw[i + 1 :]
        with pytest.raises(VerifierKeyError):
            VerifierKey.parse(mangled.decode())
    with pytest.raises(VerifierKeyError):  # wrong length key, with adjusted key hash
        VerifierKey.parse(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        )
    with pytest.raises(VerifierKeyError):  # unknown algorithm, with adjusted key hash
        VerifierKey.parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_skey_manglings_rejected() -> None:
    raw = PETER_SKEY.encode()
    for i in range(len(raw)):
        mangled = raw[:i] + bytes([raw[i] + 1]) + raw[i + 1 :]
        with pytest.raises(VerifierKeyError):
            SignerKey.parse(mangled.decode())
    for cut in range(len(raw)):
        with pytest.raises(VerifierKeyError):
            SignerKey.parse(raw[:cut].decode())


@pytest.mark.parametrize(
    "message",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT
        + "\n"
        + "\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG * 101,
    ],
)
def test_malformed_notes_rejected(message: str) -> None:
    with pytest.raises(MalformedNoteError):
        verify_note(message.encode(), VerifierKey.parse(PETER_VKEY))


def test_invalid_utf8_rejected() -> None:
    with pytest.raises(MalformedNoteError):
        parse_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode())


def test_bad_signature_from_known_key_rejects_note() -> None:
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(SignatureError) as info:
        verify_note((TEXT + "\n" + bad).encode(), VerifierKey.parse(PETER_VKEY))
    assert info.value.key_name == "PeterNeumann" and info.value.key_id.hex() == "c74f20a3"
    # a good and a bad line from the same key: still rejected
    with pytest.raises(SignatureError):
        verify_note((TEXT + "\n" + PETER_SIG + bad).encode(), VerifierKey.parse(PETER_VKEY))


def test_unknown_signers_ignored_and_missing_signer_rejected() -> None:
    message = (TEXT + "\n" + ENOCH_SIG).encode()
    with pytest.raises(SignatureError):
        verify_note(message, VerifierKey.parse(PETER_VKEY))
    renamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego")
    with pytest.raises(CheckpointError):
        verify_note((TEXT + "\n" + renamed).encode(), VerifierKey.parse(PETER_VKEY))


def test_sign_rejects_bad_text_and_names() -> None:
    signer = SignerKey.generate("lerec.example/audit")
    for text in ("abc", "a\n\nb\n", "tab\there\n"):
        with pytest.raises(MalformedNoteError):
            sign_note(text, signer)
    with pytest.raises(MalformedNoteError):
        sign_note("no signers\n")
    for name in ("", "a+b", "a b", "tab\t"):
        with pytest.raises(VerifierKeyError):
            SignerKey.generate(name)


def test_generated_key_round_trip() -> None:
    signer = SignerKey.generate("hub.lerec.example/audit")
    verifier = VerifierKey.parse(signer.verifier().encode())
    assert SignerKey.parse(signer.encode()).verifier() == verifier
    note = verify_note(sign_note("hello\n", signer), verifier)
    assert note.signatures[0] == NoteSignature(
        signer.name, signer.key_id, note.signatures[0].signature
    )
