"""The ingest core: turns recorder messages into verified, stored, receipted segments.

It knows nothing about MQTT: :meth:`Ingest.handle` takes a topic and a payload, and replies go
out through the ``publish`` callable. Every refusal is logged with its reason, recorded in the
``rejections`` table and answered with a :class:`Reject`, and nothing unverified ever reaches the
blob store. Messages of one recorder are handled in order; recorders are handled concurrently.
The one exception is the chunk fast lane (:meth:`Ingest.offer`): the chunks of a transfer in a
chunk worker's care go to the worker as they are read, several at once, and only what needs a
decision or the database (the first chunk of a recorder in a while, anything malformed or out of
place, anything the worker refuses, the chunk that completes a segment) goes through
:meth:`Ingest.handle`.

Several hub processes may share the ingest (MQTT v5 shared subscriptions, ``shared=True``): the
chunks of one segment then arrive at different workers. Transfer state lives only in the shared
staging folder (see :mod:`.staging`), never in one worker's memory; creating and finishing a
transfer happen under its exclusive file lock, so exactly one worker stores a segment; and the
database's unique constraints are the last guard (a worker that loses a race answers with the
stored receipt and counts nothing).

Cost per message matters (twenty recorders upload at once): a chunk is hashed, decrypted and
written by a chunk worker process (:mod:`.chunkwork`, with a GIL of its own), or on the event
loop's thread where the bridge delivered it when there is none (a trip to a worker *thread* and
back cost more than that work); a chunk in the fast lane costs the event loop no task, no lock
and no copy but the one into the worker's shared memory; statements that run for every segment
are built once; and the
segments that finish while a transaction is being committed are recorded together in the next
one (see ``_record``).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from lerec.protocol import (
    Chunk,
    EnvelopeError,
    Heartbeat,
    ProtocolError,
    Receipt,
    Reject,
    SegmentManifest,
    Signed,
    Want,
    decode_message,
    decode_signed,
    encode_message,
    sign_message,
    topics,
)
from lerec.protocol.envelope import Opener
from sqlalchemy import Select, and_, bindparam, insert, or_, select
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from ..audit.entries import EventType
from ..audit.log import record_events
from ..db.models import Device, Rejection, Segment
from ..db.types import from_ms, to_ms, utcnow
from ..errors import StorageError, StorageFull
from ..storage import BlobStore, ref_for
from .chunkwork import ChunkHashMismatch, ChunkWorker, WorkerGone
from .staging import Transfer, TransferLock, remove_transfer, try_lock_transfer

if TYPE_CHECKING:
    from ..metrics import HubMetrics
    from .mqtt import Then

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]

#: Seconds a chunk-path revocation check stays valid (see ``Ingest._check_active``).
REVOCATION_TTL = 1.0
#: Longest wait for another worker's lock on a transfer before asking the recorder to retry.
LOCK_WAIT = 30.0


@functools.cache
def _devices_stmt() -> Select[Any]:
    # built once: constructing a statement costs more CPU than SQLite takes to run this one
    return select(Device.device_id, Device.signing_key, Device.revoked_at).where(
        Device.device_id.in_(bindparam("devs", expanding=True)))


@functools.cache
def _stored_stmt() -> Select[Any]:
    return select(Segment).where(or_(
        Segment.segment_id == bindparam("sid"),
        and_(Segment.device_id == bindparam("dev"), Segment.seq == bindparam("seq")),
    ))


@functools.cache
def _insert_segment_stmt() -> Any:
    return insert(Segment.__table__)


async def _device(session: Any, device_id: str) -> Any:
    """The recorder's signing key and revocation time (a row), or None if not enrolled."""
    return (await session.execute(_devices_stmt(), {"devs": [device_id]})).first()


def _active_key(dev: Any, device_id: str) -> Ed25519PublicKey:
    """The signing key of an enrolled, unrevoked recorder; refused otherwise."""
    if dev is None:
        raise Refused("unknown_device", f"recorder {device_id} is not enrolled", fatal=True)
    if dev.revoked_at is not None:
        raise Refused("revoked", f"recorder {device_id} was revoked", fatal=True)
    return Ed25519PublicKey.from_public_bytes(dev.signing_key)


class Refused(Exception):
    """A message is refused. ``fatal``: the recorder must not retry the same data."""

    def __init__(self, code: str, reason: str, *, fatal: bool, segment_id: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.fatal = fatal
        self.segment_id = segment_id


@dataclass
class IngestStats:
    """Counters for logs and metrics."""

    segments_stored: int = 0
    bytes_stored: int = 0
    receipts_resent: int = 0
    chunks_duplicate: int = 0
    manifests_replayed: int = 0  # manifest of a segment already stored
    chunks_replayed: int = 0  # chunk already held, or of a segment already stored
    chunks_fast_lane: int = 0  # chunks staged through Ingest.offer
    rejected: dict[str, int] = field(default_factory=dict)


@dataclass
class _ToRecord:
    """A verified segment whose blob is stored, waiting for its row and audit entries."""

    manifest: SegmentManifest
    values: dict[str, Any]  # the segment row (its manifest hash and stored ref included)
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())

    def finish(self, error: BaseException | None) -> None:
        if self.done.done():
            return
        if error is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(error)


@dataclass
class _Open:
    transfer: Transfer
    opener: Opener | None
    worker: ChunkWorker | None = None  # stages this transfer's chunks (None: the event loop)
    tid: int = 0
    active_at: float = field(default_factory=time.monotonic)  # last chunk (or creation)
    completing: bool = False  # the fast lane saw it complete and is storing it
    # chunks in the fast lane, by index: True once staged, False if the worker refused it
    in_flight: dict[int, asyncio.Future[bool]] = field(default_factory=dict)

    def detach(self) -> None:
        """Stop using the chunk worker for this transfer (the event loop stages the rest)."""
        if self.worker is not None:
            self.worker.close(self.tid)
            self.worker = None

    def close(self) -> None:
        self.detach()
        self.transfer.close()

    def discard(self) -> None:
        self.detach()
        self.transfer.discard()  # (closes it)


class Ingest:
    #: Most segments recorded in one transaction.
    MAX_COMMIT = 64
    #: A new transfer's chunks go to a chunk worker when at least this many other transfers
    #: had a chunk within ``BUSY_WINDOW`` seconds (0: every transfer). One upload alone is
    #: staged on the event loop, which has nothing else to do: through the worker it is some
    #: 5 % slower even with its chunks in flight together (``bench_upload.py --inline``, two
    #: runs of 5 and 6 rounds). With several at once the loop is the bottleneck and the worker
    #: adds a core (``bench_ingest_many.py --inline``).
    OFFLOAD_WITH_OTHERS = 1
    BUSY_WINDOW = 5.0

    def __init__(
        self,
        *,
        hub_id: str,
        sessions: Any,
        store: BlobStore,
        signing_key: Ed25519PrivateKey,
        box_key: X25519PrivateKey,
        publish: Publish,
        on_stored: Callable[[Segment], Awaitable[None]] | None = None,
        on_heartbeat: Callable[[str, int], Awaitable[None]] | None = None,
        on_clock: Callable[[Heartbeat, int], Awaitable[Any]] | None = None,
        on_replaced: Callable[[SegmentManifest, Segment], Awaitable[None]] | None = None,
        metrics: HubMetrics | None = None,
        shared: bool = False,
        chunk_workers: int = 0,
    ) -> None:
        """``shared``: other hub processes ingest from the same staging folder and database
        (shared subscription); no transfer state is then kept between messages.
        ``chunk_workers``: helper processes that check, decrypt and stage chunks (see
        :mod:`.chunkwork`); 0 does that work on the event loop's thread. Not used when
        ``shared`` (each message there reloads its transfer from disk)."""
        self.hub_id = hub_id
        self.shared = shared
        self.sessions = sessions
        self.store = store
        self.signing_key = signing_key
        self.box_key = box_key
        self.publish = publish
        self.on_stored = on_stored
        self.on_heartbeat = on_heartbeat
        self.on_clock = on_clock  # (verified heartbeat, hub time of arrival in ms)
        # (verified manifest refused as a replacement of a stored segment, that segment)
        self.on_replaced = on_replaced
        self._background: set[asyncio.Task[None]] = set()
        self.stats = IngestStats()
        self.metrics = metrics
        self._open: dict[tuple[str, str], _Open] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._active_until: dict[str, float] = {}
        self._to_record: list[_ToRecord] = []
        self._recorder: asyncio.Task[None] | None = None
        self._workers = [] if shared else [ChunkWorker(box_key) for _ in range(chunk_workers)]
        self._next_worker = 0

    # -- entry point -------------------------------------------------------------------------

    async def handle(self, topic: str, payload: bytes | memoryview, *,
                     counted: bool = False) -> None:
        """Process one message. Never raises for bad input; refusals are answered and logged.
        ``counted``: the message was counted already (by :meth:`offer`)."""
        try:
            where = topics.parse_device_topic(topic)
        except ProtocolError as exc:
            await self._record_rejection("?", "", topic, exc.code, exc.reason)
            return
        if self.metrics is not None and not counted:
            self.metrics.messages.labels(where.kind).inc()
            self.metrics.saw(where.device_id)
        lock = self._locks.setdefault(where.device_id, asyncio.Lock())
        async with lock:
            try:
                if where.kind == "manifest":
                    await self._on_manifest(where, payload)
                elif where.kind == "chunk":
                    await self._on_chunk(where, payload)
                else:
                    await self._on_heartbeat(where, payload)
            except Refused as r:
                await self._refuse(where.device_id, topic, r)
            except ProtocolError as exc:
                await self._refuse(
                    where.device_id, topic, Refused(exc.code, exc.reason, fatal=True)
                )

    def offer(self, topic: str, payload: bytes | memoryview, then: Callable[[Then], None],
              ) -> bool:
        """The chunk fast lane (``MqttBridge.serve``'s ``offer``): a chunk of a transfer that
        a chunk worker stages goes straight to that worker, as it is read, with no task, no
        lock and no wait for the chunks before it: a recorder's chunks are in flight together,
        up to the worker's slots.

        Taken only when nothing needs the database or a decision: a well-formed chunk, under
        its own recorder's topic, of an open transfer in a worker's care, in range, not yet
        held, of the right length; the recorder checked active within ``REVOCATION_TTL``.
        Anything else returns False and goes to :meth:`handle` as usual. A chunk the worker
        refuses (hash, tampering, disk full, the worker gone) is handed to :meth:`handle` from
        the start, which refuses it, or stages it itself, exactly as it would have without the
        fast lane. ``then(None)`` (acknowledge)
        comes only after the worker wrote the chunk; the chunk that completes the transfer is
        acknowledged after the segment is stored and receipted."""
        if not self._workers:
            return False
        try:
            where = topics.parse_device_topic(topic)
        except ProtocolError:
            return False
        device = where.device_id
        now = time.monotonic()
        if where.kind != "chunk" or self._active_until.get(device, 0.0) <= now:
            return False
        try:
            chunk = decode_message(payload, Chunk)
        except ProtocolError:
            return False
        key = (device, chunk.segment_id)
        entry = self._open.get(key)
        if (chunk.device_id != device or entry is None or entry.worker is None
                or entry.completing):
            return False
        t, i = entry.transfer, chunk.index
        if i >= t.count or t.has(i) or len(chunk.data) != t.manifest.chunk_wire_length(i):
            return False
        first = entry.in_flight.get(i)
        if first is not None:
            # the same chunk again while it is being staged (a broker redelivery, a replay):
            # a replay if that one is staged, else this one goes the ordinary way
            first.add_done_callback(functools.partial(self._offer_again, chunk, topic, payload,
                                                      then))
        else:
            # (in place before the submit: a worker found dead answers within it)
            first = entry.in_flight[i] = asyncio.get_running_loop().create_future()
            staged = functools.partial(self._offer_staged, key, entry, i, topic, payload, then)
            if not entry.worker.submit(entry.tid, i, chunk.data, chunk.sha256,
                                       i == t.count - 1, staged):
                del entry.in_flight[i]
                first.cancel()  # (nobody waits for it yet)
                return False
        entry.active_at = now
        if self.metrics is not None:
            self.metrics.messages.labels("chunk").inc()
            self.metrics.saw(device)
        return True

    def _offer_staged(self, key: tuple[str, str], entry: _Open, index: int, topic: str,
                      payload: bytes | memoryview, then: Callable[[Then], None],
                      error: BaseException | None) -> None:
        """The worker's answer to a chunk of the fast lane."""
        first = entry.in_flight.pop(index, None)
        if first is not None and not first.done():
            first.set_result(error is None)
        if error is not None:
            # the ordinary path, from the start: it refuses the chunk (and logs and records
            # why) or, if the worker is gone, stages it on the event loop
            then(self._ordinary(topic, payload))
            return
        entry.transfer.mark(index)
        self.stats.chunks_fast_lane += 1
        if entry.completing or not entry.transfer.complete or self._open.get(key) is not entry:
            then(None)
            return
        entry.completing = True
        then(functools.partial(self._complete_offered, key, entry, topic))

    def _offer_again(self, chunk: Chunk, topic: str, payload: bytes | memoryview,
                     then: Callable[[Then], None], first: asyncio.Future[bool]) -> None:
        """A chunk offered while the same one was in the fast lane: a replay if that one was
        staged, else handled the ordinary way."""
        if first.result():
            self._chunk_replay(chunk, "already received")
            then(None)
        else:
            then(self._ordinary(topic, payload))

    def _ordinary(self, topic: str, payload: bytes | memoryview) -> Then:
        """An offered message, handed back to :meth:`handle` (counted already)."""
        return functools.partial(self.handle, topic, payload, counted=True)

    async def _complete_offered(self, key: tuple[str, str], entry: _Open, topic: str) -> None:
        """Store a transfer the fast lane completed, as :meth:`handle` would after its last
        chunk: under the recorder's lock, with the same refusals."""
        device = key[0]
        async with self._locks.setdefault(device, asyncio.Lock()):
            if self._open.get(key) is not entry:
                return  # stored (or dropped) meanwhile, by a manifest announced again
            try:
                await self._complete(key, entry)
            except Refused as r:
                await self._refuse(device, topic, r)
            except ProtocolError as exc:
                await self._refuse(device, topic, Refused(exc.code, exc.reason, fatal=True))

    # -- manifests ---------------------------------------------------------------------------

    async def _device_key(self, device_id: str) -> Ed25519PublicKey:
        async with self.sessions() as s:
            return _active_key(await _device(s, device_id), device_id)

    async def _check_active(self, device_id: str) -> None:
        """Revocation check on the chunk path, cached for ``REVOCATION_TTL`` seconds (a
        database round trip per 256 KiB chunk costs more than the chunk). Manifests and the
        final store step always ask the database, so a revoked recorder never gets a segment
        stored after its revocation is committed."""
        now = time.monotonic()
        if self._active_until.get(device_id, 0.0) > now:
            return
        await self._device_key(device_id)
        self._active_until[device_id] = now + REVOCATION_TTL

    async def _on_manifest(self, where: topics.DeviceTopic, payload: bytes) -> None:
        signed = decode_signed(payload, SegmentManifest)
        m = signed.message
        topics.check_same_device(where, m.device_id)
        async with self.sessions() as s:  # one session: the key, then what is stored
            checked = time.monotonic()
            signed.verify(_active_key(await _device(s, m.device_id), m.device_id))
            self._active_until[m.device_id] = checked + REVOCATION_TTL
            # a segment sealed to another hub key is refused here
            opener = (Opener(self.box_key, m.encryption, m.segment_id)
                      if m.encryption is not None else None)
            stored = (await s.execute(_stored_stmt(), {
                "sid": m.segment_id, "dev": m.device_id, "seq": m.seq})).scalars().all()
        existing = next((r for r in stored if r.segment_id == m.segment_id), None)
        same_seq = next((r for r in stored
                         if r.device_id == m.device_id and r.seq == m.seq), None)
        key = (m.device_id, m.segment_id)
        if existing is not None or same_seq is not None:
            await self._answer_stored(key, signed, existing, same_seq)
            return

        lock = await self._lock(key, create=True)
        assert lock is not None
        try:
            if self.shared:
                # Another worker may have stored it while this one waited for the lock.
                async with self.sessions() as s:
                    existing = await s.get(Segment, m.segment_id)
                if existing is not None:
                    await self._answer_stored(key, signed, existing, None, locked=True)
                    return
            current = self._open.get(key) or self._load(key)
            if current is not None and current.transfer.signed.digest != signed.digest:
                raise Refused("manifest_changed", "a different manifest was announced for a "
                              "segment in transfer", fatal=True, segment_id=m.segment_id)
            if current is None:
                try:
                    self.store.check_space(m.length)
                    # a folder and three small files: less than a trip to a worker thread
                    transfer = Transfer.create(self._staging(key), signed, shared=self.shared)
                except StorageFull as exc:
                    remove_transfer(self._staging(key))  # only the lock file is there
                    raise Refused("hub_storage_full", str(exc), fatal=False,
                                  segment_id=m.segment_id) from None
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    remove_transfer(self._staging(key))
                    raise Refused("hub_storage_full", "hub staging disk is full; retry later",
                                  fatal=False, segment_id=m.segment_id) from None
                current = self._open[key] = self._attach(_Open(transfer, opener))
                log.info("segment %s of %s announced: %d bytes in %d chunks", m.segment_id,
                         m.device_id, m.length, m.chunk_count)
            if current.transfer.complete:
                await self._finish(key, current)
                return
            want = Want(m.device_id, m.segment_id, tuple(current.transfer.missing_ranges()))
        finally:
            lock.release()
            self._release(key)
        await self._reply(m.device_id, encode_message(want))

    async def _answer_stored(
        self, key: tuple[str, str], signed: Signed[SegmentManifest], existing: Segment | None,
        same_seq: Segment | None, *, locked: bool = False,
    ) -> None:
        """A manifest whose segment id or sequence number is already stored: a replay gets the
        stored receipt again (and any staging left over from a crash is removed); anything else
        is refused, and reported to ``on_replaced``: a second segment the recorder signed for a
        stored number is a replaced record."""
        m = signed.message
        if existing is not None:
            if existing.manifest_hash == signed.digest and existing.device_id == m.device_id:
                log.warning("replay: manifest of already stored segment %s from %s; resending "
                            "its receipt", m.segment_id, m.device_id,
                            extra={"replay": "manifest", "device": m.device_id})
                self.stats.receipts_resent += 1
                self.stats.manifests_replayed += 1
                if self.metrics is not None:
                    self.metrics.replays.labels("manifest").inc()
                    self.metrics.receipts_resent.inc()
                await self._drop_staging(key, locked=locked)
                await self._reply(m.device_id, existing.receipt)
                return
            refused = Refused("segment_id_reused", f"segment id {m.segment_id} is already "
                              "stored with a different manifest", fatal=True,
                              segment_id=m.segment_id)
        else:
            assert same_seq is not None
            refused = Refused("seq_reused", f"sequence number {m.seq} of {m.device_id} already "
                              f"belongs to segment {same_seq.segment_id}", fatal=True,
                              segment_id=m.segment_id)
        stored = existing if existing is not None else same_seq
        if self.on_replaced is not None and stored is not None:
            try:
                await self.on_replaced(m, stored)
            except Exception:  # the refusal is what matters to the recorder
                log.exception("could not report replaced segment %s", m.segment_id)
        raise refused

    async def _drop_staging(self, key: tuple[str, str], *, locked: bool) -> None:
        """Remove what a crash between the row commit and the clean-up left in staging."""
        entry = self._open.pop(key, None)
        if entry is not None:
            entry.close()
        root = self._staging(key)
        if not root.exists():
            return
        if locked:
            remove_transfer(root)
            return
        lock = await self._lock(key, create=False)
        if lock is not None:
            try:
                remove_transfer(root)
            finally:
                lock.release()

    def _staging(self, key: tuple[str, str]) -> Path:
        return self.store.staging_dir / key[0] / key[1]

    def _load(self, key: tuple[str, str]) -> _Open | None:
        transfer = Transfer.load(self._staging(key), shared=self.shared)
        if transfer is None:
            return None
        m = transfer.manifest
        opener = Opener(self.box_key, m.encryption, m.segment_id) if m.encryption else None
        self._open[key] = entry = self._attach(_Open(transfer, opener))
        return entry

    def _attach(self, entry: _Open) -> _Open:
        """Give a transfer to a chunk worker if others are being received at the same time
        (see ``OFFLOAD_WITH_OTHERS``) and a worker can take it."""
        if self._workers and self._busy(entry) >= self.OFFLOAD_WITH_OTHERS:
            worker = self._workers[self._next_worker % len(self._workers)]
            self._next_worker += 1
            tid = worker.open(entry.transfer)
            if tid is not None:
                entry.worker, entry.tid = worker, tid
        return entry

    def _busy(self, entry: _Open) -> int:
        """Other transfers that had a chunk (or began) within ``BUSY_WINDOW`` seconds."""
        if self.OFFLOAD_WITH_OTHERS <= 0:
            return 0
        since = time.monotonic() - self.BUSY_WINDOW
        return sum(1 for e in self._open.values() if e is not entry and e.active_at >= since)

    async def start(self) -> None:
        """Start the chunk workers now (they would start with the first transfer needing
        one): their start-up is then not paid by a recorder, and a failure shows at once."""
        for worker in self._workers:
            worker.start()

    def _release(self, key: tuple[str, str]) -> None:
        """End of a message. A shared transfer is closed: the next message (maybe at another
        worker) starts again from what is on disk, and no descriptor outlives its message."""
        if self.shared:
            entry = self._open.pop(key, None)
            if entry is not None:
                entry.close()

    async def _lock(self, key: tuple[str, str], *, create: bool) -> TransferLock | None:
        """The transfer's exclusive lock (None: the transfer is gone). Polls, never blocks the
        event loop; a lock held longer than ``LOCK_WAIT`` makes the recorder retry later."""
        root = self._staging(key)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            got = try_lock_transfer(root, create=create)
            if got is not False:
                return got  # type: ignore[return-value]
            if time.monotonic() > deadline:
                raise Refused("transfer_busy", "another hub worker holds this segment; retry "
                              "later", fatal=False, segment_id=key[1])
            await asyncio.sleep(0.02)

    # -- chunks ------------------------------------------------------------------------------

    async def _on_chunk(self, where: topics.DeviceTopic, payload: bytes) -> None:
        chunk = decode_message(payload, Chunk)
        topics.check_same_device(where, chunk.device_id)
        key = (chunk.device_id, chunk.segment_id)
        entry = self._open.get(key) or self._load(key)
        if entry is None:
            async with self.sessions() as s:
                stored = await s.get(Segment, chunk.segment_id)
            if stored is not None and stored.device_id == chunk.device_id:
                self._chunk_replay(chunk, "of a segment already stored")
                return
            raise Refused("no_transfer", f"chunk for unannounced segment {chunk.segment_id}; "
                          "announce the manifest first", fatal=False, segment_id=chunk.segment_id)
        try:
            await self._on_open_chunk(key, entry, chunk)
        finally:
            self._release(key)

    async def _on_open_chunk(self, key: tuple[str, str], entry: _Open, chunk: Chunk) -> None:
        t, m = entry.transfer, entry.transfer.manifest
        entry.active_at = time.monotonic()
        if chunk.index >= t.count:
            raise Refused("chunk_out_of_range", f"chunk {chunk.index} is past the announced "
                          f"{t.count} chunks", fatal=False, segment_id=m.segment_id)
        await self._check_active(chunk.device_id)  # a revoked recorder is refused
        first = entry.in_flight.get(chunk.index)
        if first is not None:  # the same chunk is in the fast lane: its outcome first
            await asyncio.shield(first)
        if t.has(chunk.index):
            self._chunk_replay(chunk, "already received")
            return
        expected = m.chunk_wire_length(chunk.index)
        if len(chunk.data) != expected:
            raise Refused("chunk_length", f"chunk {chunk.index} has {len(chunk.data)} bytes, "
                          f"expected {expected}", fatal=False, segment_id=m.segment_id)
        try:
            await self._stage_chunk(entry, chunk)
        except EnvelopeError as exc:
            entry.discard()
            self._open.pop(key, None)
            raise Refused("tampered", f"{exc.reason}; the segment was discarded", fatal=True,
                          segment_id=m.segment_id) from None
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise Refused("hub_storage_full", "hub staging disk is full; retry later",
                              fatal=False, segment_id=m.segment_id) from None
            raise
        if t.complete:
            await self._complete(key, entry)

    async def _complete(self, key: tuple[str, str], entry: _Open) -> None:
        """The last chunk arrived: finish under the transfer lock. With several workers more
        than one may see the transfer complete; the first to lock it stores it, the others find
        it gone (or already in the database) and do nothing."""
        lock = await self._lock(key, create=False)
        if lock is None:
            self._open.pop(key, None)
            entry.close()
            return
        try:
            if self.shared:
                entry.close()
                self._open.pop(key, None)
                fresh = self._load(key)
                if fresh is None or not fresh.transfer.complete:
                    return
                entry = fresh
            await self._finish(key, entry)
        finally:
            lock.release()

    def _chunk_replay(self, chunk: Chunk, why: str) -> None:
        """A chunk the hub already has: ignored, counted and logged as a replay (a broker
        redelivery after a reconnect looks the same; either way nothing is stored twice)."""
        self.stats.chunks_duplicate += 1
        self.stats.chunks_replayed += 1
        if self.metrics is not None:
            self.metrics.replays.labels("chunk").inc()
        log.info("replay: chunk %d of %s from %s %s; ignored", chunk.index, chunk.segment_id,
                 chunk.device_id, why, extra={"replay": "chunk", "device": chunk.device_id})

    async def _stage_chunk(self, entry: _Open, chunk: Chunk) -> None:
        """Check, open and stage a chunk: in the transfer's chunk worker if it has one, else
        (or if that worker is gone) here on the event loop's thread."""
        if entry.worker is not None:
            t = entry.transfer
            try:
                await entry.worker.chunk(entry.tid, chunk.index, chunk.data, chunk.sha256,
                                         chunk.index == t.count - 1)
            except ChunkHashMismatch:
                raise Refused("chunk_hash", f"chunk {chunk.index} does not match its hash",
                              fatal=False, segment_id=chunk.segment_id) from None
            except WorkerGone as exc:
                # the rest of this transfer is staged here; its hash is then read from disk
                log.warning("segment %s: %s; staging its chunks on the event loop",
                            chunk.segment_id, exc)
                entry.detach()
            else:
                t.mark(chunk.index)
                return
        self._store_chunk(entry, chunk)

    @staticmethod
    def _store_chunk(entry: _Open, chunk: Chunk) -> None:
        if hashlib.sha256(chunk.data).digest() != chunk.sha256:
            raise Refused("chunk_hash", f"chunk {chunk.index} does not match its hash",
                          fatal=False, segment_id=chunk.segment_id)
        t = entry.transfer
        data = chunk.data
        if entry.opener is not None:
            data = entry.opener.open(chunk.index, data, chunk.index == t.count - 1)
        t.write(chunk.index, data)

    # -- completion --------------------------------------------------------------------------

    async def _digest(self, entry: _Open) -> bytes:
        """SHA-256 of the staged segment, from whichever running hash covers most of it."""
        t = entry.transfer
        if entry.worker is not None:
            try:  # the worker's running hash, plus what that did not cover, read from the file
                return await entry.worker.digest(entry.tid)
            except WorkerGone:
                entry.detach()
        if t.fully_hashed:
            return t.digest()  # every chunk went through the running hash: nothing to read
        return await asyncio.to_thread(t.digest)

    async def _finish(self, key: tuple[str, str], entry: _Open) -> None:
        t, m, signed = entry.transfer, entry.transfer.manifest, entry.transfer.signed
        size = t.size()  # a stat
        consumed = (size != m.length and m.length > 0
                    and await self.store.exists(ref_for(m.sha256.hex())))
        if consumed:
            # The blob went into the store but the row did not commit (crash, database down):
            # the staged data was consumed by the store; finish with the stored object.
            log.warning("segment %s: content already in the store, recording it",
                        m.segment_id)
            digest, size = m.sha256, m.length
        else:
            digest = await self._digest(entry)
        if digest != m.sha256 or size != m.length:
            entry.discard()
            self._open.pop(key, None)
            raise Refused("content_mismatch", "assembled content does not match the signed "
                          "manifest (hash or length); the segment was discarded", fatal=True,
                          segment_id=m.segment_id)
        entry.close()
        # From here on the transfer is closed: whatever happens, forget the open entry so a
        # retry reloads it from the staging folder instead of using closed descriptors.
        self._open.pop(key, None)
        try:
            await self._check_active(m.device_id)  # revoked while the chunks were arriving?
        except Refused:
            entry.discard()
            raise
        # (checked again in the transaction that records the segment, which is what counts;
        # this early check, at most REVOCATION_TTL old, only spares the store a blob no row
        # will ever point to)
        try:
            if consumed:
                ref = ref_for(digest.hex())
            else:
                ref = await self.store.put_file(t.data_path, digest.hex(), m.length)
        except StorageError as exc:
            raise Refused("hub_storage_full" if isinstance(exc, StorageFull) else "storage_error",
                          str(exc), fatal=False, segment_id=m.segment_id) from None
        now = utcnow()
        receipt = Receipt(
            hub_id=self.hub_id, device_id=m.device_id, segment_id=m.segment_id, seq=m.seq,
            sha256=m.sha256, length=m.length, manifest_hash=signed.digest,
            received_ms=to_ms(now), stored_ref=ref,
        )
        receipt_wire = sign_message(receipt, self.signing_key)
        values = dict(
            segment_id=m.segment_id, device_id=m.device_id, seq=m.seq, officer_id=m.officer_id,
            start_at=from_ms(m.start_ms), end_at=from_ms(m.end_ms), media_type=m.media_type,
            length=m.length, sha256=digest.hex(), important=m.important, recovered=m.recovered,
            clock_state=m.clock.state, clock_offset_ms=m.clock.offset_ms, prev_hash=m.prev_hash,
            manifest=signed.wire, manifest_hash=signed.digest, receipt=receipt_wire,
            stored_ref=ref, received_at=now,
        )
        row = Segment(**values)  # (not added to the session: the hooks read it by id)
        try:
            await self._record(_ToRecord(m, values))
        except Refused:
            entry.discard()  # revoked between the check above and this transaction
            raise
        except DBIntegrityError:
            # Another worker stored it first (shared subscriptions): answer with its receipt.
            async with self.sessions() as s:
                row = await s.get(Segment, m.segment_id)  # type: ignore[assignment]
            if row is None or row.manifest_hash != signed.digest:
                raise
            receipt_wire = row.receipt
        else:
            self.stats.segments_stored += 1
            self.stats.bytes_stored += m.length
            if self.metrics is not None:
                self.metrics.segments_stored.inc()
                self.metrics.bytes_stored.inc(m.length)
            log.info("segment %s of %s stored as %s (seq %d, %d bytes)", m.segment_id,
                     m.device_id, ref, m.seq, m.length)
            if self.on_stored is not None:
                # Deadlines, gap checks and auto-links must not delay the receipt.
                self._spawn(self.on_stored(row), f"on-stored-{m.segment_id}")
        entry.discard()
        self._open.pop(key, None)
        await self._reply(m.device_id, receipt_wire)

    # -- group commit ------------------------------------------------------------------------

    async def _record(self, item: _ToRecord) -> None:
        """Record a verified, stored segment (row + audit entries) in a committed transaction.

        Segments that finish while a transaction is running are recorded together in the next
        one: twenty recorders finishing at once then wait for one or two commits instead of
        queueing for twenty (SQLite has one writer; each transaction also holds the process's
        write gate). Raises :class:`Refused` for a revoked recorder and the database's
        ``IntegrityError`` when the segment is already recorded, as a transaction of its own
        would; a batch that fails is retried one segment at a time."""
        self._to_record.append(item)
        # (read the outcome even if the caller is cancelled meanwhile: no "never retrieved")
        item.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_queued(), name="ingest-commit")
        await asyncio.shield(item.done)

    async def _record_queued(self) -> None:
        while self._to_record:
            batch = self._to_record[:self.MAX_COMMIT]
            del self._to_record[:len(batch)]
            try:
                await self._record_batch(batch)
            except Exception as exc:
                if len(batch) == 1:
                    batch[0].finish(exc)
                    continue
                log.warning("recording %d segments together failed (%s); recording them one "
                            "by one", len(batch), exc)
                for item in batch:
                    try:
                        await self._record_batch([item])
                    except Exception as one:
                        item.finish(one)

    async def _record_batch(self, batch: list[_ToRecord]) -> None:
        accepted: list[_ToRecord] = []
        refused: list[tuple[_ToRecord, Refused]] = []
        async with self.sessions() as s, s.begin():
            wanted = sorted({item.manifest.device_id for item in batch})
            devices: dict[str, Any] = {r.device_id: r for r in (await s.execute(
                _devices_stmt(), {"devs": wanted})).all()}
            for item in batch:
                d = item.manifest.device_id
                try:
                    _active_key(devices.get(d), d)  # the revocation check that counts
                except Refused as r:
                    refused.append((item, r))
                else:
                    accepted.append(item)
            if accepted:
                # Core: no unit of work; one statement for the batch
                await s.execute(_insert_segment_stmt(), [i.values for i in accepted])
                await record_events(s, [e for i in accepted for e in self._audit_events(i)])
        for item in accepted:
            item.finish(None)
        for item, r in refused:
            item.finish(r)

    def _audit_events(self, item: _ToRecord) -> list[Any]:
        m, manifest_hash = item.manifest, item.values["manifest_hash"]
        subjects = (f"segment:{m.segment_id}", f"device:{m.device_id}")
        return [
            (EventType.SEGMENT_INGESTED, f"device:{m.device_id}", subjects, {
                "seq": m.seq, "sha256": m.sha256.hex(), "length": m.length,
                "stored_ref": item.values["stored_ref"], "manifest_hash": manifest_hash.hex(),
                "officer_id": m.officer_id, "important": m.important,
                "recovered": m.recovered, "clock": m.clock.state,
            }, None),
            (EventType.RECEIPT_ISSUED, f"hub:{self.hub_id}", subjects, {
                "manifest_hash": manifest_hash.hex(),
            }, None),
        ]

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background hooks (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # -- heartbeats --------------------------------------------------------------------------

    async def _on_heartbeat(self, where: topics.DeviceTopic, payload: bytes) -> None:
        received_ms = to_ms(utcnow())
        signed = decode_signed(payload, Heartbeat)
        topics.check_same_device(where, signed.message.device_id)
        hb = signed.verify(await self._device_key(where.device_id))
        async with self.sessions() as s, s.begin():
            dev = await s.get(Device, where.device_id)
            if dev is not None:
                dev.last_seen_at = utcnow()
                dev.last_seq_reported = hb.last_seq if hb.last_seq >= 0 else None
                dev.hb_state, dev.hb_storage, dev.hb_firmware = hb.state, hb.storage, hb.firmware
                dev.hb_free_bytes, dev.hb_battery_pct = hb.free_bytes, hb.battery_pct
                dev.hb_pending_segments, dev.hb_pending_bytes = (hb.pending_segments,
                                                                 hb.pending_bytes)
                dev.hb_clock_state, dev.hb_clock_offset_ms = hb.clock.state, hb.clock.offset_ms
        if self.metrics is not None:
            self.metrics.pending.labels(where.device_id).set(hb.pending_segments)
        if self.on_heartbeat is not None:
            await self.on_heartbeat(where.device_id, hb.last_seq)
        if self.on_clock is not None:
            try:
                await self.on_clock(hb, received_ms)
            except Exception:  # a time sync is a courtesy; the heartbeat itself counted
                log.exception("time sync for %s failed", where.device_id)

    # -- replies and refusals ----------------------------------------------------------------

    async def _reply(self, device_id: str, payload: bytes) -> None:
        await self.publish(topics.hub_topic(device_id, "reply"), payload)

    async def _refuse(self, device_id: str, topic: str, r: Refused) -> None:
        await self._record_rejection(device_id, r.segment_id, topic, r.code, r.reason)
        reject = Reject(device_id, r.segment_id[:64], r.code, r.reason[:500], r.fatal)
        try:
            await self._reply(device_id, encode_message(reject))
        except Exception:  # the refusal is logged and stored; a reply is best effort
            log.exception("could not send reject to %s", device_id)

    async def _record_rejection(
        self, device_id: str, segment_id: str, topic: str, code: str, reason: str
    ) -> None:
        self.stats.rejected[code] = self.stats.rejected.get(code, 0) + 1
        if self.metrics is not None:
            self.metrics.rejections.labels(code).inc()
        log.warning("rejected message from %s on %s: [%s] %s", device_id, topic, code, reason,
                    extra={"code": code, "device": device_id, "segment": segment_id})
        try:
            async with self.sessions() as s, s.begin():
                s.add(Rejection(device_id=device_id[:128], segment_id=segment_id[:128],
                                topic=topic[:300], code=code, reason=reason))
        except Exception:
            log.exception("could not record rejection")

    def open_transfers(self) -> int:
        """Segments being received: the transfers in the staging folder (shared by every worker
        in shared mode, where no worker keeps them open between messages)."""
        n = 0
        try:
            devices = [d for d in self.store.staging_dir.iterdir() if not d.name.startswith(".")]
        except FileNotFoundError:
            return 0
        for dev in devices:
            try:  # transfers come and go while this counts
                n += sum(1 for seg in dev.iterdir() if (seg / "manifest").exists())
            except (FileNotFoundError, NotADirectoryError):
                continue
        return n

    def chunk_workers(self) -> tuple[int, int]:
        """Chunk worker processes running now, and how many died or hung so far."""
        return (sum(w.alive for w in self._workers), sum(w.deaths for w in self._workers))

    def close(self) -> None:
        for entry in self._open.values():
            entry.close()
        self._open.clear()
        for worker in self._workers:
            worker.shutdown()
