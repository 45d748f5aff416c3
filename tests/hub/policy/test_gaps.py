"""Completeness of one device's segments: missing numbers, broken chain, not uploaded."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lerec.hub.policy import ArrivedManifest, Gap, GapKind, PolicyInputError, find_gaps

T0 = datetime(2024, 10, 9, 1, 0, tzinfo=UTC)
GENESIS = bytes(32)


def chain(
    n: int, first_seq: int = 0, officers: tuple[str | None, ...] = ("wang",)
) -> list[ArrivedManifest]:
    """A complete, correctly linked chain of ``n`` one-minute segments, 10 s apart."""
    out: list[ArrivedManifest] = []
    prev = GENESIS
    for i in range(n):
        seq = first_seq + i
        digest = hashlib.sha256(prev + seq.to_bytes(8, "big")).digest()
        start = T0 + timedelta(seconds=70 * i)
        out.append(
            ArrivedManifest(
                seq, prev, digest, start, start + timedelta(minutes=1), officers[i % len(officers)]
            )
        )
        prev = digest
    return out


def test_complete_chain_has_no_gaps() -> None:
    assert find_gaps("dev-01", chain(5), reported_last_seq=4, genesis_hash=GENESIS) == ()


def test_nothing_arrived_but_device_reported() -> None:
    (gap,) = find_gaps("dev-01", [], reported_last_seq=2)
    assert (gap.kind, gap.first_seq, gap.last_seq) == (GapKind.NOT_UPLOADED, 0, 2)
    assert find_gaps("dev-01", [], reported_last_seq=None) == ()


def test_missing_in_the_middle_names_neighbours_and_window() -> None:
    segs = chain(6, officers=("wang", "li"))
    arrived = segs[:2] + segs[4:]  # 2 and 3 missing
    (gap,) = find_gaps("dev-01", arrived, reported_last_seq=5)
    assert gap == Gap("dev-01", GapKind.MISSING, 2, 3, segs[1].end, segs[4].start, ("li", "wang"))
    assert list(gap.seqs) == [2, 3]
    assert "设备 dev-01 序号 2–3：记录缺失" in gap.message_zh


def test_missing_at_the_beginning() -> None:
    segs = chain(4)
    (gap,) = find_gaps("dev-01", segs[2:], reported_last_seq=3)
    assert (gap.kind, gap.first_seq, gap.last_seq) == (GapKind.MISSING, 0, 1)
    assert (gap.window_start, gap.window_end) == (None, segs[2].start)


def test_replaced_segment_breaks_the_chain() -> None:
    segs = chain(4)
    forged = replace(segs[1], digest=hashlib.sha256(b"forged").digest())
    (gap,) = find_gaps("dev-01", [segs[0], forged, segs[2], segs[3]], reported_last_seq=3)
    assert (gap.kind, gap.first_seq, gap.last_seq) == (GapKind.CHAIN_BROKEN, 1, 2)
    assert (gap.window_start, gap.window_end) == (segs[1].start, segs[2].end)
    assert gap.officer_ids == ("wang",)


def test_two_different_manifests_for_one_number() -> None:
    segs = chain(3)
    twin = replace(segs[1], digest=b"\x01" * 32)
    gaps = find_gaps("dev-01", [*segs, twin, segs[1]], reported_last_seq=2)
    assert [(g.kind, g.first_seq, g.last_seq) for g in gaps] == [(GapKind.CHAIN_BROKEN, 1, 1)]


def test_wrong_genesis() -> None:
    segs = chain(2)
    gaps = find_gaps("dev-01", segs, genesis_hash=b"\xff" * 32)
    assert [(g.kind, g.first_seq) for g in gaps] == [(GapKind.CHAIN_BROKEN, 0)]


def test_reported_but_never_arrived() -> None:
    segs = chain(3, officers=(None,))
    (gap,) = find_gaps("dev-01", segs, reported_last_seq=7)
    assert (gap.kind, gap.first_seq, gap.last_seq) == (GapKind.NOT_UPLOADED, 3, 7)
    assert (gap.window_start, gap.window_end) == (segs[-1].end, None)
    assert gap.officer_ids == ()
    assert "至今" in gap.message_zh and "未知" in gap.message_zh


def test_stale_heartbeat_is_ignored() -> None:
    assert find_gaps("dev-01", chain(5), reported_last_seq=2) == ()


def test_first_seq_is_configurable_and_checked() -> None:
    segs = chain(3, first_seq=1)
    assert find_gaps("dev-01", segs, reported_last_seq=3, first_seq=1) == ()
    with pytest.raises(PolicyInputError):
        find_gaps("dev-01", segs, first_seq=2)


def test_several_gaps_are_ordered() -> None:
    segs = chain(10)
    forged = replace(segs[6], digest=b"\x02" * 32)
    arrived = [segs[0], segs[2], segs[5], forged, segs[7]]
    gaps = find_gaps("dev-01", reversed(arrived), reported_last_seq=9)
    assert [(g.kind, g.first_seq, g.last_seq) for g in gaps] == [
        (GapKind.MISSING, 1, 1),
        (GapKind.MISSING, 3, 4),
        (GapKind.CHAIN_BROKEN, 6, 7),
        (GapKind.NOT_UPLOADED, 8, 9),
    ]


@given(
    n=st.integers(min_value=1, max_value=30),
    first=st.integers(min_value=0, max_value=3),
    data=st.data(),
)
def test_chain_properties(n: int, first: int, data: st.DataObject) -> None:
    segs = chain(n, first_seq=first)
    last = first + n - 1
    assert find_gaps("d", segs, last, first_seq=first, genesis_hash=GENESIS) == ()
    # Order of arrival does not matter.
    shuffled = data.draw(st.permutations(segs))
    assert find_gaps("d", shuffled, last, first_seq=first, genesis_hash=GENESIS) == ()
    # Removing any one segment is reported, and covers exactly that number.
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    gaps = find_gaps("d", segs[:i] + segs[i + 1 :], last, first_seq=first, genesis_hash=GENESIS)
    assert [list(g.seqs) for g in gaps] == [[first + i]]
    assert gaps[0].kind is (GapKind.NOT_UPLOADED if i == n - 1 else GapKind.MISSING)
    # Replacing any segment but the last breaks the chain right after it.
    if n >= 2:
        j = data.draw(st.integers(min_value=0, max_value=n - 2))
        forged = segs[:j] + [replace(segs[j], digest=b"\x03" * 32)] + segs[j + 1 :]
        gaps = find_gaps("d", forged, last, first_seq=first, genesis_hash=GENESIS)
        assert [(g.kind, g.first_seq, g.last_seq) for g in gaps] == [
            (GapKind.CHAIN_BROKEN, first + j, first + j + 1)
        ]


def test_heartbeat_minus_one_means_nothing_recorded() -> None:
    # protocol Heartbeat.last_seq == -1: the recorder has produced no segment yet.
    assert find_gaps("dev-01", [], reported_last_seq=-1) == ()
