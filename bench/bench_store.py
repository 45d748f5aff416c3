"""CPU cost of sealing a recorded segment (ClipStore.seal: SHA-256 + ChaCha20-Poly1305 +
Ed25519 signature + fsync'd write + journal row), per second of 1080p30 video at 8 Mbit/s.

The segment is random bytes at the video's data rate (1 MB/s for 8 Mbit/s; a 300 s segment is
300 MB). CPU time is the process's (all threads, user + system) from ``time.process_time``,
also split with ``resource.getrusage``. As a yardstick measured in the same run, the same bytes
get a plain pass of SHA-256 plus ChaCha20-Poly1305 (no signing, no writing).

    .venv/bin/python bench/bench_store.py [--seconds 300] [--bitrate 8000000] [--repeat 3]

Target: sealing costs at most 2 % of one core per second of video.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import resource
import shutil
import time
from pathlib import Path

from common import median, table, workdir
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from lerec.device.media.segment import FinishedSegment
from support.rig import make_pki, make_store

TARGET = 0.02
CHUNK = 1024 * 1024


def _write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * CHUNK)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())


def _cpu() -> tuple[float, float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.process_time(), r.ru_utime, r.ru_stime


def _segment(path: Path, seconds: float) -> FinishedSegment:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
    return FinishedSegment(
        path=path, start_time=start, end_time=start + dt.timedelta(seconds=seconds),
        media_type="video/mp4", codecs=("avc1", "mp4a"), important=False, prerecord_seconds=0,
        frames=int(seconds * 30), clock_sync="synced", clock_source="bench",
        clock_offset_seconds=0.0)


def _baseline(path: Path) -> None:
    """SHA-256 and ChaCha20-Poly1305 over the file, chunk by chunk, nothing written."""
    aead = ChaCha20Poly1305(os.urandom(32))
    digest = hashlib.sha256()
    nonce = bytes(12)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            aead.encrypt(nonce, chunk, None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300, help="segment length (s)")
    ap.add_argument("--bitrate", type=int, default=8_000_000, help="video bit/s (8 Mbit/s)")
    ap.add_argument("--repeat", type=int, default=3, help="runs; the median is reported")
    args = ap.parse_args()

    root = workdir("store")
    try:
        pki = make_pki(root / "pki", ("rec-bench",))
        store = make_store(pki, "rec-bench", root / "card", chunk_size=CHUNK)
        size = int(args.seconds * args.bitrate / 8)
        seal_cpu, seal_user, seal_sys, seal_wall, base_cpu = [], [], [], [], []
        for _ in range(args.repeat):
            src = store.spool / "segment.mp4"
            _write_random(src, size)
            # the yardstick first, on the same (page-cached) bytes
            c0, _, _ = _cpu()
            _baseline(src)
            base_cpu.append(_cpu()[0] - c0)
            (c0, u0, s0), w0 = _cpu(), time.perf_counter()
            row = store.seal(_segment(src, args.seconds))
            (c1, u1, s1), w1 = _cpu(), time.perf_counter()
            seal_cpu.append(c1 - c0)
            seal_user.append(u1 - u0)
            seal_sys.append(s1 - s0)
            seal_wall.append(w1 - w0)
            row.wire_path.unlink()   # bench only: the store itself never deletes
        store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    cpu, base = median(seal_cpu), median(base_cpu)
    per_s = cpu / args.seconds
    rows = [
        ("segment", f"{args.seconds:g} s at {args.bitrate / 1e6:g} Mbit/s = {size / 1e6:.0f} MB"),
        ("seal CPU (median)", (f"{cpu:.3f} s  (user {median(seal_user):.3f}, "
                              f"system {median(seal_sys):.3f})")),
        ("seal wall time",
         f"{median(seal_wall):.3f} s  ({size / median(seal_wall) / 1e6:.0f} MB/s)"),
        ("yardstick CPU: SHA-256 + ChaCha20-Poly1305", f"{base:.3f} s"),
        ("seal / yardstick", f"{cpu / base:.2f}x"),
        ("CPU per second of video", f"{per_s * 1000:.2f} ms = {per_s * 100:.2f} % of one core"),
        ("target", (f"<= {TARGET * 100:.0f} % of one core: "
                   f"{'met' if per_s <= TARGET else 'NOT met'}")),
    ]
    print(table(rows, ("store pipeline (ClipStore.seal)", "figure")))


if __name__ == "__main__":
    main()
