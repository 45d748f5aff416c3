"""Checkpoints: a real published sum.golang.org checkpoint, round trips and tamper rejection."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lerec.hub.audit.checkpoint import (
    Checkpoint,
    read_checkpoint_unverified,
    sign_checkpoint,
    verify_checkpoint,
)
from lerec.hub.audit.compact import MemoryLeafStore
from lerec.hub.audit.errors import (
    CheckpointError,
    MalformedNoteError,
    OriginMismatchError,
    SignatureError,
)
from lerec.hub.audit.merkle import TreeHead, tree_root
from lerec.hub.audit.note import SignerKey, VerifierKey

# Published in transparency-dev/formats log/note_test.go (TestSumDBNoteParsing).
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_CHECKPOINT = (
    "go.sum database tree\n"
    "6476701\n"
    "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n"
    "\n"
    "\u2014 sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfv"
    "imWEPWL+o3GeoWwOoAw=\n"
).encode()

ORIGIN = "hub.lerec.example/audit"
SIGNER = SignerKey.from_seed(ORIGIN, bytes(range(32)))
VERIFIER = SIGNER.verifier()


def _checkpoint(size: int = 5, extensions: tuple[str, ...] = ()) -> Checkpoint:
    store = MemoryLeafStore(bytes([i]) for i in range(size))
    return Checkpoint(ORIGIN, size, tree_root(store), extensions)


def test_published_sumdb_checkpoint_verifies() -> None:
    cp = verify_checkpoint(SUMDB_CHECKPOINT, "go.sum database tree", VerifierKey.parse(SUMDB_VKEY))
    assert cp.size == 6476701
    assert cp.root_hash == base64.b64decode("mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=")
    assert cp.extensions == ()


def test_published_sumdb_checkpoint_wrong_origin() -> None:
    with pytest.raises(OriginMismatchError) as info:
        verify_checkpoint(SUMDB_CHECKPOINT, "Go rocks", VerifierKey.parse(SUMDB_VKEY))
    assert info.value.found == "go.sum database tree" and info.value.expected == "Go rocks"


def test_body_format() -> None:
    cp = Checkpoint("Log", 123, b"\x00" * 32, ("ext one", "ext two"))
    assert cp.body() == "Log\n123\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next one\next two\n"
    assert Checkpoint.parse_body(cp.body()) == cp
    assert cp.head == TreeHead(123, b"\x00" * 32)


@pytest.mark.parametrize(
    "body",
    [
        "Head\n9944\n",
        "\n9944\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "Log\n123\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "Log\nbananas\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "Log\n-34\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "Log\n034\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "Log\n+34\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "Log\n\u0663\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  # Arabic-Indic digit
        "Log\n3438945738945739845734895735\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "Log\n123\nThisIsn'tBase64\n",
        "Log\n123\nYmFuYW5hcw==\n",  # valid base64, but not 32 bytes
        "Log\n123\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n",  # non-canonical base64
        "Log\n123\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n",  # empty extension line
    ],
)
def test_bad_bodies_rejected(body: str) -> None:
    with pytest.raises(MalformedNoteError):
        Checkpoint.parse_body(body)


def test_constructor_validates() -> None:
    for args in (("", 1, b"\x00" * 32), ("a\nb", 1, b"\x00" * 32), ("o", -1, b"\x00" * 32),
                 ("o", 2**64, b"\x00" * 32), ("o", 1, b"\x00" * 31)):  # fmt: skip
        with pytest.raises(CheckpointError):
            Checkpoint(*args)
    with pytest.raises(CheckpointError):
        Checkpoint("o", 1, b"\x00" * 32, ("",))


def test_round_trip_and_wrong_key() -> None:
    cp = _checkpoint(6, ("timestamp 1714552200123",))
    message = sign_checkpoint(cp, SIGNER)
    assert verify_checkpoint(message, ORIGIN, VERIFIER) == cp
    assert read_checkpoint_unverified(message) == cp
    other = SignerKey.generate(ORIGIN)  # same name, different key: different key id
    with pytest.raises(SignatureError):
        verify_checkpoint(message, ORIGIN, other.verifier())
    with pytest.raises(OriginMismatchError):
        verify_checkpoint(message, ORIGIN + "2", VERIFIER)


def test_cosigned_checkpoint_verifies_for_each_signer() -> None:
    witness = SignerKey.generate("witness.example")
    message = sign_checkpoint(_checkpoint(), SIGNER, witness)
    assert verify_checkpoint(message, ORIGIN, VERIFIER) == _checkpoint()
    assert verify_checkpoint(message, ORIGIN, witness.verifier()) == _checkpoint()


_MESSAGE = sign_checkpoint(_checkpoint(9, ("extension",)), SIGNER)


@settings(max_examples=300)
@given(st.integers(0, len(_MESSAGE) - 1), st.integers(1, 255))
def test_every_byte_tamper_rejected(position: int, xor: int) -> None:
    tampered = bytearray(_MESSAGE)
    tampered[position] ^= xor
    with pytest.raises(CheckpointError):
        verify_checkpoint(bytes(tampered), ORIGIN, VERIFIER)


def test_every_single_bit_flip_rejected_exhaustively() -> None:
    for position in range(len(_MESSAGE)):
        for bit in range(8):
            tampered = bytearray(_MESSAGE)
            tampered[position] ^= 1 << bit
            with pytest.raises(CheckpointError):
                verify_checkpoint(bytes(tampered), ORIGIN, VERIFIER)


@given(st.integers(0, len(_MESSAGE)), st.binary(min_size=1, max_size=3))
def test_insertions_and_truncations_rejected(position: int, extra: bytes) -> None:
    with pytest.raises(CheckpointError):
        verify_checkpoint(_MESSAGE[:position] + extra + _MESSAGE[position:], ORIGIN, VERIFIER)
    if position < len(_MESSAGE):
        with pytest.raises(CheckpointError):
            verify_checkpoint(_MESSAGE[:position], ORIGIN, VERIFIER)


@given(
    st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=30),
    st.integers(0, 2**64 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1), max_size=3
    ),
)
def test_any_valid_checkpoint_round_trips(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert verify_checkpoint(sign_checkpoint(cp, SIGNER), origin, VERIFIER) == cp
