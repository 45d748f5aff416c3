"""Many recorders at once: 20 simulated recorders upload through the real broker and hub.

Hub path: each recorder (random-content segments, sealed and signed by device.store) announces
each segment and sends its chunks through mosquitto (mutual TLS 1.3, QoS 1) into the hub
daemon running as its own process (``lerec-hub run``): every chunk hash-checked and decrypted,
whole-segment hash, manifest signature, fsync, write-once store, database row + audit entries,
signed receipt verified by the recorder, one segment after another. Timed from the start of
all uploads until every recorder holds a receipt for every segment. The senders are the same
code as the baseline's, so the ratio measures the hub.

Baseline, same run, same broker, same bytes: the same chunk messages, published by 20 clients
at once with the same window, into a bare paho subscriber process that only writes them to a
file. Ratio = baseline time / hub time (1.0 = the hub is as fast as the bare pipe).
Also reported: time from a segment's last chunk leaving the recorder to its receipt (p50/p95).

A third path is a reference for what the protocol itself costs: a subscriber that does only the
work every hub must do for every chunk and segment — SHA-256 of each chunk, ChaCha20-Poly1305
decryption, SHA-256 of each segment, an fsync before a segment counts as stored — through the
hub's own receive path (``lerec.hub.daemon.mqtt._Client``, in paho's network thread), with no
database, no receipts, no transfer state on disk, no event loop. On a two-core machine the broker
and the twenty senders already keep both cores busy during the baseline, so that work's CPU time
comes straight off the throughput; the hub, which does all of it and more, is measured against
both.

    python bench/bench_ingest_many.py [--recorders 20] [--segments 3] [--mb 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import datetime as dt
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import chunk_payloads, send_window, start_hub, stop_hub, table, wait_hub_ready
from support.hubproc import child_pids
from support.rig import (
    fake_segment,
    make_pki,
    make_store,
    raw_client,
)

from lerec.deploy.broker import Broker
from lerec.protocol import Signed, Want, decode_any, keys, topics

CHUNK = 256 * 1024
WINDOW = 16

# The two subscriber processes of the baseline paths: the same head and tail (the hub's
# certificate, every recorder's chunk topic, "ready" once subscribed, "done" when ``done`` is
# set, after ``finish()``), each with its own ``on_message`` and client class between them.
_SUBSCRIBER_HEAD = r"""
import hashlib, os, sys, threading, time, ssl
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
ca, cert, key, port, total, out = sys.argv[1:7]
total = int(total); n = 0; done = threading.Event()
"""
_SUBSCRIBER_TAIL = r"""
ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
ctx.load_cert_chain(cert, key)
c = Client(CallbackAPIVersion.VERSION2, client_id=CLIENT_ID, protocol=mqtt.MQTTv5)
c.tls_set_context(ctx); c.on_message = on_message
c.on_subscribe = lambda *a: print("ready", flush=True)
c.connect("127.0.0.1", int(port)); c.subscribe("lerec/v1/dev/+/chunk", qos=1); c.loop_start()
done.wait(); finish(); print("done", flush=True); c.disconnect(); c.loop_stop()
"""

BARE_SUBSCRIBER = _SUBSCRIBER_HEAD + r"""
Client, CLIENT_ID = mqtt.Client, "bench-bare-sub"
f = open(out, "wb")
def on_message(c, u, m):
    global n
    f.write(m.payload); n += 1
    if n == total: done.set()
finish = f.close
""" + _SUBSCRIBER_TAIL

REQUIRED_WORK_SUBSCRIBER = _SUBSCRIBER_HEAD + r"""
from lerec.protocol import Chunk, SegmentManifest, decode_message, decode_signed, keys
from lerec.protocol.envelope import Opener
from lerec.hub.daemon.mqtt import _Client  # the hub's receive path (bodies read in place)
Client, CLIENT_ID = _Client, "bench-required-sub"
box, manifests = sys.argv[7:9]
box = keys.x25519_private(open(box, "rb").read())
segs = {}
for wire in open(manifests, "rb").read().split():
    m = decode_signed(bytes.fromhex(wire.decode()), SegmentManifest).message
    segs[m.segment_id] = [m, Opener(box, m.encryption, m.segment_id), hashlib.sha256(), None, 0]
os.makedirs(out, exist_ok=True)
def on_message(c, u, msg):
    global n
    ch = decode_message(msg.payload, Chunk)
    seg = segs[ch.segment_id]
    m, opener, h = seg[0], seg[1], seg[2]
    if hashlib.sha256(ch.data).digest() != ch.sha256:
        raise SystemExit("chunk hash")
    plain = opener.open(ch.index, ch.data, ch.index == m.chunk_count - 1)
    h.update(plain)
    if seg[3] is None:
        seg[3] = os.open(os.path.join(out, ch.segment_id), os.O_WRONLY | os.O_CREAT, 0o644)
    os.pwrite(seg[3], plain, ch.index * m.chunk_size)
    seg[4] += 1
    if seg[4] == m.chunk_count:
        if h.digest() != m.sha256:
            raise SystemExit("segment hash")
        os.fsync(seg[3]); os.close(seg[3])
    n += 1
    if n == total: done.set()
finish = lambda: None
""" + _SUBSCRIBER_TAIL


def baseline(pki, port: int, payloads: dict[str, list[bytes]], out: Path, usage: Usage,
             manifests: Path | None = None) -> tuple[float, float]:
    """Seconds until the subscriber has every chunk, and the CPU seconds it used. With
    ``manifests``: the required-work subscriber (checks, decrypts, hashes and fsyncs)."""
    total = sum(len(v) for v in payloads.values())
    if manifests is None:
        script, extra = BARE_SUBSCRIBER, []
    else:
        script, extra = REQUIRED_WORK_SUBSCRIBER, [str(pki.hub_box_key), str(manifests)]
    sub = subprocess.Popen(
        [sys.executable, "-c", script, str(pki.ca_cert), str(pki.hub_cert),
         str(pki.hub_key), str(port), str(total), str(out), *extra],
        stdout=subprocess.PIPE, text=True)
    assert sub.stdout.readline().strip() == "ready"
    cpu0 = cpu_seconds(sub.pid)
    clients = {}
    for d in payloads:
        c = raw_client(pki, d, port, client_id=f"bench-base-{d}")
        c.connect("127.0.0.1", port)
        c.loop_start()
        clients[d] = c
    time.sleep(0.5)

    def send(d: str) -> None:
        send_window(clients[d], topics.device_topic(d, "chunk"), payloads[d], WINDOW)

    usage.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=send, args=(d,)) for d in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sub.stdout.readline().strip() == "done"
    elapsed = time.perf_counter() - t0
    usage.stop()
    cpu = cpu_seconds(sub.pid) - cpu0
    sub.wait(30)
    for c in clients.values():
        c.disconnect()
        c.loop_stop()
    if out.is_dir():
        shutil.rmtree(out)
    else:
        out.unlink()
    return elapsed, cpu


class Usage:
    """Where the CPU went during a timed phase: the whole machine (``/proc/stat``), the broker,
    and this process (the senders' threads). Shows whether a phase was bound by one thread or
    by the machine."""

    def __init__(self, broker_pid: int) -> None:
        self.broker_pid = broker_pid
        self.start_at: tuple[float, ...] | None = None
        self.busy = self.broker = self.senders = 0.0  # cores busy, CPU s, CPU s
        self.hub_main = 0.0  # the hub's own process, without its chunk workers

    def _read(self) -> tuple[float, ...]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        hz = os.sysconf("SC_CLK_TCK")
        t = os.times()
        return (time.perf_counter(), (sum(fields[:8]) - idle) / hz,
                cpu_seconds(self.broker_pid), t.user + t.system)

    def start(self) -> None:
        self.start_at = self._read()

    def stop(self) -> None:
        assert self.start_at is not None
        end = self._read()
        wall, busy, broker, senders = (b - a for a, b in zip(self.start_at, end))
        self.busy, self.broker, self.senders = busy / wall, broker, senders


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its living descendants (the hub and its chunk worker)."""
    total = cpu_seconds(pid)
    for child in child_pids(pid):
        try:
            total += tree_cpu_seconds(child)
        except FileNotFoundError:  # exited meanwhile
            pass
    return total


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))]


def through_hub(pki, port: int, stores, rows, payloads, usage: Usage,
                accept: bool = True) -> tuple[float, list[float]]:
    """Every recorder announces each segment, sends its chunks with the same sender as the
    baseline, and waits for the hub's signed receipt before the next segment. ``accept``:
    hand the receipt to the recorder's store (first round; later rounds go to a fresh hub
    with the same sealed segments, and only verify the receipt)."""
    hub_key = keys.ed25519_public(pki.hub_signing_pub.read_bytes())
    latencies: list[float] = []
    lock = threading.Lock()
    clients = {}
    replies: dict[str, queue.Queue] = {}
    for d in stores:
        q: queue.Queue = queue.Queue()
        c = raw_client(pki, d, port, client_id=f"bench-hub-{d}")
        c.on_message = lambda cl, u, m, _q=q: _q.put(decode_any(m.payload))
        c.connect("127.0.0.1", port)
        c.loop_start()
        c.subscribe(topics.hub_topic(d, "reply"), qos=1)
        clients[d], replies[d] = c, q
    time.sleep(0.5)
    errors: list[BaseException] = []

    def run(d: str) -> None:
        try:
            c, q = clients[d], replies[d]
            for row, chunks in zip(rows[d], payloads[d]):
                c.publish(topics.device_topic(d, "manifest"), row.manifest, qos=1)
                want = q.get(timeout=120)
                assert isinstance(want, Want), want
                send_window(c, topics.device_topic(d, "chunk"), chunks, WINDOW)
                sent = time.perf_counter()
                receipt = q.get(timeout=300)
                got = time.perf_counter()
                assert isinstance(receipt, Signed), receipt
                receipt.verify(hub_key)
                if accept:
                    stores[d].accept_receipt(receipt.wire)
                with lock:
                    latencies.append(got - sent)
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    usage.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(d,)) for d in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    usage.stop()
    for c in clients.values():
        c.disconnect()
        c.loop_stop()
    if errors:
        raise errors[0]
    return elapsed, latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--recorders", type=int, default=20)
    ap.add_argument("--segments", type=int, default=3, help="segments per recorder")
    ap.add_argument("--mb", type=float, default=8, help="segment size in MB")
    ap.add_argument("--inline", action="store_true",
                    help="a fourth path: the hub with its chunk work on the event loop's thread "
                         "(ingest.chunk_workers = 0), for comparison")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds of the three paths (every other round in reverse order); "
                         "the median ratio is reported")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lerec-ingest-many-"))
    devices = [f"rec-{i:03d}" for i in range(args.recorders)]
    pki = make_pki(root / "pki", devices=tuple(devices))
    size = int(args.mb * 1_000_000)
    print(f"sealing {args.recorders} x {args.segments} segments of {args.mb} MB ...", flush=True)
    stores, rows, payloads = {}, {}, {}
    for d in devices:
        store = make_store(pki, d, root / d, chunk_size=CHUNK)
        rows[d] = [store.seal(fake_segment(store, size, start=dt.datetime.now(dt.UTC)))
                   for _ in range(args.segments)]
        stores[d] = store
        payloads[d] = [chunk_payloads(store, row) for row in rows[d]]
    total_bytes = size * args.recorders * args.segments
    # The sealed segments are ~0.5 GB of dirty pages: unsynced, the kernel writes them back
    # ~30 s later, in the middle of a round, and the hub's fsyncs queue behind that.
    os.sync()

    flat = {d: [p for seg in payloads[d] for p in seg] for d in devices}
    manifests = root / "manifests"
    manifests.write_bytes(b"\n".join(r.manifest.hex().encode()
                                          for d in devices for r in rows[d]))
    results: list[tuple[float, float, list[float]]] = []
    required: list[tuple[float, float]] = []
    inline: list[tuple[float, float, list[float], float]] = []
    with Broker(pki, root / "broker") as broker:
        for r in range(args.rounds):
            use = {name: Usage(broker.proc.pid)
                   for name in ("bare", "required", "hub", "inline")[:4 if args.inline else 3]}

            def bare() -> tuple[float, float]:
                return baseline(pki, broker.port, flat, root / "baseline.bin", use["bare"])

            def required_only() -> tuple[float, float]:
                return baseline(pki, broker.port, flat, root / "required", use["required"],
                                manifests)

            def hub_path(r: int = r, inline: bool = False) -> tuple[float, list[float], float]:
                # a fresh hub (database, store) each round, fed the same sealed segments
                name = f"hub{r}" + ("-inline" if inline else "")
                hub = start_hub(pki, broker.port, root / name, devices, f"lerec-{name}",
                                chunk_workers=0 if inline else None)
                u = use["inline" if inline else "hub"]
                try:
                    wait_hub_ready(pki, broker.port, devices[0])
                    cpu0, main0 = tree_cpu_seconds(hub.pid), cpu_seconds(hub.pid)
                    hub_time, latencies = through_hub(pki, broker.port, stores, rows,
                                                      payloads, u, accept=r == 0 and not inline)
                    u.hub_main = cpu_seconds(hub.pid) - main0
                    return hub_time, latencies, tree_cpu_seconds(hub.pid) - cpu0
                finally:
                    stop_hub(hub, pki, broker.port, f"lerec-{name}", root / name)

            def hub_inline() -> tuple[float, list[float], float]:
                return hub_path(inline=True)

            # every other round in the opposite order, so no path always runs first
            order = [bare, required_only, hub_path] + ([hub_inline] if args.inline else [])
            out: dict[Any, Any] = {}
            for path in order if r % 2 == 0 else order[::-1]:
                os.sync()  # every path starts with nothing left to write back
                out[path] = path()
            base, base_cpu = out[bare]
            req, req_cpu = out[required_only]
            required.append((req, req_cpu))
            hub_time, latencies, hub_cpu = out[hub_path]
            assert len(latencies) == args.recorders * args.segments
            results.append((base, hub_time, latencies, base_cpu, hub_cpu))
            print(f"round {r + 1}: bare {base:.2f} s, required work {req:.2f} s (ratio "
                  f"{base / req:.2f}), hub {hub_time:.2f} s, "
                  f"ratio {base / hub_time:.2f}; CPU: bare subscriber {base_cpu:.2f} s, "
                  f"required work {req_cpu:.2f} s, hub "
                  f"{hub_cpu:.2f} s (main process {use['hub'].hub_main:.2f} s); last "
                  f"chunk->receipt p50 "
                  f"{statistics.median(latencies) * 1000:.0f} ms, p95 "
                  f"{pct(latencies, 0.95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms",
                  flush=True)
            if args.inline:
                t_in, lat_in, cpu_in = out[hub_inline]
                inline.append((base, t_in, lat_in, cpu_in))
                print(f"  hub with chunks on the event loop: {t_in:.2f} s, ratio "
                      f"{base / t_in:.2f}, CPU {cpu_in:.2f} s; last chunk->receipt p50 "
                      f"{statistics.median(lat_in) * 1000:.0f} ms, p95 "
                      f"{pct(lat_in, 0.95) * 1000:.0f} ms", flush=True)
            phases = ", ".join(f"{name} {u.busy:.2f}; {u.broker:.2f}, {u.senders:.2f}"
                               for name, u in use.items())
            print(f"  machine (cores busy of {os.cpu_count() or 0}; broker, senders CPU s): "
                  f"{phases}", flush=True)
    ratios = sorted(r[0] / r[1] for r in results)
    req_ratios = sorted(res[0] / req[0] for res, req in zip(results, required))
    base, hub_time, latencies, base_cpu, hub_cpu = sorted(
        results, key=lambda x: x[0] / x[1])[len(results) // 2]
    rows_out = [
        ("bare subscriber (baseline)", f"{base:.2f}", f"{total_bytes / base / 1e6:.0f}",
         f"{base_cpu:.2f}", "-", "-"),
        ("required work only (hash, decrypt, fsync)",
         f"{statistics.median(q[0] for q in required):.2f}",
         f"{total_bytes / statistics.median(q[0] for q in required) / 1e6:.0f}",
         f"{statistics.median(q[1] for q in required):.2f}", "-", "-"),
        ("lerec hub (verify+store+receipt)", f"{hub_time:.2f}",
         f"{total_bytes / hub_time / 1e6:.0f}", f"{hub_cpu:.2f}",
         f"{statistics.median(latencies) * 1000:.0f}", f"{pct(latencies, 0.95) * 1000:.0f}"),
    ]
    header = ("path", "seconds", "MB/s", "CPU s", "p50 last chunk->receipt ms", "p95 ms")
    print(f"\n{args.recorders} recorders x {args.segments} segments x {args.mb} MB = "
          f"{total_bytes / 1e6:.0f} MB ({CHUNK // 1024} KiB chunks, QoS 1, window {WINDOW}, "
          f"mutual TLS 1.3); median round of {args.rounds}:")
    print(table(rows_out, header))
    print(f"throughput ratio hub/bare = {statistics.median(ratios):.2f} (median; rounds: "
          f"{', '.join(f'{x:.2f}' for x in ratios)})  (target >= 0.8)")
    if inline:
        in_ratios = sorted(b / t for b, t, _l, _c in inline)
        print(f"hub with chunks on the event loop (chunk_workers = 0) / bare = "
              f"{statistics.median(in_ratios):.2f} (median; rounds: "
              f"{', '.join(f'{x:.2f}' for x in in_ratios)}); p95 last chunk->receipt "
              f"{statistics.median(pct(l, 0.95) for _b, _t, l, _c in inline) * 1000:.0f} ms "
              "(median of rounds)")
    print(f"required work only / bare = {statistics.median(req_ratios):.2f} (median; rounds: "
          f"{', '.join(f'{x:.2f}' for x in req_ratios)}): a subscriber doing nothing but the "
          f"hashing, decryption and fsync every hub must do")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
