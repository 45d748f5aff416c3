"""Errors of the audit log core.

One root, :class:`AuditError`; every subclass is also the builtin a caller would expect
(``ValueError`` for bad input, ``IndexError`` for a request outside the tree) and carries the
data that explains it, so a caller can log or show it without parsing the message.
"""

from __future__ import annotations


class AuditError(Exception):
    """Root of every error raised by ``lerec.hub.audit``."""


# --- Merkle tree -------------------------------------------------------------------------------


class TreeRangeError(AuditError, IndexError):
    """A proof or root was requested for a leaf or tree size the store does not hold."""

    def __init__(self, what: str, value: int, limit: int) -> None:
        self.what = what
        self.value = value
        self.limit = limit
        super().__init__(
            f"{what} {value} is out of range (limit {limit}); "
            "ask for a size the log has already reached"
        )


class ProofError(AuditError, ValueError):
    """A Merkle proof failed to verify. ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class InclusionProofError(ProofError):
    """An inclusion proof does not prove leaf ``leaf_index`` in a tree of ``tree_size``."""

    def __init__(self, leaf_index: int, tree_size: int, reason: str) -> None:
        self.leaf_index = leaf_index
        self.tree_size = tree_size
        super().__init__(
            f"inclusion proof for leaf {leaf_index} in tree of size {tree_size} rejected: {reason}"
        )
        self.reason = reason


class ConsistencyProofError(ProofError):
    """A consistency proof does not prove tree ``first_size`` a prefix of ``second_size``."""

    def __init__(self, first_size: int, second_size: int, reason: str) -> None:
        self.first_size = first_size
        self.second_size = second_size
        super().__init__(
            f"consistency proof from size {first_size} to size {second_size} rejected: {reason}"
        )
        self.reason = reason


# --- Signed notes and checkpoints --------------------------------------------------------------


class VerifierKeyError(AuditError, ValueError):
    """A verifier or signer key string or key material is malformed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"bad note key: {reason}")


class CheckpointError(AuditError, ValueError):
    """Root of checkpoint and signed-note errors. ``reason`` says what was wrong."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class MalformedNoteError(CheckpointError):
    """The signed note or the checkpoint body breaks the C2SP syntax (``line`` is 1-based or 0)."""

    def __init__(self, reason: str, line: int = 0) -> None:
        self.line = line
        where = f" (line {line})" if line else ""
        super().__init__(f"malformed signed note or checkpoint{where}: {reason}")
        self.reason = reason


class SignatureError(CheckpointError):
    """A signature by the trusted key is missing or does not verify."""

    def __init__(self, key_name: str, key_id: bytes, reason: str) -> None:
        self.key_name = key_name
        self.key_id = key_id
        super().__init__(f"signature by {key_name}+{key_id.hex()} rejected: {reason}")
        self.reason = reason


class OriginMismatchError(CheckpointError):
    """The checkpoint names a different log than the one the verifier expects."""

    def __init__(self, expected: str, found: str) -> None:
        self.expected = expected
        self.found = found
        super().__init__(
            f"checkpoint is for log {found!r}, expected {expected!r}; "
            "check that the verifier is configured for this log"
        )
        self.reason = "origin mismatch"


# --- Audit entries -----------------------------------------------------------------------------


class EntryError(AuditError, ValueError):
    """An audit entry cannot be encoded or decoded. ``field`` names the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"bad audit entry field {field!r}: {reason}")
