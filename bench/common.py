"""Shared helpers for the benchmarks: a throwaway PKI + broker + hub on loopback."""

from __future__ import annotations

import atexit
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # reuse the test rig (real broker, hub, recorders)


def chunk_payloads(store, row) -> list[bytes]:
    """The encoded chunk messages of a sealed segment, as a recorder would send them."""
    from lerec.protocol import Chunk, encode_message
    from lerec.protocol.codec import sha256

    m = store.manifest(row)
    out = []
    for i in range(m.chunk_count):
        data = store.read_chunk(row, i)
        out.append(encode_message(Chunk(m.device_id, row.segment_id, i, sha256(data), data)))
    return out


def send_window(client, topic: str, payloads: list[bytes], window: int = 16) -> None:
    """The one sender every path uses: QoS 1, at most ``window`` unacknowledged publishes."""
    inflight = []
    for p in payloads:
        inflight.append(client.publish(topic, p, qos=1))
        if len(inflight) >= window:
            inflight.pop(0).wait_for_publish(120)
    for info in inflight:
        info.wait_for_publish(120)


def start_hub(pki, port: int, root: Path, devices, client_id: str,
              chunk_workers: int | None = None) -> subprocess.Popen:
    """``lerec-hub run`` as its own process, as deployed, with ``devices`` enrolled, its data
    and log in ``root``; ``chunk_workers`` overrides the configured default. A client id of
    its own per hub: a persistent session of an earlier hub would hold what was published
    while it was away."""
    from support.hubproc import enroll, write_hub_toml
    from support.rig import hub_config

    from lerec.hub.config import IngestSettings

    ingest = IngestSettings() if chunk_workers is None else IngestSettings(
        chunk_workers=chunk_workers)
    cfg = hub_config(pki, port, root, client_id=client_id, log_level="WARNING", ingest=ingest)
    root.mkdir(parents=True, exist_ok=True)
    enroll(cfg, pki, devices)
    write_hub_toml(cfg, root / "hub.toml")
    return subprocess.Popen([str(Path(sys.executable).parent / "lerec-hub"), "--config",
                             str(root / "hub.toml"), "run"],
                            stdout=open(root / "hub.log", "wb"), stderr=subprocess.STDOUT)


def stop_hub(hub: subprocess.Popen, pki, port: int, client_id: str, root: Path) -> None:
    """Stop a hub of :func:`start_hub`, end its broker session and remove its folder, like
    the baselines' files after their round: kept, every later hub would write into memory the
    kernel had not handed out before (slower to fault in on a virtual machine), while the
    baselines reuse what the last one freed."""
    hub.terminate()
    hub.wait(30)
    end_session(pki, port, client_id)
    shutil.rmtree(root, ignore_errors=True)


def end_session(pki, port: int, client_id: str) -> None:
    """Discard a stopped hub's persistent session. Left alone, the broker goes on queueing
    every later round's chunks for it (up to max_queued_messages, ~1 GB), and later rounds
    measure that: mosquitto writes its queues to disk every ``autosave_interval`` and stops
    serving meanwhile (seconds, with hundreds of MB queued)."""
    import threading

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from support.rig import raw_client

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    c = raw_client(pki, "hub", port, client_id=client_id)
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.connect("127.0.0.1", port, clean_start=True, properties=props)
    c.loop_start()
    assert connected.wait(30), "could not end the hub's session"
    c.disconnect()
    c.loop_stop()


def wait_hub_ready(pki, port: int, device: str, client_id: str = "bench-probe") -> None:
    """Block until the hub answers (a malformed manifest is refused with a reply), so no
    timing includes the hub's start-up."""
    import time

    from support.rig import raw_client

    from lerec.protocol import topics

    c = raw_client(pki, device, port, client_id=client_id)
    got: list[bytes] = []
    c.on_message = lambda cl, u, m: got.append(m.payload)
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.subscribe(topics.hub_topic(device, "reply"), qos=1)
    deadline = time.monotonic() + 60
    while not got and time.monotonic() < deadline:
        c.publish(topics.device_topic(device, "manifest"), b"probe", qos=1)
        time.sleep(0.5)
    c.disconnect()
    c.loop_stop()
    assert got, "hub did not come up"


def workdir(prefix: str, *, keep: bool = False) -> Path:
    """A fresh temporary folder, removed when the benchmark exits unless ``keep`` (a run of
    ``bench_upload`` leaves some 4 GB behind otherwise)."""
    path = Path(tempfile.mkdtemp(prefix=f"lerec-bench-{prefix}-"))
    if not keep:
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def median(xs: list[float]) -> float:
    return statistics.median(xs)
