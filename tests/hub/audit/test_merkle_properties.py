"""Properties of proofs, compact ranges and stores over random trees."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lerec.hub.audit.compact import CompactRange, MemoryLeafStore, peak_positions, recompute_root
from lerec.hub.audit.errors import ConsistencyProofError, InclusionProofError
from lerec.hub.audit.merkle import (
    consistency_proof,
    hash_leaf,
    inclusion_proof,
    naive_root,
    root_from_hashes,
    subtree_root,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

MAX_LEAVES = 300


class LeavesOnlyStore:
    """A LeafStore without stored subtrees: proofs must rehash complete subtrees."""

    def __init__(self, datas: Sequence[bytes]) -> None:
        self._hashes = [hash_leaf(d) for d in datas]

    def size(self) -> int:
        return len(self._hashes)

    def leaf_hash(self, index: int) -> bytes:
        return self._hashes[index]

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        return self._hashes[start:end]


def _datas(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") * (i % 5) for i in range(n)]


_STORE = MemoryLeafStore(_datas(MAX_LEAVES))
_PLAIN = LeavesOnlyStore(_datas(MAX_LEAVES))


def _flip(proof: list[bytes], item: int, bit: int) -> list[bytes]:
    bad = list(proof)
    byte, mask = divmod(bit, 8)
    bad[item] = bad[item][:byte] + bytes([bad[item][byte] ^ (1 << mask)]) + bad[item][byte + 1 :]
    return bad


@st.composite
def leaf_in_tree(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_LEAVES))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    second = draw(st.integers(0, MAX_LEAVES))
    return draw(st.integers(0, second)), second


@given(leaf_in_tree(), st.data())
def test_inclusion_proofs_verify_and_any_flip_fails(
    case: tuple[int, int], data: st.DataObject
) -> None:
    index, size = case
    proof = inclusion_proof(_STORE, index, size)
    assert proof == inclusion_proof(_PLAIN, index, size)
    root = tree_root(_STORE, size)
    leaf = _STORE.leaf_hash(index)
    verify_inclusion(index, size, leaf, proof, root)
    if proof:
        item = data.draw(st.integers(0, len(proof) - 1))
        bad = _flip(proof, item, data.draw(st.integers(0, 255)))
        with pytest.raises(InclusionProofError):
            verify_inclusion(index, size, leaf, bad, root)
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(InclusionProofError):
        verify_inclusion(index, size, _flip([leaf], 0, bit)[0], proof, root)
    with pytest.raises(InclusionProofError):
        verify_inclusion(index, size, leaf, proof, _flip([root], 0, bit)[0])
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index)) if size > 1 else None
    if other is not None:
        with pytest.raises(InclusionProofError):
            verify_inclusion(other, size, leaf, proof, root)


@given(two_sizes(), st.data())
def test_consistency_proofs_verify_and_tampering_fails(
    sizes: tuple[int, int], data: st.DataObject
) -> None:
    first, second = sizes
    proof = consistency_proof(_STORE, first, second)
    assert proof == consistency_proof(_PLAIN, first, second)
    r1, r2 = tree_root(_STORE, first), tree_root(_STORE, second)
    verify_consistency(first, second, r1, r2, proof)
    if not proof:
        assert first in (0, second)
        return
    item = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    tampered = [
        (first, second, r1, r2, _flip(proof, item, bit)),
        (first, second, _flip([r1], 0, bit)[0], r2, proof),
        (first, second, r1, _flip([r2], 0, bit)[0], proof),
        (first, second, r1, r2, proof[:-1]),
        (first, second, r1, r2, [*proof, r2]),
    ]
    if second < MAX_LEAVES:  # a root of a different tree at the claimed size
        tampered.append((first, second, r1, tree_root(_STORE, second + 1), proof))
    for probe in tampered:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(*probe)


@given(st.lists(st.binary(max_size=40), max_size=70))
def test_store_compact_range_and_streaming_match_naive_root(datas: list[bytes]) -> None:
    expected = naive_root(datas)
    store = MemoryLeafStore()
    compact = CompactRange()
    for i, d in enumerate(datas):
        nodes = store.append(d)
        assert nodes == compact.append(hash_leaf(d))
        assert nodes[0].level == 0 and nodes[0].index == i
        assert compact.root() == naive_root(datas[: i + 1])
    assert tree_root(store) == expected
    assert root_from_hashes([hash_leaf(d) for d in datas]) == expected
    assert CompactRange.from_store(store).peaks == compact.peaks
    for chunk in (1, 2, 8, 1 << 15):
        head = recompute_root(iter(datas), chunk_size=chunk)
        assert (head.size, head.root) == (len(datas), expected)


@given(st.integers(0, MAX_LEAVES), st.integers(0, MAX_LEAVES))
def test_subtree_root_of_any_range_matches_naive(a: int, b: int) -> None:
    start, end = min(a, b), max(a, b)
    expected = naive_root(_datas(MAX_LEAVES)[start:end])
    assert subtree_root(_STORE, start, end) == expected
    assert subtree_root(_PLAIN, start, end) == expected


@settings(max_examples=50)
@given(st.integers(0, 2**40))
def test_peak_positions_cover_the_tree(size: int) -> None:
    peaks = peak_positions(size)
    covered = 0
    for level, index in peaks:
        assert index << level == covered  # contiguous, aligned, largest first
        covered += 1 << level
    assert covered == size and len(peaks) == size.bit_count()


def test_append_returns_rows_to_persist() -> None:
    store = MemoryLeafStore(_datas(7))
    rows = store.append(b"eighth")
    assert [(n.level, n.index) for n in rows] == [(0, 7), (1, 3), (2, 1), (3, 0)]
    assert rows[-1].hash == tree_root(store, 8)
    assert [(n.level, n.index) for n in store.append(b"ninth")] == [(0, 8)]


def test_compact_range_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        CompactRange(3, [b"\x00" * 32])
    with pytest.raises(ValueError):
        CompactRange(1, [b"short"])
    with pytest.raises(ValueError):
        CompactRange(1, [b"\x00" * 32]).append_subtree(1, b"\x00" * 32)
    with pytest.raises(ValueError):
        recompute_root([], chunk_size=3)
