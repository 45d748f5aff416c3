"""RFC 9162 (section 2.1) Merkle tree hashes and proofs.

Leaf hash ``SHA-256(0x00 || data)``, node hash ``SHA-256(0x01 || left || right)``, the empty
tree's root is ``SHA-256("")``. The tree over ``n`` leaves splits at ``k``, the largest power of
two smaller than ``n``.

Proof *generation* reads a :class:`LeafStore`. When the store also implements
:class:`SubtreeStore` (hashes of complete, aligned power-of-two subtrees, see
``lerec.hub.audit.compact``), every root and proof costs O(log n) lookups; otherwise complete
subtrees are rehashed from their leaf hashes. Proof *verification* follows the RFC 9162
algorithms 2.1.3.2 and 2.1.4.2 literally and needs no store.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from itertools import repeat
from typing import Protocol, runtime_checkable

from .errors import ConsistencyProofError, InclusionProofError, TreeRangeError

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = sha256(b"").digest()

# Copying a primed context is about twice as fast as creating one (OpenSSL 3 fetch cost), and
# calling the unbound methods through map() keeps the per-hash work in C.
_LEAF_CTX = sha256(LEAF_PREFIX)
_NODE_CTX = sha256(NODE_PREFIX)
_HASH_T = type(_LEAF_CTX)
_copy, _update, _digest = _HASH_T.copy, _HASH_T.update, _HASH_T.digest


def hash_leaf(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return sha256(LEAF_PREFIX + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return sha256(NODE_PREFIX + left + right).digest()


def hash_leaves(datas: Sequence[bytes]) -> list[bytes]:
    """Leaf hashes of many entries at once (C-level loop, no per-entry Python frame)."""
    ctxs = list(map(_copy, repeat(_LEAF_CTX, len(datas))))
    deque(map(_update, ctxs, datas), maxlen=0)
    return list(map(_digest, ctxs))


def _parent_level(nodes: Sequence[bytes]) -> list[bytes]:
    """Hash adjacent pairs; an odd last node moves up unchanged (same tree as RFC 9162 MTH)."""
    lefts, rights = nodes[0::2], nodes[1::2]
    ctxs = list(map(_copy, repeat(_NODE_CTX, len(rights))))
    deque(map(_update, ctxs, lefts), maxlen=0)
    deque(map(_update, ctxs, rights), maxlen=0)
    parents = list(map(_digest, ctxs))
    if len(lefts) > len(rights):
        parents.append(nodes[-1])
    return parents


def root_from_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of consecutive leaf hashes (or of consecutive equal-level subtree roots).

    Bottom-up pairing with the odd node promoted builds exactly the RFC 9162 left-balanced
    tree, so this equals the recursive definition for every length.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        level = _parent_level(level)
    return level[0]


def naive_root(datas: Sequence[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 9162 defines it, recursively. For tests and tiny trees."""
    n = len(datas)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hash_leaf(datas[0])
    k = _split(n)
    return hash_children(naive_root(datas[:k]), naive_root(datas[k:]))


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A tree size and its root hash (what a checkpoint commits to)."""

    size: int
    root: bytes


# --- Storage abstraction -----------------------------------------------------------------------


@runtime_checkable
class LeafStore(Protocol):
    """Read access to the leaf hashes of an append-only log."""

    def size(self) -> int:
        """Number of leaves."""
        ...

    def leaf_hash(self, index: int) -> bytes:
        """Leaf hash at ``index`` (0-based)."""
        ...

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        """Leaf hashes ``[start, end)``."""
        ...


@runtime_checkable
class SubtreeStore(LeafStore, Protocol):
    """A :class:`LeafStore` that also keeps every complete, aligned power-of-two subtree."""

    def subtree_hash(self, level: int, index: int) -> bytes:
        """MTH of leaves ``[index << level, (index + 1) << level)``; level 0 is the leaf hash."""
        ...


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_root(store: LeafStore, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)`` read from ``store``.

    Ranges that are nodes of an RFC 9162 tree (all that proofs need) cost O(log n) lookups on
    a :class:`SubtreeStore`; any other range is still hashed correctly, just more slowly.
    """
    n = end - start
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        level = n.bit_length() - 1
        if isinstance(store, SubtreeStore):
            return store.subtree_hash(level, start >> level)
        if n == 1:
            return store.leaf_hash(start)
        return root_from_hashes(store.leaf_hashes(start, end))
    k = _split(n)
    return hash_children(subtree_root(store, start, start + k), subtree_root(store, start + k, end))


def _check_size(store: LeafStore, tree_size: int | None) -> int:
    available = store.size()
    if tree_size is None:
        return available
    if not 0 <= tree_size <= available:
        raise TreeRangeError("tree size", tree_size, available)
    return tree_size


def tree_root(store: LeafStore, tree_size: int | None = None) -> bytes:
    """Root hash of the first ``tree_size`` leaves (default: all)."""
    return subtree_root(store, 0, _check_size(store, tree_size))


# --- Proof generation (RFC 9162 2.1.3.1 and 2.1.4.1) -------------------------------------------


def inclusion_proof(store: LeafStore, leaf_index: int, tree_size: int | None = None) -> list[bytes]:
    """PATH(m, D[n]): the audit path of leaf ``leaf_index`` in the tree of ``tree_size`` leaves."""
    n = _check_size(store, tree_size)
    if not 0 <= leaf_index < n:
        raise TreeRangeError("leaf index", leaf_index, n)
    path: list[bytes] = []
    start, end = 0, n
    while end - start > 1:  # walk down from the root, collect siblings, emit leaf-first
        mid = start + _split(end - start)
        if leaf_index < mid:
            path.append(subtree_root(store, mid, end))
            end = mid
        else:
            path.append(subtree_root(store, start, mid))
            start = mid
    path.reverse()
    return path


def consistency_proof(
    store: LeafStore, first_size: int, second_size: int | None = None
) -> list[bytes]:
    """PROOF(m, D[n]): proves the tree of ``first_size`` leaves a prefix of ``second_size``.

    Empty when ``first_size`` is 0 or equal to ``second_size``.
    """
    n = _check_size(store, second_size)
    if not 0 <= first_size <= n:
        raise TreeRangeError("first tree size", first_size, n)
    if first_size in (0, n):
        return []
    proof: list[bytes] = []
    start, end, whole_old_tree = 0, n, True
    while True:  # SUBPROOF(m, D[start:end], b), iteratively
        if first_size == end:
            if not whole_old_tree:
                proof.append(subtree_root(store, start, end))
            break
        mid = start + _split(end - start)
        if first_size <= mid:
            proof.append(subtree_root(store, mid, end))
            end = mid
        else:
            proof.append(subtree_root(store, start, mid))
            start, whole_old_tree = mid, False
    proof.reverse()
    return proof


# --- Proof verification (RFC 9162 2.1.3.2 and 2.1.4.2) -----------------------------------------


def _check_hashes(hashes: Iterable[bytes]) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def root_from_inclusion_proof(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Root implied by an inclusion proof (RFC 9162 2.1.3.2 steps 1-5), or raise."""

    def fail(reason: str) -> InclusionProofError:
        return InclusionProofError(leaf_index, tree_size, reason)

    if not 0 <= leaf_index < tree_size:
        raise fail("leaf index is not below the tree size")
    if not _check_hashes([leaf_hash, *proof]):
        raise fail(f"every hash must be {HASH_SIZE} bytes")
    fn, sn, r = leaf_index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise fail("proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise fail("proof is shorter than the path to the root")
    return r


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`InclusionProofError` unless ``proof`` puts the leaf under ``root``."""
    if root_from_inclusion_proof(leaf_index, tree_size, leaf_hash, proof) != root:
        raise InclusionProofError(leaf_index, tree_size, "computed root does not match")


def verify_consistency(
    first_size: int,
    second_size: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Raise :class:`ConsistencyProofError` unless ``proof`` links the two tree heads.

    Deliberately strict at the edges: size 0 demands ``first_root`` be the empty-tree hash,
    equal sizes demand equal roots, and both demand an empty proof.
    """

    def fail(reason: str) -> ConsistencyProofError:
        return ConsistencyProofError(first_size, second_size, reason)

    if not 0 <= first_size <= second_size:
        raise fail("first size must be between 0 and the second size")
    if not _check_hashes([first_root, second_root, *proof]):
        raise fail(f"every hash must be {HASH_SIZE} bytes")
    if first_size == 0 or first_size == second_size:
        if proof:
            raise fail("proof must be empty")
        expected = EMPTY_ROOT if first_size == 0 else second_root
        if first_root != expected:
            raise fail("roots of equal-size trees differ" if first_size else "bad empty root")
        return
    if not proof:
        raise fail("proof is empty")
    path = list(proof)
    if first_size & (first_size - 1) == 0:  # step 2: old tree is a complete subtree
        path.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise fail("proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise fail("proof is shorter than needed")
    if fr != first_root:
        raise fail("first root does not match")
    if sr != second_root:
        raise fail("second root does not match")
