"""Upload of one large segment through the hub, against a bare-subscriber baseline.

Hub path: a recorder announces the sealed segment and sends its chunks (QoS 1, window 16) through
mosquitto (mutual TLS 1.3) to the hub, which checks every chunk's hash, opens it
(ChaCha20-Poly1305), writes it, checks the whole segment's hash and the manifest signature,
fsyncs, links it into the write-once store, inserts the database row and audit entries and
sends a signed receipt, which the recorder verifies before deleting its copy. Timed from the
announce to the receipt.

Baseline, same run, same broker, same bytes: the same chunk messages published with the same
window into a bare paho subscriber (authenticated as the hub) that only writes the payloads
to a file (no fsync). Ratio = baseline time / hub time (1.0 = as fast as the bare pipe).
Both receivers run as their own process (the hub as ``lerec-hub run``, as deployed); both
senders run in this process.

    python bench/bench_upload.py [--mb 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import queue
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import (
    chunk_payloads,
    median,
    send_window,
    start_hub,
    stop_hub,
    table,
    wait_hub_ready,
    workdir,
)
from support.rig import fake_segment, make_pki, make_store, raw_client

from lerec.deploy.broker import Broker
from lerec.protocol import Signed, Want, decode_any, keys, topics


def connect(pki, identity: str, port: int, client_id: str):
    c = raw_client(pki, identity, port, client_id=client_id)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def baseline(pki, port: int, device: str, payloads: list[bytes], out_dir: Path, r: int) -> float:
    """Same chunk messages, same broker, into a bare subscriber process writing a file."""
    topic = topics.device_topic(device, "chunk")
    sub = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("bare_subscriber.py")), str(pki.root),
         str(port), topic, str(len(payloads)), str(out_dir / "baseline.bin")],
        stdout=subprocess.PIPE, text=True,
    )
    assert sub.stdout.readline().strip() == "ready"
    pub = connect(pki, device, port, f"bench-base-{r}")
    time.sleep(0.3)
    t0 = time.perf_counter()
    send_window(pub, topic, payloads)
    line = sub.stdout.readline().split()
    elapsed = time.perf_counter() - t0
    assert line and line[0] == "done", line
    sub.wait(30)
    pub.disconnect()
    pub.loop_stop()
    os.unlink(out_dir / "baseline.bin")
    return elapsed


def through_hub(pki, port: int, store, row, payloads: list[bytes], r: int | str,
                accept: bool = True) -> float:
    """Announce, send the same chunk messages with the same sender, wait for the receipt
    (``accept``: hand it to the recorder's store, which then forgets the segment)."""
    device = store.device_id
    replies: queue.Queue = queue.Queue()
    pub = raw_client(pki, device, port, client_id=f"bench-hubpath-{r}")
    pub.on_message = lambda c, u, m: replies.put(decode_any(m.payload))
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    pub.subscribe(topics.hub_topic(device, "reply"), qos=1)
    time.sleep(0.3)
    hub_key = keys.ed25519_public(pki.hub_signing_pub.read_bytes())
    t0 = time.perf_counter()
    pub.publish(topics.device_topic(device, "manifest"), row.manifest, qos=1)
    want = replies.get(timeout=60)
    assert isinstance(want, Want), want
    send_window(pub, topics.device_topic(device, "chunk"), payloads)
    receipt = replies.get(timeout=300)
    elapsed = time.perf_counter() - t0
    assert isinstance(receipt, Signed), receipt
    receipt.verify(hub_key)
    if accept:
        store.accept_receipt(receipt.wire)
    pub.disconnect()
    pub.loop_stop()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mb", type=int, default=200, help="segment size in MB (default 200)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--inline", action="store_true",
                    help="also time a hub with its chunk work on the event loop's thread "
                         "(ingest.chunk_workers = 0), for comparison")
    args = ap.parse_args()
    root = workdir("upload")
    pki = make_pki(root / "pki", devices=("rec-a",))
    size = args.mb * 1_000_000
    rows = []
    hub_times, base_times, inline_times = [], [], []
    with Broker(pki, root / "broker") as broker:
        for r in range(args.rounds):
            store = make_store(pki, "rec-a", root / f"rec-{r}", chunk_size=1024 * 1024)
            row = store.seal(fake_segment(store, size, start=dt.datetime.now(dt.UTC)))
            payloads = chunk_payloads(store, row)
            # every path starts with nothing left to write back (the sealed segment, the
            # previous path's 200 MB): otherwise the hub's fsync queues behind that writeback
            os.sync()
            base_times.append(baseline(pki, broker.port, "rec-a", payloads, root, r))
            if args.inline:
                os.sync()
                hub = start_hub(pki, broker.port, root / f"hub-{r}-inline",
                                ("rec-a",), f"lerec-hub-bench-{r}-inline", chunk_workers=0)
                try:
                    wait_hub_ready(pki, broker.port, "rec-a", f"bench-probe-{r}-inline")
                    inline_times.append(through_hub(pki, broker.port, store, row, payloads,
                                                    f"{r}-inline", accept=False))
                finally:
                    stop_hub(hub, pki, broker.port, f"lerec-hub-bench-{r}-inline",
                             root / f"hub-{r}-inline")
            os.sync()
            hub = start_hub(pki, broker.port, root / f"hub-{r}", ("rec-a",),
                            f"lerec-hub-bench-{r}")
            try:
                wait_hub_ready(pki, broker.port, "rec-a", f"bench-probe-{r}")
                hub_times.append(through_hub(pki, broker.port, store, row, payloads, r))
            finally:
                stop_hub(hub, pki, broker.port, f"lerec-hub-bench-{r}", root / f"hub-{r}")
                shutil.rmtree(root / f"rec-{r}", ignore_errors=True)
            rows.append((str(r + 1), f"{size / base_times[-1] / 1e6:.0f}",
                         f"{size / hub_times[-1] / 1e6:.0f}",
                         f"{base_times[-1] / hub_times[-1]:.2f}")
                        + ((f"{size / inline_times[-1] / 1e6:.0f}",
                            f"{base_times[-1] / inline_times[-1]:.2f}") if args.inline else ()))
    ratio = median(base_times) / median(hub_times)
    print(f"\nUpload of one {args.mb} MB segment (1 MiB chunks, QoS 1, window 16, mutual TLS 1.3)")
    print(table(rows, ("round", "bare subscriber MB/s", "through hub MB/s", "ratio")
                + (("hub, chunks on the loop MB/s", "ratio") if args.inline else ())))
    print(f"median ratio hub/bare = {ratio:.2f}  (target >= 0.8)")
    if args.inline:
        print(f"hub with chunks on the event loop (chunk_workers = 0): median ratio "
              f"{median(base_times) / median(inline_times):.2f}")


if __name__ == "__main__":
    main()
