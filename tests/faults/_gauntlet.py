"""Helpers of the fault gauntlet (loaded by conftest as ``lerec_fault_gauntlet``): a fleet of
simulated recorders (device.store + device.upload, in this process), the outcome check run
after every scenario, and the ledger the session's table is printed from.

After each fault: every segment a recorder sealed must be in the hub's database exactly once
with a blob that hashes to its signed manifest and a receipt the recorder verified (``lost``
counts those that are not), and no row may exist that no recorder sealed (``invalid``).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lerec.device.store import ClipStore
from lerec.device.upload import Uploader
from lerec.hub.storage import LocalBlobStore
from lerec.protocol import Receipt, decode_signed, keys
from support.hubproc import query_segments
from support.rig import fake_segment, make_store, make_uploader


@dataclass
class Outcome:
    scenario: str
    runs: int
    sent: int
    stored: int
    lost: int
    invalid: int
    note: str = ""


LEDGER: list[Outcome] = []


class Fleet:
    """Simulated recorders; ``contents`` maps (device, seq) to the plaintext each sealed."""

    def __init__(self, pki: Any, port: int, root: Path, devices: tuple[str, ...],
                 chunk_size: int = 16 * 1024, **upload: Any) -> None:
        self.pki = pki
        self.contents: dict[tuple[str, int], bytes] = {}
        self.stores: dict[str, ClipStore] = {}
        self.uploaders: dict[str, Uploader] = {}
        self._lock = threading.Lock()
        upload = {"reply_timeout": 2.0, "max_backoff": 1.0, "window": 4, **upload}
        for d in devices:
            store = make_store(pki, d, root / "recorders" / d, chunk_size)
            self.stores[d] = store
            self.uploaders[d] = make_uploader(pki, store, port, **upload)

    def seal(self, device: str, size: int) -> None:
        store = self.stores[device]
        seg = fake_segment(store, size)
        data = seg.path.read_bytes()
        with self._lock:
            row = store.seal(seg)
            self.contents[(device, row.seq)] = data

    def start(self) -> None:
        for up in self.uploaders.values():
            up.start()

    def stop(self) -> None:
        for up in self.uploaders.values():
            up.stop()

    def wait_idle(self, timeout: float) -> bool:
        return all(up.wait_idle(timeout) for up in self.uploaders.values())

    def pending(self) -> int:
        return sum(len(s.pending()) for s in self.stores.values())


def check_outcome(scenario: str, runs: int, contents: dict[tuple[str, int], bytes],
                  database_url: str, store: LocalBlobStore, pki: Any,
                  stores: dict[str, ClipStore] | None = None, note: str = "") -> Outcome:
    """Compare what the recorders sealed with what the hub holds; record and return it."""
    hub_pub = keys.ed25519_public(pki.hub_signing_pub.read_bytes())
    rows = query_segments(database_url)
    by_key: dict[tuple[str, int], list[Any]] = {}
    for r in rows:
        by_key.setdefault((r.device_id, r.seq), []).append(r)
    good = 0
    for key, data in contents.items():
        found = by_key.get(key, [])
        if len(found) != 1:
            continue
        r = found[0]
        digest = hashlib.sha256(data).hexdigest()
        receipt = decode_signed(r.receipt, Receipt).verify(hub_pub)
        path = store.path_for(r.stored_ref)
        ok = (r.sha256 == digest and receipt.sha256.hex() == digest and path.exists()
              and hashlib.sha256(path.read_bytes()).hexdigest() == digest)
        if ok:
            try:
                asyncio.run(store.verify(r.stored_ref))
            except Exception:  # noqa: BLE001 - any failure to verify counts as lost
                ok = False
        if ok and stores is not None:
            ok = stores[key[0]].journal.get(key[1]).state == "receipted"
        good += ok
    invalid = sum(1 for key in by_key if key not in contents)
    invalid += sum(len(v) - 1 for v in by_key.values() if len(v) > 1)
    outcome = Outcome(scenario, runs, len(contents), good, len(contents) - good, invalid, note)
    LEDGER.append(outcome)
    return outcome
