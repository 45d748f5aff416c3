"""A recorder as its own process, for kill -9: seals the plaintext files of an inbox one after
another (as recording would produce them) while its uploader sends what is sealed; exits 0
once everything is sealed and receipted. Restarted on the same card, it recovers first
(``ClipStore.recover``) and never seals a source twice (the manifest note names it).

    python _recorder_proc.py PKI_DIR DEVICE CARD_DIR INBOX_DIR PORT
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lerec.deploy.pki import Pki
from lerec.device.media.segment import FinishedSegment
from support.rig import make_store, make_uploader


def main() -> int:
    pki_dir, device, card, inbox, port = sys.argv[1:6]
    pki = Pki(Path(pki_dir))
    store = make_store(pki, device, Path(card), chunk_size=16 * 1024)
    store.recover()
    up = make_uploader(pki, store, int(port), reply_timeout=2.0, max_backoff=1.0, window=4)
    up.start()
    done = _sealed_sources(store)
    for src in sorted(Path(inbox).iterdir()):
        if src.name in done:
            continue
        spool = store.spool / src.name
        shutil.copyfile(src, spool)
        start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        store.seal(FinishedSegment(
            path=spool, start_time=start, end_time=start + dt.timedelta(seconds=5),
            media_type="video/mp4", codecs=("avc1",), important=False, prerecord_seconds=0.0,
            frames=0, clock_sync="synced", clock_source="test", clock_offset_seconds=0.0))
        time.sleep(0.1)
    ok = up.wait_idle(120)
    up.stop()
    return 0 if ok else 1


def _sealed_sources(store) -> set[str]:  # type: ignore[no-untyped-def]
    """Inbox names already sealed (pending, refused or receipted): never sealed twice."""
    names = set()
    for seq in range(store.last_seq() + 1):
        row = store.journal.get(seq)
        if row is not None:
            names.add(store.manifest(row).note.removeprefix("source="))
    return names


if __name__ == "__main__":
    sys.exit(main())
