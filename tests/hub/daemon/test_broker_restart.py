"""The real mosquitto restarts in the middle of several uploads: every segment ends up stored
exactly once and every recorder holds a receipt for each of them."""

from __future__ import annotations

import hashlib
import threading
import time

from lerec.protocol import Receipt, decode_signed, keys
from support.rig import fake_segment, stored_segments

DEVICES = ("rec-a", "rec-b", "rec-c")
SEGMENTS = 3
SIZE = 1_200_000


def test_broker_restart_mid_upload_loses_and_duplicates_nothing(rig):
    hub = rig.start_hub()
    contents: dict[tuple[str, int], bytes] = {}
    recorders = []
    for d in DEVICES:
        store, up = rig.recorder(d, chunk_size=16 * 1024, window=4, reply_timeout=2.0,
                                 max_backoff=2.0)
        for _ in range(SEGMENTS):
            seg = fake_segment(store, SIZE)
            data = seg.path.read_bytes()
            row = store.seal(seg)
            contents[(d, row.seq)] = data
        recorders.append((store, up))

    restarted = threading.Event()

    def restart_when_busy() -> None:
        # Wait until every recorder is mid-transfer, then take the broker away for a second.
        while not all(up.stats.chunks_sent > 20 for _, up in recorders):
            time.sleep(0.01)
        rig.broker.restart(down_seconds=1.0)
        restarted.set()

    t = threading.Thread(target=restart_when_busy)
    t.start()
    for _, up in recorders:
        up.start()
    t.join(60)
    assert restarted.is_set(), "the broker was never restarted"
    for _, up in recorders:
        assert up.wait_idle(120), f"{up.device_id} still has pending segments"

    rows = stored_segments(hub)
    assert sorted((r.device_id, r.seq) for r in rows) == sorted(contents), "each segment once"
    hub_pub = keys.ed25519_public(rig.pki.hub_signing_pub.read_bytes())
    for r in rows:
        data = contents[(r.device_id, r.seq)]
        assert r.sha256 == hashlib.sha256(data).hexdigest()
        assert hub.service.store.path_for(r.stored_ref).read_bytes() == data
        decode_signed(r.receipt, Receipt).verify(hub_pub)
    for store, up in recorders:
        assert [store.journal.get(s).state for s in range(SEGMENTS)] == ["receipted"] * SEGMENTS
        assert up.stats.connects >= 2, "the recorder reconnected after the restart"
    ingest = hub.service.ingest
    assert ingest.stats.segments_stored == len(contents), "nothing counted twice"
    assert ingest.stats.chunks_fast_lane > 0, "concurrent uploads went through the fast lane"
    assert hub.service.bridge.connects >= 2, "the hub reconnected and resubscribed"
    assert not list(hub.service.store.staging_dir.rglob("data")), "staging cleaned"
