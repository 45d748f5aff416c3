"""Stored subtrees, compact ranges and fast full re-verification of the audit tree.

Representation (one row per node, written once, never updated)::

    audit_node(level INTEGER, idx INTEGER, hash BLOB(32), PRIMARY KEY (level, idx))

Node ``(level, idx)`` is the MTH of the complete, aligned subtree over leaves
``[idx << level, (idx + 1) << level)``; level 0 holds the leaf hashes. A node is written when
its last leaf arrives and never changes afterwards, so appending a leaf writes 1 + (number of
trailing 1 bits of its index) rows: amortised 2, at most log2(n) + 1. Such a table implements
:class:`~lerec.hub.audit.merkle.SubtreeStore`, which makes every root and proof O(log n).

The *compact range* of a tree of ``size`` leaves is the list of its "peaks": one node per set
bit of ``size``, largest first, at ``(level=b, idx=(size >> b) - 1)``. It is all a writer needs
in memory to append and to compute the current root, and it can be rebuilt from the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

from .errors import TreeRangeError
from .merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    SubtreeStore,
    TreeHead,
    hash_children,
    hash_leaf,
    hash_leaves,
    root_from_hashes,
)


@dataclass(frozen=True, slots=True)
class Node:
    """A completed subtree: a row of the ``audit_node`` table."""

    level: int
    index: int
    hash: bytes


def peak_positions(size: int) -> list[tuple[int, int]]:
    """``(level, index)`` of the compact-range peaks of a tree of ``size`` leaves, largest first."""
    return [(b, (size >> b) - 1) for b in range(size.bit_length() - 1, -1, -1) if size >> b & 1]


class CompactRange:
    """The peaks of the tree over leaves ``[0, size)``; supports O(log n) append and root."""

    __slots__ = ("_peaks", "_size")

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()) -> None:
        if size < 0 or len(peaks) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {max(size, 0).bit_count()} peaks")
        if any(len(p) != HASH_SIZE for p in peaks):
            raise ValueError(f"peaks must be {HASH_SIZE}-byte hashes")
        self._size = size
        self._peaks = list(peaks)

    @classmethod
    def from_store(cls, store: SubtreeStore, size: int | None = None) -> CompactRange:
        """Rebuild the compact range of the first ``size`` leaves from stored subtrees."""
        n = store.size() if size is None else size
        if not 0 <= n <= store.size():
            raise TreeRangeError("tree size", n, store.size())
        return cls(n, [store.subtree_hash(level, idx) for level, idx in peak_positions(n)])

    @property
    def size(self) -> int:
        return self._size

    @property
    def peaks(self) -> tuple[bytes, ...]:
        return tuple(self._peaks)

    def append(self, leaf_hash: bytes) -> list[Node]:
        """Append one leaf hash; return the nodes it completed (the leaf first)."""
        return self.append_subtree(0, leaf_hash)

    def append_subtree(self, level: int, subtree_hash: bytes) -> list[Node]:
        """Append a complete subtree of ``2**level`` leaves; the size must be aligned to it."""
        if self._size % (1 << level):
            raise ValueError(f"size {self._size} is not a multiple of 2**{level}")
        index = self._size >> level
        current = subtree_hash
        nodes = [Node(level, index, current)]
        while index & 1:
            current = hash_children(self._peaks.pop(), current)
            level += 1
            index >>= 1
            nodes.append(Node(level, index, current))
        self._peaks.append(current)
        self._size += 1 << nodes[0].level
        return nodes

    def root(self) -> bytes:
        """MTH of the range: fold the peaks from the right."""
        if not self._peaks:
            return EMPTY_ROOT
        root = self._peaks[-1]
        for peak in reversed(self._peaks[:-1]):
            root = hash_children(peak, root)
        return root

    def head(self) -> TreeHead:
        return TreeHead(self._size, self.root())


class MemoryLeafStore:
    """In-memory :class:`~lerec.hub.audit.merkle.SubtreeStore`: the ``audit_node`` table as lists.

    ``append`` returns the :class:`Node` rows a database-backed store would insert.
    """

    def __init__(self, leaf_data: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for data in leaf_data:
            self.append(data)

    def append(self, data: bytes) -> list[Node]:
        """Append the entry ``data`` (its leaf hash is computed here)."""
        return self.append_hash(hash_leaf(data))

    def append_hash(self, leaf_hash: bytes) -> list[Node]:
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes")
        levels = self._levels
        index, level, current = len(levels[0]), 0, leaf_hash
        levels[0].append(current)
        nodes = [Node(0, index, current)]
        while index & 1:
            current = hash_children(levels[level][index - 1], current)
            level += 1
            index >>= 1
            if len(levels) == level:
                levels.append([])
            levels[level].append(current)
            nodes.append(Node(level, index, current))
        return nodes

    def size(self) -> int:
        return len(self._levels[0])

    def leaf_hash(self, index: int) -> bytes:
        if not 0 <= index < self.size():
            raise TreeRangeError("leaf index", index, self.size())
        return self._levels[0][index]

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        if not 0 <= start <= end <= self.size():
            raise TreeRangeError("leaf range end", end, self.size())
        return self._levels[0][start:end]

    def subtree_hash(self, level: int, index: int) -> bytes:
        if not (0 <= level < len(self._levels) and 0 <= index < len(self._levels[level])):
            raise TreeRangeError(f"subtree index at level {level}", index, self.size() >> level)
        return self._levels[level][index]

    def compact_range(self) -> CompactRange:
        return CompactRange.from_store(self)


def recompute_root(leaf_data: Iterable[bytes], *, chunk_size: int = 1 << 12) -> TreeHead:
    """Stream every entry once and return the tree head they imply.

    Entries are hashed ``chunk_size`` (a power of two) at a time with C-level loops; each full
    chunk becomes one aligned subtree of a :class:`CompactRange`, so memory stays
    O(chunk_size + log n) whatever the log length.
    """
    if chunk_size < 1 or chunk_size & (chunk_size - 1):
        raise ValueError("chunk_size must be a power of two")
    chunk_level = chunk_size.bit_length() - 1
    entries = iter(leaf_data)
    compact = CompactRange()
    while True:
        chunk = list(islice(entries, chunk_size))
        hashes = hash_leaves(chunk)
        if len(chunk) == chunk_size:
            compact.append_subtree(chunk_level, root_from_hashes(hashes))
            continue
        offset = 0  # the tail: its complete subtrees, largest first, keep the alignment
        for level in range(chunk_level - 1, -1, -1):
            if len(chunk) >> level & 1:
                part = hashes[offset : offset + (1 << level)]
                compact.append_subtree(level, root_from_hashes(part))
                offset += 1 << level
        return compact.head()
