"""A real recorder that holds some of its sealed segments back, and its signed heartbeats.

``HoldingClipStore`` is the device's own :class:`ClipStore` (real sealing, signing, journal);
segments whose numbers are in ``held`` are simply not offered to the uploader until
``release()``: to the hub that is a recorder which skipped a number (a later one arrives) or has
not uploaded what its heartbeats report. ``heartbeat_of(store)`` builds the heartbeat the
recorder app sends (``last_seq`` is the store's last sealed number), for ``Uploader(heartbeat=)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lerec.deploy.pki import Pki
from lerec.device.store import ClipStore
from lerec.device.store.journal import JournalRow
from lerec.protocol.messages import ClockInfo, Heartbeat

from .rig import make_store


class HoldingClipStore(ClipStore):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.held: set[int] = set()

    def pending(self) -> list[JournalRow]:
        return [r for r in super().pending() if r.seq not in self.held]

    def hold(self, seqs: Iterable[int]) -> None:
        self.held |= set(seqs)

    def release(self, seqs: Iterable[int] | None = None) -> None:
        self.held = set() if seqs is None else self.held - set(seqs)
        with self.changed:
            self.changed.notify_all()

    def all_pending(self) -> list[JournalRow]:
        return super().pending()


def make_holding_store(pki: Pki, device_id: str, root: Path,
                       chunk_size: int = 64 * 1024) -> HoldingClipStore:
    store = make_store(pki, device_id, root, chunk_size, cls=HoldingClipStore)
    assert isinstance(store, HoldingClipStore)
    return store


def heartbeat_of(store: HoldingClipStore,
                 officer_id: str = "unassigned") -> Callable[[], Heartbeat]:
    """What the recorder app reports (``lerec.device.app``): everything it sealed, including
    the segments it holds back."""

    def beat() -> Heartbeat:
        pending = store.all_pending()
        return Heartbeat(
            device_id=store.device_id, officer_id=officer_id,
            time_ms=int(time.time() * 1000), state="idle", last_seq=store.last_seq(),
            pending_segments=len(pending), pending_bytes=store.journal.pending_bytes(),
            free_bytes=store.space().free_bytes, storage="ok",
            clock=ClockInfo("synced", "test", 0, 10), battery_pct=None, firmware="test",
        )

    return beat
