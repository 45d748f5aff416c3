"""Benchmarks of the trust domain: full audit-log verification and case archive build/verify.

    .venv/bin/python bench/bench_trust.py                      # 10,000,000 entries, 5 GB case
    .venv/bin/python bench/bench_trust.py --entries 1000000 --size 1G
    .venv/bin/python bench/bench_trust.py --only log           # or --only archive

Log: the entries are generated in bulk straight into a fresh SQLite database (canonical
entry bytes from a template, Merkle nodes computed in C-level batches, executemany inserts),
then ``lerec-verify log``'s engine (:func:`lerec.hub.verify.logcheck.verify_log`) re-verifies
every entry, node and checkpoint. Target: >= 500,000 entries/s.

Archive: a case with ``--size`` bytes of segments (real signed manifests and receipts over
random media) is archived with :func:`lerec.hub.archive.build_archive` and verified offline
with ``lerec-verify archive``; both are timed against ``tar`` and ``sha256sum`` over the same
media files in the same run (ratio = their time / our time; target >= 0.7).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lerec.hub.audit import log as audit
from lerec.hub.audit.checkpoint import Checkpoint, sign_checkpoint
from lerec.hub.audit.compact import CompactRange
from lerec.hub.audit.merkle import hash_leaves
from lerec.hub.db import make_engine, migrate, sqlite_url
from lerec.hub.verify.logcheck import parents, verify_log

_TEMPLATE = ('{"actor":"user:bench%d","details":{"n":%d,"note":"bench entry"},'
             '"subjects":["case:%d","segment:s%d"],"time":"2026-05-01T08:%02d:%02d.%03dZ",'
             '"type":"view","v":1}')


def _entries(start: int, end: int) -> Iterator[tuple[int, str, str, str, str, bytes]]:
    for i in range(start, end):
        mm, ss, ms = (i // 60000) % 60, (i // 1000) % 60, i % 1000
        data = (_TEMPLATE % (i % 97, i, i // 50, i, mm, ss, ms)).encode()
        at = f"2026-05-01 08:{mm:02d}:{ss:02d}.{ms:03d}000"
        yield i, at, "view", f"user:bench{i % 97}", f"case:{i // 50} segment:s{i}", data


def bulk_fill(db: Path, n: int, key: Ed25519PrivateKey, checkpoints: int = 10,
              batch: int = 1 << 16) -> None:
    """Write ``n`` valid entries, their Merkle nodes and signed checkpoints into ``db``."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("DROP TRIGGER IF EXISTS audit_entries_next_only")  # bulk load; restored below
    conn.execute("BEGIN")
    compact = CompactRange()
    k = batch.bit_length() - 1
    upper: list[list[bytes]] = [[]]
    every = max(1, n // checkpoints)
    origin = audit.DEFAULT_ORIGIN
    signer = audit.signer_from_key(key, origin)
    for start in range(0, n, batch):
        end = min(n, start + batch)
        rows = list(_entries(start, end))
        conn.executemany("INSERT INTO audit_entries (idx, at, type, actor, subjects, data) "
                         "VALUES (?, ?, ?, ?, ?, ?)", rows)
        level, base, cur = 0, start, hash_leaves([r[5] for r in rows])
        nodes: list[tuple[int, int, bytes]] = []
        while cur:
            nodes.extend((level, base + j, h) for j, h in enumerate(cur))
            if level == k:
                break
            cur, level, base = parents(cur), level + 1, base >> 1
        if end - start == batch:
            compact.append_subtree(k, cur[0])
            upper[0].append(cur[0])
            lv, lst = 0, upper[0]
            while len(lst) % 2 == 0 and lst:
                parent = parents(lst[-2:])[0]
                if len(upper) == lv + 1:
                    upper.append([])
                upper[lv + 1].append(parent)
                nodes.append((k + lv + 1, len(upper[lv + 1]) - 1, parent))
                lv += 1
                lst = upper[lv]
                if len(lst) % 2:
                    break
        else:
            for level in range(k - 1, -1, -1):
                if (end - start) >> level & 1:
                    off = ((end - start) >> (level + 1)) << (level + 1)
                    compact.append_subtree(level, _node(nodes, level, (start + off) >> level))
        conn.executemany("INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
        if end % every == 0 or end == n:
            note = sign_checkpoint(Checkpoint.from_head(origin, compact.head()), signer)
            conn.execute("INSERT INTO audit_checkpoints (size, at, note) VALUES (?, ?, ?)",
                         (end, "2026-05-01 09:00:00.000000", note))
    conn.execute("UPDATE audit_head SET size = ? WHERE id = 1", (n,))
    conn.execute("COMMIT")
    conn.execute(
        "CREATE TRIGGER audit_entries_next_only BEFORE INSERT ON audit_entries "
        "WHEN NEW.idx != (SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries) "
        "BEGIN SELECT RAISE(ABORT, 'audit entries must be appended in order'); END")
    conn.close()


def _node(nodes: list[tuple[int, int, bytes]], level: int, idx: int) -> bytes:
    for lv, i, h in nodes:
        if lv == level and i == idx:
            return h
    raise KeyError((level, idx))


async def bench_log(n: int, workdir: Path, workers: int = 1) -> dict[str, float]:
    db = workdir / "audit.db"
    engine = make_engine(sqlite_url(db))
    await migrate(engine)
    await engine.dispose()
    key = Ed25519PrivateKey.generate()
    t0 = time.perf_counter()
    bulk_fill(db, n, key)
    fill = time.perf_counter() - t0
    engine = make_engine(sqlite_url(db))
    verifier = audit.signer_from_key(key, audit.DEFAULT_ORIGIN).verifier()
    times = {}
    for key, cols in (("merkle_s", False), ("verify_s", True)):
        t0 = time.perf_counter()
        report = await verify_log(engine, verifier, progress=sys.stderr.isatty(),
                                  check_columns=cols, workers=workers)
        times[key] = time.perf_counter() - t0
        if report.failed or report.passed.get("entry") != n:
            for f in report.findings[:10]:
                print(f.line())
            raise SystemExit("bench: verification of a clean log failed")
    await engine.dispose()
    return {"entries": n, "fill_s": fill, **times, "merkle_rate": n / times["merkle_s"],
            "rate": n / times["verify_s"]}


# --- archive build + verify vs tar and sha256sum ------------------------------------------------


def _parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().rstrip("B")
    return int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t)


async def _stock_case(root: Path, size: int, segment_bytes: int):
    import datetime as dt
    import hashlib

    from lerec.hub.archive import CaseFile, LinkedSegment
    from lerec.hub.db import Device, Segment, sessionmaker
    from lerec.hub.db.types import from_ms
    from lerec.hub.storage import LocalBlobStore
    from lerec.protocol import ClockInfo, Receipt, SegmentManifest, sign_message
    from lerec.protocol.keys import raw_public

    engine = make_engine(sqlite_url(root / "hub.db"))
    await migrate(engine)
    sessions = sessionmaker(engine)
    store = LocalBlobStore(root / "store")
    hub_key, dev_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    async with sessions() as s, s.begin():
        s.add(Device(device_id="rec-bench", signing_key=raw_public(dev_key.public_key())))
    prev, links, seq, left = bytes(32), [], 0, size
    t0 = 1_780_000_000_000
    block = os.urandom(1 << 20)
    while left > 0:
        n = min(segment_bytes, left)
        tmp = store.staging_dir / f"seg{seq}"
        h = hashlib.sha256()
        with open(tmp, "wb") as f:  # noqa: ASYNC230  (a benchmark's setup)
            for off in range(0, n, len(block)):
                piece = (block[: min(len(block), n - off) - 8] + seq.to_bytes(4, "big")
                         + off.to_bytes(4, "big"))
                f.write(piece)
                h.update(piece)
        digest = h.digest()
        m = SegmentManifest(
            device_id="rec-bench", officer_id="officer-1", segment_id=f"bench-{seq:05d}",
            seq=seq, prev_hash=prev, start_ms=t0 + seq * 600_000, end_ms=t0 + seq * 600_000 + 5,
            clock=ClockInfo("synced", "hub", 0, 10), media_type="video/mp4",
            codecs=("avc1",), length=n, sha256=digest, chunk_size=1 << 20,
            capture_method="执法记录仪", producer="officer-1", object_of_proof="现场检查",
            note="", important=False, prerecord_ms=0, recovered=False, encryption=None)
        wire = sign_message(m, dev_key)
        mhash = hashlib.sha256(wire).digest()
        ref = await store.put_file(tmp, digest.hex(), n)
        receipt = sign_message(Receipt("hub", "rec-bench", m.segment_id, seq, digest, n, mhash,
                                       m.end_ms, ref), hub_key)
        async with sessions() as s, s.begin():
            s.add(Segment(segment_id=m.segment_id, device_id="rec-bench", seq=seq,
                          officer_id="officer-1", start_at=from_ms(m.start_ms),
                          end_at=from_ms(m.end_ms), media_type=m.media_type, length=n,
                          sha256=digest.hex(), clock_state="synced", clock_offset_ms=0,
                          prev_hash=prev, manifest=wire, manifest_hash=mhash, receipt=receipt,
                          stored_ref=ref))
            await audit.record_event(s, "segment_ingested", "device:rec-bench",
                                     [f"segment:{m.segment_id}"],
                                     {"manifest_hash": mhash.hex(), "seq": seq})
        links.append(LinkedSegment(m.segment_id, wire, receipt, ref))
        prev, seq, left = mhash, seq + 1, left - n
    case = CaseFile("BENCH-1", {"title": "bench", "case_type": "行政处罚", "org": "bench"},
                    [{"id": "R1", "kind": "现场检查笔录"}], dt.date(2026, 6, 1), segments=links)
    return engine, sessions, store, hub_key, case


def _timed_cmd(cmd: list[str]) -> float:
    import subprocess

    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


async def bench_archive(size: int, workdir: Path, segment_bytes: int = 256 << 20) -> dict:
    from lerec.hub.archive import build_archive
    from lerec.hub.verify.archivecheck import verify_archive

    engine, sessions, store, hub_key, case = await _stock_case(workdir, size, segment_bytes)
    media = sorted(str(p) for p in (store.objects).rglob("*") if p.is_file())
    _timed_cmd(["cat", *media])  # warm the page cache evenly for everyone
    tar_s = _timed_cmd(["tar", "-cf", str(workdir / "media.tar"), *media])
    (workdir / "media.tar").unlink()
    sha_s = _timed_cmd(["sha256sum", *media])
    t0 = time.perf_counter()
    result = await build_archive(sessions, store, case, hub_key=hub_key, archived_by="user:bench",
                                 archive_root=workdir / "archives")
    build_s = time.perf_counter() - t0
    vkey = audit.signer_from_key(hub_key, audit.DEFAULT_ORIGIN).verifier().encode()
    t0 = time.perf_counter()
    report = await asyncio.to_thread(verify_archive, result.path, trusted_hub_key=vkey)
    verify_s = time.perf_counter() - t0
    await engine.dispose()
    usable_only = [f for f in report.errors]
    if usable_only:
        for f in usable_only[:10]:
            print(f.line())
        raise SystemExit("bench: verification of a clean archive failed")
    return {"bytes": size, "segments": len(case.segments), "tar_s": tar_s, "sha256sum_s": sha_s,
            "build_s": build_s, "verify_s": verify_s}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--entries", type=int, default=10_000_000, help="audit entries (10,000,000)")
    p.add_argument("--size", default="5G", help="case media size, e.g. 5G, 500M (5G)")
    p.add_argument("--segment", default="256M", help="segment size (256M)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="log verification processes")
    p.add_argument("--only", choices=["log", "archive"], default=None)
    p.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    args = p.parse_args(argv)
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        if args.only in (None, "log"):
            (work / "log").mkdir()
            r = asyncio.run(bench_log(args.entries, work / "log", args.workers))
            rows.append(("log: generate entries+nodes (bulk)", f"{r['entries']:,} entries",
                         f"{r['fill_s']:.1f} s", ""))
            for label, key, rate in (("log: verify, Merkle only", "merkle_s", "merkle_rate"),
                                     ("log: verify, + search columns", "verify_s", "rate")):
                ok = "OK" if r[rate] >= 500_000 else "below 500,000/s target"
                rows.append((label, f"{r[rate]:,.0f} entries/s", f"{r[key]:.1f} s", ok))
        if args.only in (None, "archive"):
            (work / "archive").mkdir()
            size = _parse_size(args.size)
            r = asyncio.run(bench_archive(size, work / "archive", _parse_size(args.segment)))
            gb = r["bytes"] / 1e9
            rows.append(("archive: tar (same media files)", f"{gb / r['tar_s']:.2f} GB/s",
                         f"{r['tar_s']:.1f} s", ""))
            rows.append(("archive: sha256sum (same files)", f"{gb / r['sha256sum_s']:.2f} GB/s",
                         f"{r['sha256sum_s']:.1f} s", ""))
            for label, key in (("archive: build (lerec)", "build_s"),
                               ("archive: verify offline (lerec)", "verify_s")):
                vs_tar, vs_sha = r["tar_s"] / r[key], r["sha256sum_s"] / r[key]
                ok = "OK" if min(vs_tar, vs_sha) >= 0.7 else "below 0.7 target"
                rows.append((label, f"{gb / r[key]:.2f} GB/s", f"{r[key]:.1f} s",
                             f"x tar {vs_tar:.2f}, x sha256sum {vs_sha:.2f} {ok}"))
            rows.insert(len(rows) - 4, ("archive: case",
                                        f"{gb:.2f} GB in {r['segments']} segments", "", ""))
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"\nbench_trust on {os.cpu_count()} CPUs (ratios: their time / our time)")
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, width)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
