"""Completeness of one recorder's segments: find what is missing or was replaced.

Each recorder numbers its segments ``first_seq, first_seq + 1, ...`` and each manifest carries
the hash of the previous manifest (``prev_hash``), forming a chain; heartbeats report the last
sequence number the recorder has produced. From the manifests that arrived we report:

* ``missing`` — sequence numbers absent between arrived ones (or before the first arrived
  one): a segment the hub will likely never see. Window: end of the previous arrived segment
  to start of the next (``None`` where there is no such neighbour).
* ``chain_broken`` — two consecutive arrived segments whose link does not verify
  (``next.prev_hash != prev.digest``), or the first segment does not start from
  ``genesis_hash``, or two different manifests arrived for one sequence number: one of them
  was replaced. Window: start of the first to end of the last segment concerned.
* ``not_uploaded`` — numbers the recorder reported in a heartbeat that have not arrived.
  Window: end of the last arrived segment, open-ended.

Limits: a link across a ``missing`` range cannot be verified, and a replaced *last* segment
is only caught when its successor arrives (its manifest signature protects it meanwhile).
A heartbeat reporting less than what arrived is stale and ignored.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ._time import local_text
from .errors import PolicyInputError


@dataclass(frozen=True)
class ArrivedManifest:
    seq: int
    prev_hash: bytes
    digest: bytes  # hash of this manifest, which the next one's prev_hash must equal
    start: datetime
    end: datetime
    officer_id: str | None = None


class GapKind(enum.StrEnum):
    MISSING = "missing"
    CHAIN_BROKEN = "chain_broken"
    NOT_UPLOADED = "not_uploaded"


_KIND_ZH = {
    GapKind.MISSING: "记录缺失",
    GapKind.CHAIN_BROKEN: "哈希链断裂（记录可能被替换）",
    GapKind.NOT_UPLOADED: "设备已录制但尚未上传",
}


@dataclass(frozen=True)
class Gap:
    device_id: str
    kind: GapKind
    first_seq: int
    last_seq: int  # inclusive
    window_start: datetime | None
    window_end: datetime | None
    officer_ids: tuple[str, ...]  # officers of the neighbouring segments, sorted

    @property
    def seqs(self) -> range:
        return range(self.first_seq, self.last_seq + 1)

    @property
    def message_zh(self) -> str:
        seqs = str(self.first_seq)
        if self.last_seq != self.first_seq:
            seqs += f"–{self.last_seq}"
        start = "未知" if self.window_start is None else local_text(self.window_start)
        end = "至今" if self.window_end is None else local_text(self.window_end)
        officers = "、".join(self.officer_ids) or "未知"
        return (
            f"设备 {self.device_id} 序号 {seqs}：{_KIND_ZH[self.kind]}；"
            f"时间 {start} 至 {end}；相关执法人员：{officers}"
        )


def find_gaps(
    device_id: str,
    arrived: Iterable[ArrivedManifest],
    reported_last_seq: int | None = None,
    *,
    first_seq: int = 0,
    genesis_hash: bytes | None = None,
) -> tuple[Gap, ...]:
    """All gaps for one device, ordered by sequence number."""
    by_seq: dict[int, dict[bytes, ArrivedManifest]] = {}
    for manifest in arrived:
        if manifest.seq < first_seq:
            raise PolicyInputError(f"seq {manifest.seq} is below first_seq {first_seq}")
        by_seq.setdefault(manifest.seq, {}).setdefault(manifest.digest, manifest)

    gaps: list[Gap] = []

    def add(
        kind: GapKind,
        lo: int,
        hi: int,
        start: datetime | None,
        end: datetime | None,
        neighbours: Iterable[ArrivedManifest],
    ) -> None:
        officers = tuple(sorted({m.officer_id for m in neighbours if m.officer_id is not None}))
        gaps.append(Gap(device_id, kind, lo, hi, start, end, officers))

    if not by_seq:
        if reported_last_seq is not None and reported_last_seq >= first_seq:
            add(GapKind.NOT_UPLOADED, first_seq, reported_last_seq, None, None, ())
        return tuple(gaps)

    conflicted = {seq for seq, variants in by_seq.items() if len(variants) > 1}
    for seq in sorted(conflicted):
        variants = list(by_seq[seq].values())
        add(
            GapKind.CHAIN_BROKEN,
            seq,
            seq,
            min(m.start for m in variants),
            max(m.end for m in variants),
            variants,
        )
    # One representative per number (earliest start, then digest) for windows and links.
    rep = {seq: min(v.values(), key=lambda m: (m.start, m.digest)) for seq, v in by_seq.items()}
    seqs = sorted(rep)

    first = rep[seqs[0]]
    if seqs[0] > first_seq:
        add(GapKind.MISSING, first_seq, seqs[0] - 1, None, first.start, [first])
    elif genesis_hash is not None and seqs[0] not in conflicted and first.prev_hash != genesis_hash:
        add(GapKind.CHAIN_BROKEN, first.seq, first.seq, first.start, first.end, [first])

    for a, b in itertools.pairwise(seqs):
        prev, nxt = rep[a], rep[b]
        if b > a + 1:
            add(GapKind.MISSING, a + 1, b - 1, prev.end, nxt.start, [prev, nxt])
        elif a not in conflicted and b not in conflicted and nxt.prev_hash != prev.digest:
            add(GapKind.CHAIN_BROKEN, a, b, prev.start, nxt.end, [prev, nxt])

    last = rep[seqs[-1]]
    if reported_last_seq is not None and reported_last_seq > last.seq:
        add(GapKind.NOT_UPLOADED, last.seq + 1, reported_last_seq, last.end, None, [last])

    return tuple(sorted(gaps, key=lambda g: (g.first_seq, g.last_seq, g.kind)))
