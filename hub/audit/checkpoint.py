"""C2SP tlog checkpoints (https://c2sp.org/tlog-checkpoint) signed as C2SP signed notes.

Body::

    <origin>\\n
    <tree size, decimal, no leading zeros>\\n
    <base64 root hash>\\n
    [<extension line>\\n ...]

The hub signs its checkpoint with its note key; a verifier holding only the hub's
:class:`~lerec.hub.audit.note.VerifierKey` string and the log's origin checks it offline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import MalformedNoteError, OriginMismatchError
from .merkle import HASH_SIZE, TreeHead
from .note import (
    SignerKey,
    VerifierKey,
    b64decode_strict,
    b64encode,
    parse_note,
    sign_note,
    verify_note,
)

MAX_TREE_SIZE = 2**64 - 1
_DECIMAL = re.compile("0|[1-9][0-9]*")
_CONTROL = re.compile("[\x00-\x1f]")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Origin, tree size, root hash and optional extension lines of a log checkpoint."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or _CONTROL.search(self.origin):
            raise MalformedNoteError("origin must be a non-empty line", 1)
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise MalformedNoteError("tree size must be an integer in [0, 2**64)", 2)
        if len(self.root_hash) != HASH_SIZE:
            raise MalformedNoteError(f"root hash must be {HASH_SIZE} bytes", 3)
        for i, ext in enumerate(self.extensions, start=4):
            if not ext or _CONTROL.search(ext):
                raise MalformedNoteError("extension lines must be non-empty single lines", i)

    @classmethod
    def from_head(cls, origin: str, head: TreeHead, extensions: tuple[str, ...] = ()) -> Checkpoint:
        return cls(origin, head.size, head.root, extensions)

    @property
    def head(self) -> TreeHead:
        return TreeHead(self.size, self.root_hash)

    def body(self) -> str:
        """The note text: three lines plus the extension lines, each newline-terminated."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body strictly (see the module docstring)."""
        if not text.endswith("\n"):
            raise MalformedNoteError("checkpoint must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedNoteError("checkpoint needs origin, size and root hash lines")
        origin, size_text, hash_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise MalformedNoteError("tree size must be decimal without leading zeros", 2)
        root_hash = b64decode_strict(hash_text)
        if root_hash is None:
            raise MalformedNoteError("root hash must be canonical base64", 3)
        return cls(origin, int(size_text), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: SignerKey, *cosigners: SignerKey) -> bytes:
    """The signed note for ``checkpoint``, signed by ``signer`` first, then any cosigners."""
    return sign_note(checkpoint.body(), signer, *cosigners)


def verify_checkpoint(message: bytes, origin: str, verifier: VerifierKey) -> Checkpoint:
    """Verify a signed checkpoint of log ``origin`` against the log's ``verifier`` key.

    Raises :class:`~lerec.hub.audit.errors.MalformedNoteError`,
    :class:`~lerec.hub.audit.errors.SignatureError` or
    :class:`~lerec.hub.audit.errors.OriginMismatchError` (all ``CheckpointError``).
    """
    note = verify_note(message, verifier)
    checkpoint = Checkpoint.parse_body(note.text)
    if checkpoint.origin != origin:
        raise OriginMismatchError(origin, checkpoint.origin)
    return checkpoint


def read_checkpoint_unverified(message: bytes) -> Checkpoint:
    """Parse a signed checkpoint without checking any signature (for display and triage only)."""
    return Checkpoint.parse_body(parse_note(message).text)
