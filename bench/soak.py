"""Soak: recorders upload for a long time while the hub is restarted every few minutes; the
hub process's memory (RSS) and open files must stay flat, and nothing may be lost.

20 simulated recorders (device.store + device.upload, this process) each seal a small segment
every few seconds and upload it through the real mosquitto to ``lerec-hub run`` (a child
process, SQLite + local store by default). Every ``--restart-every`` seconds the hub is
stopped (SIGTERM; every other time SIGKILL) and started again. Every 2 s the hub's RSS and
open file descriptors (from /proc) are sampled. Output: ``soak.csv`` and, when matplotlib is
installed, ``soak.png`` in --out; a summary per hub run (RSS after warm-up and at its end, its
slope, file descriptors min/max) and the totals (sealed, stored, lost).

    python bench/soak.py                   # 30 minutes
    python bench/soak.py --minutes 4 --restart-every 90
    python bench/soak.py --minutes 20 --restart-every 100000 --trace-memory trace.txt

Not part of the test suite (it runs for minutes by design).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import random
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import table, workdir
from lerec.deploy.broker import Broker
from lerec.hub.storage import LocalBlobStore
from support.hubproc import HubProcess, enroll, query_segments, write_hub_toml
from support.rig import fake_segment, hub_config, make_pki, make_store, make_uploader


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t seconds, value) in value per minute."""
    if len(points) < 3:
        return 0.0
    ts = [p[0] for p in points]
    vs = [p[1] for p in points]
    mt, mv = statistics.fmean(ts), statistics.fmean(vs)
    den = sum((t - mt) ** 2 for t in ts) or 1.0
    return 60 * sum((t - mt) * (v - mv) for t, v in zip(ts, vs)) / den


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--recorders", type=int, default=20)
    ap.add_argument("--restart-every", type=float, default=180.0, help="seconds")
    ap.add_argument("--segment-kb", type=int, default=200)
    ap.add_argument("--every", type=float, default=5.0,
                    help="seconds between segments of one recorder")
    ap.add_argument("--warmup", type=float, default=20.0,
                    help="seconds after each start not used for the slope")
    ap.add_argument("--trace-memory", type=Path, metavar="FILE",
                    help="run the hub with --trace-memory FILE (tracemalloc growth by call "
                    "stack, rewritten every minute; slows the hub)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    root = workdir("soak", keep=True)  # its logs, for a look afterwards
    devices = tuple(f"soak-{i:02d}" for i in range(args.recorders))
    pki = make_pki(root / "pki", devices)
    broker = Broker(pki, root / "broker")
    broker.start()
    cfg = hub_config(pki, broker.port, root / "hub", client_id="lerec-hub-soak")
    cfg = cfg.model_copy(update={"log_level": "INFO"})
    enroll(cfg, pki, devices)
    env = {"LEREC_TRACE_MEMORY": str(args.trace_memory.resolve())} if args.trace_memory else None
    hub = HubProcess(write_hub_toml(cfg, root / "hub.toml"), root / "hub.log", env=env)
    hub.start()

    stores = {d: make_store(pki, d, root / "rec" / d, 64 * 1024) for d in devices}
    uploaders = [make_uploader(pki, s, broker.port, reply_timeout=3.0, max_backoff=2.0)
                 for s in stores.values()]
    sealed = 0
    seal_lock = threading.Lock()
    stop = threading.Event()

    def record(store) -> None:  # type: ignore[no-untyped-def]
        nonlocal sealed
        rng = random.Random(store.device_id)
        stop.wait(rng.uniform(0, args.every))
        while not stop.is_set():
            size = int(args.segment_kb * 1024 * rng.uniform(0.5, 1.5))
            store.seal(fake_segment(store, size))
            with seal_lock:
                sealed += 1
            stop.wait(args.every)

    threads = [threading.Thread(target=record, args=(s,), daemon=True) for s in stores.values()]
    for up in uploaders:
        up.start()
    for t in threads:
        t.start()

    samples: list[dict[str, float]] = []
    run_no, run_start = 1, time.monotonic()
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    next_restart = t0 + args.restart_every
    restarts = 0
    print(f"soak: {args.recorders} recorders, {args.minutes} min, hub restarted every "
          f"{args.restart_every:.0f} s; data in {root}", flush=True)
    try:
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_restart:
                hub.kill(signal.SIGKILL if restarts % 2 else signal.SIGTERM)
                hub.start()
                restarts += 1
                run_no += 1
                run_start = time.monotonic()
                next_restart = run_start + args.restart_every
            try:
                rss, fds = hub.rss_bytes(), hub.open_files()
                worker_rss = hub.worker_rss_bytes()
            except FileNotFoundError:
                continue
            stored = sum(up.stats.uploaded for up in uploaders)
            samples.append({"t": round(now - t0, 1), "run": run_no,
                            "run_t": round(now - run_start, 1), "rss_mb": rss / 2**20,
                            "worker_rss_mb": worker_rss / 2**20, "open_files": fds,
                            "sealed": sealed, "receipted": stored})
            if len(samples) % 30 == 0:
                s = samples[-1]
                print(f"  t={s['t']:6.0f}s run {run_no} rss={s['rss_mb']:.1f} MB "
                      f"(chunk worker {s['worker_rss_mb']:.1f} MB) "
                      f"fds={fds} sealed={sealed} receipted={stored}", flush=True)
            time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join()
        drained = all(up.wait_idle(120) for up in uploaders)
    finally:
        stop.set()
        for up in uploaders:
            up.stop()
        hub.stop()
        broker.stop()

    rows = query_segments(cfg.database_url)
    store = LocalBlobStore(cfg.storage_dir)
    stored_ok = sum(1 for r in rows if store.path_for(r.stored_ref).exists())
    lost = sealed - stored_ok

    csv_path = args.out / "soak.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(samples[0]))
        w.writeheader()
        w.writerows(samples)

    summary = []
    for run in sorted({int(s["run"]) for s in samples}):
        pts = [s for s in samples if s["run"] == run]
        warm = [s for s in pts if s["run_t"] >= args.warmup] or pts
        # a bounded cache still filling rises at first and then levels off: the second half's
        # slope tells a plateau from a leak
        late = [s for s in warm if s["run_t"] >= pts[-1]["run_t"] / 2] or warm
        summary.append((
            str(run), f"{pts[-1]['run_t']:.0f}", f"{warm[0]['rss_mb']:.1f}",
            f"{warm[-1]['rss_mb']:.1f}",
            f"{slope_per_minute([(s['run_t'], s['rss_mb']) for s in warm]):+.2f}",
            f"{slope_per_minute([(s['run_t'], s['rss_mb']) for s in late]):+.3f}",
            f"{warm[0]['worker_rss_mb']:.1f}-{warm[-1]['worker_rss_mb']:.1f}",
            f"{min(s['open_files'] for s in warm):.0f}-{max(s['open_files'] for s in warm):.0f}",
            f"{slope_per_minute([(s['run_t'], s['open_files']) for s in warm]):+.2f}",
        ))
    print()
    print(table(summary, ("hub run", "seconds", "RSS after warm-up MB", "RSS at end MB",
                          "RSS slope MB/min", "2nd half", "worker RSS MB", "open files",
                          "fd slope /min")))
    print(f"\nsealed {sealed}, stored {stored_ok} (rows {len(rows)}), lost {lost}, "
          f"hub restarts {restarts}, drained {drained}")
    print(f"samples: {csv_path}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
        ts = [s["t"] / 60 for s in samples]
        ax1.plot(ts, [s["rss_mb"] for s in samples], lw=1)
        ax1.set_ylabel("hub RSS (MB)")
        ax2.plot(ts, [s["open_files"] for s in samples], lw=1, color="tab:orange")
        ax2.set_ylabel("hub open files")
        ax2.set_xlabel("minutes")
        for s0, s1 in itertools.pairwise(samples):
            if s1["run"] != s0["run"]:
                for ax in (ax1, ax2):
                    ax.axvline(s1["t"] / 60, color="grey", ls=":", lw=0.8)
        fig.suptitle(f"lerec soak: {args.recorders} recorders, hub restarted every "
                     f"{args.restart_every:.0f} s; sealed {sealed}, lost {lost}")
        png = args.out / "soak.png"
        fig.savefig(png, dpi=110)
        print(f"plot: {png}")
    except ImportError:
        print("matplotlib not installed: CSV only")
    return 0 if lost == 0 and drained else 1


if __name__ == "__main__":
    sys.exit(main())
