"""The tamper-evident audit log core: pure, IO-free.

- ``merkle``: RFC 9162 hashes, roots, inclusion and consistency proofs (generate and verify)
  over a ``LeafStore``.
- ``compact``: stored complete subtrees (the ``audit_node`` table shape), compact ranges,
  ``MemoryLeafStore`` and the streaming ``recompute_root``.
- ``note``: C2SP signed notes and Ed25519 note keys (vkey / skey strings).
- ``checkpoint``: C2SP tlog checkpoints, signed and verified as notes.
- ``entries``: audit events and their canonical JSON leaf encoding.
- ``errors``: ``AuditError`` and its data-carrying subclasses.
"""

from .checkpoint import Checkpoint, read_checkpoint_unverified, sign_checkpoint, verify_checkpoint
from .compact import CompactRange, MemoryLeafStore, Node, peak_positions, recompute_root
from .entries import AuditEvent, EventType, canonical_json, decode_event, encode_event
from .errors import (
    AuditError,
    CheckpointError,
    ConsistencyProofError,
    EntryError,
    InclusionProofError,
    MalformedNoteError,
    OriginMismatchError,
    ProofError,
    SignatureError,
    TreeRangeError,
    VerifierKeyError,
)
from .merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    LeafStore,
    SubtreeStore,
    TreeHead,
    consistency_proof,
    hash_children,
    hash_leaf,
    inclusion_proof,
    root_from_inclusion_proof,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from .note import Note, NoteSignature, SignerKey, VerifierKey, parse_note, sign_note, verify_note

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "AuditError",
    "AuditEvent",
    "Checkpoint",
    "CheckpointError",
    "CompactRange",
    "ConsistencyProofError",
    "EntryError",
    "EventType",
    "InclusionProofError",
    "LeafStore",
    "MalformedNoteError",
    "MemoryLeafStore",
    "Node",
    "Note",
    "NoteSignature",
    "OriginMismatchError",
    "ProofError",
    "SignatureError",
    "SignerKey",
    "SubtreeStore",
    "TreeHead",
    "TreeRangeError",
    "VerifierKey",
    "VerifierKeyError",
    "canonical_json",
    "consistency_proof",
    "decode_event",
    "encode_event",
    "hash_children",
    "hash_leaf",
    "inclusion_proof",
    "parse_note",
    "peak_positions",
    "read_checkpoint_unverified",
    "recompute_root",
    "root_from_inclusion_proof",
    "sign_checkpoint",
    "sign_note",
    "tree_root",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_note",
]
