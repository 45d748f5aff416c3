"""Published RFC 6962 / RFC 9162 test vectors, checked byte for byte.

Source: github.com/transparency-dev/merkle, proof/verify_test.go (inherited from
certificate-transparency-go) and rfc6962/rfc6962_test.go. Leaf numbers in the inclusion
vectors there are 1-based; here they are converted to 0-based indexes.
"""

from __future__ import annotations

import pytest
from lerec.hub.audit.compact import MemoryLeafStore
from lerec.hub.audit.errors import (
    AuditError,
    ConsistencyProofError,
    InclusionProofError,
    TreeRangeError,
)
from lerec.hub.audit.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    hash_children,
    hash_leaf,
    inclusion_proof,
    naive_root,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

LEAVES = [h(x) for x in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip

ROOTS = [h(x) for x in (  # ROOTS[n - 1] is the root of the first n leaves
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # fmt: skip

INCLUSION = [  # (0-based leaf index, tree size, proof)
    (0, 1, []),
    (0, 8, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (5, 8, [h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (1, 5, [h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
]  # fmt: skip

CONSISTENCY = [  # (first size, second size, proof)
    (1, 1, []),
    (1, 8, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 5, [h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (6, 7, [h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
]  # fmt: skip

SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


@pytest.fixture(scope="module")
def store() -> MemoryLeafStore:
    return MemoryLeafStore(LEAVES)


def test_hasher_vectors() -> None:
    assert EMPTY_ROOT == h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert hash_leaf(b"") == h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert hash_leaf(b"L123456") == h(
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert hash_children(b"N123", b"N456") == h(
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


@pytest.mark.parametrize("size", range(1, 9))
def test_roots(store: MemoryLeafStore, size: int) -> None:
    assert tree_root(store, size) == ROOTS[size - 1]
    assert naive_root(LEAVES[:size]) == ROOTS[size - 1]


def test_empty_tree_root(store: MemoryLeafStore) -> None:
    assert tree_root(store, 0) == EMPTY_ROOT
    assert tree_root(MemoryLeafStore()) == EMPTY_ROOT


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_vectors(
    store: MemoryLeafStore, index: int, size: int, proof: list[bytes]
) -> None:
    assert inclusion_proof(store, index, size) == proof
    verify_inclusion(index, size, hash_leaf(LEAVES[index]), proof, ROOTS[size - 1])


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_consistency_vectors(
    store: MemoryLeafStore, first: int, second: int, proof: list[bytes]
) -> None:
    assert consistency_proof(store, first, second) == proof
    verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], proof)


def _inclusion_probes(index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes):
    """Corruptions from transparency-dev's corruptInclusionProof."""
    yield index - 1, size, root, leaf, proof
    yield index + 1, size, root, leaf, proof
    yield index ^ 2, size, root, leaf, proof
    yield index, size * 2, root, leaf, proof
    yield index, size // 2, root, leaf, proof
    yield index, size, root, b"WrongLeaf", proof
    yield index, size, EMPTY_ROOT, leaf, proof
    yield index, size, SOME_HASH, leaf, proof
    yield index, size, root, leaf, [*proof, b""]
    yield index, size, root, leaf, [*proof, root]
    yield index, size, root, leaf, [b"", *proof]
    yield index, size, root, leaf, [root, *proof]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        yield index, size, root, leaf, bad
    if proof:
        yield index, size, root, leaf, proof[:-1]
    if len(proof) > 1:
        yield index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_corruptions_rejected(index: int, size: int, proof: list[bytes]) -> None:
    leaf = hash_leaf(LEAVES[index])
    for probe in _inclusion_probes(index, size, proof, ROOTS[size - 1], leaf):
        with pytest.raises(InclusionProofError):
            verify_inclusion(*probe[:2], probe[3], probe[4], probe[2])


def _consistency_probes(m: int, n: int, r1: bytes, r2: bytes, proof: list[bytes]):
    """Corruptions from transparency-dev's corruptConsistencyProof."""
    yield m - 1, n, r1, r2, proof
    yield m + 1, n, r1, r2, proof
    yield m ^ 2, n, r1, r2, proof
    yield m, n * 2, r1, r2, proof
    yield m, n // 2, r1, r2, proof
    yield m, n, b"WrongRoot", r2, proof
    yield m, n, r1, b"WrongRoot", proof
    yield m, n, r2, r1, proof
    yield m, n, r1, r2, []
    yield m, n, r1, r2, [*proof, b""]
    yield m, n, r1, r2, [*proof, r1]
    yield m, n, r1, r2, [*proof, r2]
    yield m, n, r1, r2, [b"", *proof]
    yield m, n, r1, r2, [r1, *proof]
    yield m, n, r1, r2, [r2, *proof]
    yield m, n, r1, r2, [proof[0], *proof]
    yield m, n, r1, r2, proof[:-1]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        yield m, n, r1, r2, bad


@pytest.mark.parametrize(("first", "second", "proof"), [c for c in CONSISTENCY if c[2]])
def test_consistency_corruptions_rejected(first: int, second: int, proof: list[bytes]) -> None:
    for probe in _consistency_probes(first, second, ROOTS[first - 1], ROOTS[second - 1], proof):
        with pytest.raises(ConsistencyProofError):
            verify_consistency(*probe)


def test_single_entry_inclusion() -> None:
    leaf = hash_leaf(b"data")
    verify_inclusion(0, 1, leaf, [], leaf)
    for leaf_hash, root in ((leaf, b""), (b"", leaf), (b"", b"")):
        with pytest.raises(InclusionProofError):
            verify_inclusion(0, 1, leaf_hash, [], root)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1)])
def test_inclusion_impossible_positions(index: int, size: int) -> None:
    with pytest.raises(InclusionProofError):
        verify_inclusion(index, size, SOME_HASH, [], EMPTY_ROOT)


def test_consistency_edges() -> None:
    r1, r2 = ROOTS[0], ROOTS[1]
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, ROOTS[4], [])
    verify_consistency(1, 1, r2, r2, [])
    bad = [
        (1, 1, r1, r2, []),  # equal sizes, different roots
        (1, 0, r1, r2, []),  # time travel
        (2, 1, r1, r2, []),
        (1, 2, r1, r2, []),  # empty proof
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),  # trivial but non-empty proof
        (1, 1, r1, r1, [EMPTY_ROOT]),
        (0, 1, r1, r1, []),  # size 0 must carry the empty-tree root (stricter than Go)
    ]
    for probe in bad:
        with pytest.raises(ConsistencyProofError) as info:
            verify_consistency(*probe)
        assert isinstance(info.value, AuditError) and isinstance(info.value, ValueError)
        assert info.value.first_size == probe[0] and info.value.reason


def test_generation_range_errors(store: MemoryLeafStore) -> None:
    with pytest.raises(TreeRangeError):
        inclusion_proof(store, 8, 8)
    with pytest.raises(TreeRangeError):
        inclusion_proof(store, 0, 9)
    with pytest.raises(TreeRangeError):
        consistency_proof(store, 5, 4)
    with pytest.raises(IndexError):
        tree_root(store, 9)
    assert consistency_proof(store, 0, 8) == [] and consistency_proof(store, 8) == []
