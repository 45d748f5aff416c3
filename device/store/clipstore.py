"""The clip store on the card.

A finished segment is *sealed*: its plaintext is hashed, encrypted chunk by chunk to the hub's
X25519 key (see :mod:`lerec.protocol.envelope`), written to ``sealed/<segment>.seg`` and
described by a manifest signed with the recorder's Ed25519 key, carrying the next per-device
sequence number and the hash of the previous manifest. Then the plaintext is deleted: from
that moment nobody on the device can play it. The store offers no delete, play or export call;
the only way a sealed segment leaves the card is :meth:`ClipStore.accept_receipt` with a receipt
signed by the hub for exactly that manifest.

Crash safety: the sealed file is written to ``.tmp``, fsynced and renamed, the journal row is
committed, and only then is the plaintext removed. :meth:`ClipStore.recover` finishes whatever
a power cut interrupted (including recording ``.part`` files) at boot.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from lerec.protocol import (
    UNASSIGNED,
    ZERO_HASH,
    ClockInfo,
    Message,
    ProtocolError,
    Receipt,
    SegmentManifest,
    decode_signed,
    sign_message,
)
from lerec.protocol.envelope import Sealer
from lerec.protocol.messages import AEAD_TAG_BYTES

from ..errors import DeviceError
from ..media.mp4file import recover_partial
from ..media.segment import PART_SUFFIX, FinishedSegment
from .journal import Journal, JournalRow

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 1024 * 1024
CAPTURE_METHOD = {"video/mp4": "执法记录仪录像", "audio/mp4": "执法记录仪录音"}


class ReceiptError(DeviceError):
    """A receipt does not prove storage of a segment this recorder holds."""


class StoreFull(DeviceError, OSError):
    """Not enough free space on the card to seal a segment; its plaintext stays in the spool
    (nothing is lost) and sealing is retried once uploads free space."""

    def __init__(self, path: Path, needed: int, free: int) -> None:
        super().__init__(errno.ENOSPC, f"card full: sealing {path.name} needs {needed} bytes, "
                         f"{free} free; it stays in the spool until uploads free space")
        self.path = path
        self.needed = needed
        self.free = free


#: Room kept beyond the sealed file itself (journal row, SQLite WAL growth).
SEAL_MARGIN = 256 * 1024


@dataclass(frozen=True)
class SpaceState:
    free_bytes: int
    state: str  # "ok" | "low" | "full"


class ClipStore:
    def __init__(
        self,
        root: Path,
        *,
        device_id: str,
        signing_key: Ed25519PrivateKey,
        hub_box_public: X25519PublicKey,
        hub_signing_public: Ed25519PublicKey,
        chunk_size: int = DEFAULT_CHUNK,
        low_space_bytes: int = 512 * 1024 * 1024,
        floor_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.root = Path(root)
        self.spool = self.root / "spool"
        self.sealed = self.root / "sealed"
        self.spool.mkdir(parents=True, exist_ok=True)
        self.sealed.mkdir(parents=True, exist_ok=True)
        self.device_id = device_id
        self._key = signing_key
        self._hub_box = hub_box_public
        self._hub_signing = hub_signing_public
        self.chunk_size = chunk_size
        self.low_space_bytes = low_space_bytes
        self.floor_bytes = floor_bytes
        self.journal = Journal(self.root / "journal.db")
        self._seal_lock = threading.Lock()
        self.changed = threading.Condition()

    def close(self) -> None:
        self.journal.close()

    # -- sealing -----------------------------------------------------------------------------

    def seal(
        self,
        seg: FinishedSegment,
        *,
        officer_id: str | None = None,
        producer: str = "",
        object_of_proof: str = "",
        note: str = "",
    ) -> JournalRow:
        """Encrypt, sign and journal a finished segment, then delete its plaintext.

        ``officer_id`` is the officer bound to the recorder when the segment started (the app
        knows the hub's assignments); None falls back to what the segment file recorded.
        Raises :class:`StoreFull` (before writing anything) when the card cannot hold the
        sealed copy next to the plaintext; the plaintext then stays in the spool.
        """
        with self._seal_lock:
            seq, prev = self.journal.head()
            segment_id = uuid.uuid4().hex
            wire_path = self.sealed / f"{segment_id}.seg"
            if wire_path.exists():  # never overwrite a sealed segment (uuid4: not expected)
                raise DeviceError(f"{wire_path} exists; refusing to overwrite it")
            tmp = wire_path.with_suffix(".tmp")
            sealer = Sealer(self._hub_box, segment_id)
            length = seg.path.stat().st_size
            count = max(1, -(-length // self.chunk_size))
            needed = length + count * AEAD_TAG_BYTES + SEAL_MARGIN
            free = shutil.disk_usage(self.root).free
            if free < needed:
                raise StoreFull(seg.path, needed, free)
            digest = hashlib.sha256()
            wire_length = 0
            try:
                with open(seg.path, "rb") as src, open(tmp, "wb") as dst:
                    for index in range(count):
                        plain = src.read(self.chunk_size)
                        digest.update(plain)
                        sealed = sealer.seal(index, plain, index == count - 1)
                        dst.write(sealed)
                        wire_length += len(sealed)
                    dst.flush()
                    os.fsync(dst.fileno())
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                if exc.errno == errno.ENOSPC:
                    raise StoreFull(seg.path, needed, shutil.disk_usage(self.root).free) from exc
                raise
            os.replace(tmp, wire_path)
            officer = officer_id or seg.officer_id or UNASSIGNED
            manifest = SegmentManifest(
                device_id=self.device_id,
                officer_id=officer,
                segment_id=segment_id,
                seq=seq,
                prev_hash=prev or ZERO_HASH,
                start_ms=int(seg.start_time.timestamp() * 1000),
                end_ms=max(int(seg.end_time.timestamp() * 1000),
                           int(seg.start_time.timestamp() * 1000)),
                clock=_clock_info(seg),
                media_type=seg.media_type,
                codecs=tuple(seg.codecs),
                length=length,
                sha256=digest.digest(),
                chunk_size=self.chunk_size,
                capture_method=CAPTURE_METHOD.get(seg.media_type, "执法记录仪"),
                producer=producer or officer,
                object_of_proof=object_of_proof,
                note=note or f"source={seg.path.name}",
                important=seg.important,
                prerecord_ms=int(seg.prerecord_seconds * 1000),
                recovered=seg.recovered,
                encryption=sealer.encryption,
            )
            wire = sign_message(manifest, self._key)
            row = JournalRow(
                seq=seq, segment_id=segment_id, state="pending", important=seg.important,
                manifest=wire, manifest_hash=hashlib.sha256(wire).digest(),
                wire_path=wire_path, wire_length=wire_length,
            )
            try:
                self.journal.add(row)
            except Exception:
                wire_path.unlink(missing_ok=True)  # not journaled: the plaintext stays
                raise
            seg.path.unlink(missing_ok=True)
        log.info("sealed segment %s (seq %d, %d bytes%s)", segment_id, seq, length,
                 ", important" if seg.important else "")
        with self.changed:
            self.changed.notify_all()
        return row

    # -- what the uploader needs -------------------------------------------------------------

    def pending(self) -> list[JournalRow]:
        return self.journal.pending()

    def manifest(self, row: JournalRow) -> SegmentManifest:
        return decode_signed(row.manifest, SegmentManifest).message

    def read_chunk(self, row: JournalRow, index: int) -> bytes:
        m = self.manifest(row)
        offset = index * (m.chunk_size + AEAD_TAG_BYTES)
        with open(row.wire_path, "rb") as f:
            f.seek(offset)
            return f.read(m.chunk_wire_length(index))

    def accept_receipt(self, wire: bytes) -> JournalRow:
        """Verify a hub receipt; only then forget the segment's data. Returns the row."""
        try:
            receipt = decode_signed(wire, Receipt).verify(self._hub_signing)
        except ProtocolError as exc:
            raise ReceiptError(f"receipt rejected: {exc}") from None
        row = self.journal.by_segment_id(receipt.segment_id)
        if row is None:
            raise ReceiptError(f"receipt for unknown segment {receipt.segment_id}")
        m = self.manifest(row)
        if (receipt.device_id, receipt.seq, receipt.sha256, receipt.length,
                receipt.manifest_hash) != (m.device_id, m.seq, m.sha256, m.length,
                                          row.manifest_hash):
            raise ReceiptError(f"receipt does not match segment {receipt.segment_id}")
        if row.state != "receipted":
            self.journal.mark_receipted(row.seq, wire)
        row.wire_path.unlink(missing_ok=True)
        log.info("segment %s receipted by %s; local copy removed", row.segment_id,
                 receipt.hub_id)
        with self.changed:
            self.changed.notify_all()
        return row

    def mark_refused(self, row: JournalRow, code: str, reason: str) -> None:
        """The hub refused the segment for good: keep it, flag it, report it."""
        self.journal.mark_refused(row.seq, code, reason)
        log.error("hub refused segment %s: [%s] %s (kept on the card)", row.segment_id, code,
                  reason)

    def sign(self, message: Message) -> bytes:
        """Sign a message (heartbeat) with the recorder's key; the key never leaves the store."""
        return sign_message(message, self._key)

    def save_config(self, wire: bytes) -> None:
        """Keep the hub's last signed config on the card (officer binding survives a reboot)."""
        self.journal.set_meta("hub_config", wire)

    def saved_config(self) -> bytes | None:
        return self.journal.get_meta("hub_config")

    # -- state -------------------------------------------------------------------------------

    def space(self) -> SpaceState:
        free = shutil.disk_usage(self.root).free
        state = "full" if free < self.floor_bytes else "low" if free < self.low_space_bytes else "ok"
        return SpaceState(free, state)

    def last_seq(self) -> int:
        return self.journal.head()[0] - 1

    # -- boot --------------------------------------------------------------------------------

    def recover(self, officer_id: str | None = None) -> list[JournalRow]:
        """Finish what a power cut interrupted. Returns the segments sealed now."""
        for tmp in self.sealed.glob("*.tmp"):
            tmp.unlink()
        sealed_names = {row.wire_path.name for row in self.journal.pending()}
        sealed_names |= {row.wire_path.name for row in self.journal.refused()}
        for orphan in self.sealed.glob("*.seg"):
            if orphan.name not in sealed_names:
                # Sealed but never journaled: the plaintext is still in the spool; re-seal it.
                orphan.unlink()
        sealed_sources = self._journaled_sources()
        out: list[JournalRow] = []
        for part in sorted(self.spool.glob(f"*{PART_SUFFIX}")):
            try:
                seg = recover_partial(part)
            except Exception:
                log.exception("could not recover %s; left in place", part)
                continue
            if seg is not None:
                log.warning("recovered %s after power loss (%.1f s)", part.name,
                            seg.duration_seconds)
                out.append(self.seal(seg, officer_id=officer_id))
        for done in sorted(self.spool.glob("*.mp4")):
            if done.name in sealed_sources:
                done.unlink()
                continue
            seg = _finished_from_file(done)
            if seg is not None:
                out.append(self.seal(seg, officer_id=officer_id))
        return out

    def _journaled_sources(self) -> set[str]:
        names = set()
        for row in self.journal.pending() + self.journal.refused():
            note = self.manifest(row).note
            if note.startswith("source="):
                names.add(note[len("source="):])
        return names


def _clock_info(seg: FinishedSegment) -> ClockInfo:
    state = seg.clock_sync if seg.clock_sync in ("synced", "holdover", "unsynced") else "unsynced"
    offset = seg.clock_offset_seconds
    return ClockInfo(
        state=state,
        source=(seg.clock_source or "none")[:64],
        offset_ms=int((offset or 0.0) * 1000),
        uncertainty_ms=0 if state == "synced" else 3_600_000,
    )


def _finished_from_file(path: Path) -> FinishedSegment | None:
    """A complete spool file without a journal row (power cut between the pipeline's rename
    and sealing). Its sidecar is gone, so the times come from the file itself and the clock is
    marked untrusted; the segment is flagged as recovered."""
    import datetime as dt

    import av

    try:
        with av.open(str(path)) as container:
            duration = (container.duration or 0) / 1_000_000
            has_video = bool(container.streams.video)
    except (av.error.FFmpegError, OSError) as exc:
        log.error("spool file %s is unreadable (%s); left in place", path, exc)
        return None
    end = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    return FinishedSegment(
        path=path, start_time=end - dt.timedelta(seconds=duration), end_time=end,
        media_type="video/mp4" if has_video else "audio/mp4",
        codecs=("avc1", "mp4a") if has_video else ("mp4a",), important=False,
        prerecord_seconds=0.0, frames=0, end_reason="recovered", clock_sync="unsynced",
        clock_source="file-mtime", recovered=True,
    )
