"""kill -9 of the hub (``lerec-hub run`` as a child process) at random points during ingest,
50 times, while three recorders keep sealing and uploading small segments. Afterwards the hub
runs once more until the recorders hold nothing: every segment stored exactly once."""

from __future__ import annotations

import random
import threading
import time

from lerec.hub.storage import LocalBlobStore
from lerec_fault_gauntlet import check_outcome  # type: ignore[import-not-found]
from support.hubproc import HubProcess, enroll, write_hub_toml
from support.rig import hub_config

KILLS = 50
DEVICES = ("rec-a", "rec-b", "rec-c")


def test_hub_killed_50_times_mid_ingest_loses_nothing(pki, broker, tmp_path, fleet_factory):
    cfg = hub_config(pki, broker.port, tmp_path / "hub", client_id="lerec-hub-kill")
    enroll(cfg, pki, DEVICES)
    hub = HubProcess(write_hub_toml(cfg, tmp_path / "hub.toml"), tmp_path / "hub.log")
    fleet = fleet_factory(broker.port, DEVICES)
    rng = random.Random(0x1e7ec)
    for d in DEVICES:
        fleet.seal(d, 60_000)
    stop = threading.Event()

    def keep_recording() -> None:  # recording goes on while the hub crashes
        while not stop.wait(0.3):
            fleet.seal(rng.choice(DEVICES), rng.randrange(20_000, 120_000))

    recorder = threading.Thread(target=keep_recording, daemon=True)
    recorder.start()
    fleet.start()
    try:
        for i in range(KILLS):
            if i % 3 == 2:  # during start-up: imports, migration check, connect, backlog
                hub.start(wait=False)
                time.sleep(rng.uniform(0.3, 1.8))
            else:  # during ingest
                hub.start()
                time.sleep(rng.uniform(0.0, 0.6))
            hub.kill()
        stop.set()
        recorder.join()
        hub.start()
        assert fleet.wait_idle(120), f"{fleet.pending()} segments still on the recorders"
    finally:
        stop.set()
        fleet.stop()
        hub.stop()
    out = check_outcome("kill -9 hub", KILLS, fleet.contents, cfg.database_url,
                        LocalBlobStore(cfg.storage_dir), pki, fleet.stores,
                        note="random points: start-up, manifest, chunks, store, commit")
    assert hub.starts == KILLS + 1
    assert out.lost == 0 and out.invalid == 0, out
    assert out.sent >= KILLS, "recording went on throughout"
