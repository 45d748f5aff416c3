"""Chunk work off the event loop: a helper process that checks, opens and stages chunks.

For every 256 KiB chunk the protocol requires a SHA-256 of the ciphertext, a ChaCha20-Poly1305
open, a write, and the running SHA-256 of the segment: about 0.6 ms of C code. Done on the event
loop's thread, that work capped the hub at one core (measured during ``bench_ingest_many``: the
loop thread 92 % busy while a third of the machine idled). Threads do not help: every hashlib
call gives up the GIL and has to take it back from the busy loop thread, and those hand-offs
cost more than the hashing saves. A process has a GIL of its own.

The channel is one ``AF_UNIX``/``SOCK_SEQPACKET`` socket pair (one record per message; file
descriptors travel with ``SCM_RIGHTS``) and one shared memory region (a ``memfd``) of ``slots``
chunk-sized slots (8 by default: enough to keep the worker busy; a chunk that finds none free
waits for one). The loop copies a chunk's ciphertext into a free slot and sends a short
request; the worker checks the chunk's hash, opens it, writes it and answers with a status. A
slot is reused only after its answer has arrived.

:meth:`ChunkWorker.chunk` awaits its answer (one chunk at a time per caller);
:meth:`ChunkWorker.submit` does not wait: it queues the chunk for a slot and calls back with
the answer, so the chunks of one recorder are in flight together (the ingest's fast lane).

The worker writes into the very files the loop opened (their descriptors are passed to it), in
the order staging requires: the chunk's data first, then its byte in the ``have`` map. The loop
counts a chunk as received only after the worker's answer. If the worker dies, every request in
flight fails with :class:`WorkerGone`; the ingest then does that chunk itself, and the segment's
hash is taken from the staged file at the end: the loop's own running hash only ever covers the
chunks the loop wrote itself, from chunk 0 on, and the worker's only those it wrote, so neither
can cover a chunk it did not see. A new worker is started for later transfers.

Run as ``python -m lerec.hub.daemon.chunkwork`` by :class:`ChunkWorker` only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import logging
import mmap
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from lerec.protocol import EnvelopeError
from lerec.protocol.envelope import Opener
from lerec.protocol.messages import AEAD_TAG_BYTES, MAX_CHUNK_BYTES, Encryption

from .staging import READ_BLOCK, Transfer, pwrite_all

log = logging.getLogger(__name__)

# -- wire format (both ends are this module) -----------------------------------------------------

#: Request head: operation, transfer id, request id (0: no answer wanted).
_HEAD = struct.Struct("!BIQ")
#: OPEN: chunk size, chunk count, sealed (0/1); then, if sealed, ephemeral key (32 bytes) and
#: recipient (8 bytes); then the algorithm's and the segment id's lengths and the two strings.
_OPEN = struct.Struct("!IIB")
_STRINGS = struct.Struct("!HH")
#: CHUNK: slot, chunk index, length in the slot, last chunk (0/1), expected SHA-256.
_CHUNK = struct.Struct("!IIIB32s")
#: Answer: request id, status, errno; then a reason (UTF-8) or a digest.
_ANSWER = struct.Struct("!QBi")

_KEY, _OPEN_OP, _CHUNK_OP, _DIGEST, _CLOSE = 1, 2, 3, 4, 5
OK, BAD_HASH, TAMPERED, OS_ERROR, FAILED = 0, 1, 2, 3, 4

SLOT_BYTES = MAX_CHUNK_BYTES + AEAD_TAG_BYTES
_MAX_RECORD = 4096


#: ``answered(error)``: the outcome of a :meth:`ChunkWorker.submit` (None: staged).
Answered = Callable[[BaseException | None], None]


@dataclass
class _Submitted:
    """A chunk of :meth:`ChunkWorker.submit` waiting for a slot."""

    tid: int
    index: int
    data: bytes | memoryview
    sha256: bytes
    last: bool
    answered: Answered


class WorkerGone(Exception):
    """The chunk worker cannot do this (it died, or this transfer is not open in it): the
    caller does the work itself."""


class ChunkHashMismatch(Exception):
    """The chunk's ciphertext does not match the SHA-256 it was sent with."""


# -- the worker process ------------------------------------------------------------------------


@dataclass
class _Staged:
    """A transfer open in the worker: its files, its opener and its running hash."""

    data_fd: int
    have_fd: int
    chunk_size: int
    count: int
    opener: Opener | None
    hasher: Any  # hashlib's sha256 object
    hashed_upto: int = 0

    def chunk(self, data: memoryview, index: int, last: bool, sha256: bytes) -> None:
        if index >= self.count:
            raise ValueError(f"chunk {index} is past the transfer's {self.count} chunks")
        if hashlib.sha256(data).digest() != sha256:
            raise ChunkHashMismatch
        plain: bytes | memoryview = self.opener.open(index, data, last) if self.opener else data
        pwrite_all(self.data_fd, plain, index * self.chunk_size)
        pwrite_all(self.have_fd, b"\x01", index)  # after the data: see staging
        if index == self.hashed_upto:
            self.hasher.update(plain)
            self.hashed_upto += 1

    def digest(self) -> bytes:
        """SHA-256 of the staged file: the running hash, plus what it did not cover."""
        h = self.hasher.copy()
        offset = self.hashed_upto * self.chunk_size
        while block := os.pread(self.data_fd, READ_BLOCK, offset):
            h.update(block)
            offset += len(block)
        return h.digest()

    def close(self) -> None:
        for fd in (self.data_fd, self.have_fd):
            os.close(fd)


def _open_transfer(body: memoryview, fds: list[int], box_key: X25519PrivateKey | None) -> _Staged:
    if len(fds) != 2:
        raise ValueError(f"OPEN carries {len(fds)} descriptors, not 2")
    chunk_size, count, sealed = _OPEN.unpack_from(body)
    at = _OPEN.size
    epk = recipient = b""
    if sealed:
        epk, recipient = bytes(body[at:at + 32]), bytes(body[at + 32:at + 40])
        at += 40
    alg_len, sid_len = _STRINGS.unpack_from(body, at)
    at += _STRINGS.size
    alg = bytes(body[at:at + alg_len]).decode()
    segment_id = bytes(body[at + alg_len:at + alg_len + sid_len]).decode()
    opener = None
    if sealed:
        if box_key is None:
            raise ValueError("no key: OPEN of a sealed transfer before KEY")
        opener = Opener(box_key, Encryption(alg=alg, epk=epk, recipient=recipient), segment_id)
    return _Staged(fds[0], fds[1], chunk_size, count, opener, hashlib.sha256())


def serve(sock: socket.socket, slots: memoryview, slot_bytes: int) -> None:
    """Answer requests until the hub closes its end."""
    box_key: X25519PrivateKey | None = None
    staged: dict[int, _Staged | str] = {}  # a string: why the OPEN failed
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, _MAX_RECORD, 2)
        except ConnectionResetError:
            return
        if not msg:
            return  # the hub closed its end (or died)
        op, tid, req = _HEAD.unpack_from(msg)
        body = memoryview(msg)[_HEAD.size:]
        status, err, extra = OK, 0, b""
        try:
            if op == _KEY:
                box_key = X25519PrivateKey.from_private_bytes(bytes(body))
            elif op == _OPEN_OP:
                try:
                    staged[tid] = _open_transfer(body, fds, box_key)
                except Exception as exc:  # answered at this transfer's first chunk
                    for fd in fds:
                        os.close(fd)
                    staged[tid] = f"could not open the transfer: {exc!r}"
            elif op == _CLOSE:
                entry = staged.pop(tid, None)
                if isinstance(entry, _Staged):
                    entry.close()
            elif op in (_CHUNK_OP, _DIGEST):
                entry = staged.get(tid)
                if not isinstance(entry, _Staged):
                    raise LookupError(entry or f"transfer {tid} is not open here")
                if op == _DIGEST:
                    extra = entry.digest()
                else:
                    slot, index, length, last, sha256 = _CHUNK.unpack_from(body)
                    if length > slot_bytes:
                        raise ValueError(f"{length} bytes do not fit a slot")
                    start = slot * slot_bytes
                    entry.chunk(slots[start:start + length], index, bool(last), sha256)
            else:
                raise ValueError(f"unknown operation {op}")
        except ChunkHashMismatch:
            status = BAD_HASH
        except EnvelopeError as exc:
            status, extra = TAMPERED, exc.reason.encode()
        except OSError as exc:
            status, err, extra = OS_ERROR, exc.errno or 0, str(exc).encode()
        except Exception as exc:
            status, extra = FAILED, repr(exc).encode()
        if req:
            try:
                sock.sendall(_ANSWER.pack(req, status, err) + extra[:_MAX_RECORD - _ANSWER.size])
            except OSError:
                return  # the hub is gone


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lerec.hub.daemon.chunkwork",
        description="The hub's chunk worker (started by the hub daemon, not by hand): checks, "
                    "decrypts and stages the chunks the daemon hands it over a socket.")
    ap.add_argument("sock_fd", type=int, help="descriptor of the SOCK_SEQPACKET socket")
    ap.add_argument("shm_fd", type=int, help="descriptor of the shared slot memory (memfd)")
    ap.add_argument("slot_bytes", type=int, help="bytes per slot")
    ap.add_argument("slots", type=int, help="number of slots")
    args = ap.parse_args(argv)
    # Ctrl-C in a terminal reaches the whole process group, and systemd signals every process
    # of the service: the hub shuts down in order (its chunks in flight still answered here)
    # and then closes this worker's socket, which ends it. If the hub dies, so does the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=args.sock_fd)
    with mmap.mmap(args.shm_fd, args.slot_bytes * args.slots) as shm:
        os.close(args.shm_fd)
        view = memoryview(shm)
        try:
            serve(sock, view, args.slot_bytes)
        finally:
            view.release()
    return 0


# -- the hub's side ------------------------------------------------------------------------------


class ChunkWorker:
    """One worker process and its channel, used from the event loop's thread only.

    :meth:`open` registers a transfer (its files are handed over), :meth:`chunk` stages one
    chunk, :meth:`digest` gives the staged segment's SHA-256, :meth:`close` forgets a transfer.
    All of them raise :class:`WorkerGone` when the worker cannot serve the transfer; the caller
    then does the work itself. A dead worker is replaced at a later :meth:`open`, at most once
    every ``RESPAWN_AFTER`` seconds."""

    RESPAWN_AFTER = 5.0
    #: A worker that leaves a request unanswered this long (hung, stopped) is killed and
    #: replaced; its chunks are then done on the event loop.
    ANSWER_TIMEOUT = 60.0

    def __init__(self, box_key: X25519PrivateKey, *, slots: int = 8,
                 slot_bytes: int = SLOT_BYTES) -> None:
        self._key = box_key.private_bytes(serialization.Encoding.Raw,
                                          serialization.PrivateFormat.Raw,
                                          serialization.NoEncryption())
        self.slots = slots
        self.slot_bytes = slot_bytes
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writing = False  # waiting for the socket to take more
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._shm: mmap.mmap | None = None
        self._view: memoryview | None = None
        self._free: list[int] = []
        # chunks waiting for a slot, in order (sent as soon as one is free)
        self._slot_waiters: deque[_Submitted] = deque()
        # request id -> (its answer: a chunk's callback, or a digest's future; its slot or -1;
        # when it was sent)
        self._pending: dict[int, tuple[asyncio.Future[bytes] | Answered, int, float]] = {}
        self._watchdog: asyncio.TimerHandle | None = None
        self._outbox: list[tuple[bytes, list[int]]] = []
        self._tids: set[int] = set()  # transfers open in the current worker
        self._next_spawn = 0.0
        self.started = 0  # processes started (a restart counts)
        self.deaths = 0
        self.chunks = 0  # chunks staged by a worker
        self.slot_waits = 0  # chunks that found no free slot

    # -- process -------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._sock is not None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self.alive else None

    def start(self) -> None:
        """Start the worker process now if it is not running (else at :meth:`open`)."""
        if self._sock is None:
            self._spawn()

    def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        memfd = os.memfd_create("lerec-chunk-slots", os.MFD_CLOEXEC)
        shm = None
        try:
            os.ftruncate(memfd, self.slot_bytes * self.slots)
            shm = mmap.mmap(memfd, self.slot_bytes * self.slots)
            proc = subprocess.Popen(
                [sys.executable, "-m", "lerec.hub.daemon.chunkwork", str(theirs.fileno()),
                 str(memfd), str(self.slot_bytes), str(self.slots)],
                pass_fds=(theirs.fileno(), memfd), stdin=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            if shm is not None:
                shm.close()
            raise
        finally:
            theirs.close()
            os.close(memfd)
        ours.setblocking(False)
        self._proc, self._sock, self._shm, self._view = proc, ours, shm, memoryview(shm)
        self._loop, self._writing = loop, False
        self._free = list(range(self.slots))
        self._tids.clear()
        self.started += 1
        loop.add_reader(ours.fileno(), self._on_readable)
        self._watchdog = loop.call_later(self._watch_every, self._watch)
        self._send(_HEAD.pack(_KEY, 0, 0) + self._key)
        log.info("chunk worker started (pid %d, %d slots of %d bytes)", proc.pid, self.slots,
                 self.slot_bytes)

    @property
    def _watch_every(self) -> float:
        return min(5.0, self.ANSWER_TIMEOUT / 4)

    def _watch(self) -> None:
        """Kill a worker that stopped answering (a request older than ``ANSWER_TIMEOUT``)."""
        self._watchdog = None
        if self._sock is None or self._loop is None:
            return
        now = time.monotonic()
        if any(now - sent > self.ANSWER_TIMEOUT for _f, _s, sent in self._pending.values()):
            self._gone(f"no answer for {self.ANSWER_TIMEOUT:.0f} s")
            return
        self._watchdog = self._loop.call_later(self._watch_every, self._watch)

    def _gone(self, why: str) -> None:
        """The worker is gone (or must go): fail everything in flight, reap the process."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self.deaths += 1
        self._next_spawn = time.monotonic() + self.RESPAWN_AFTER
        log.error("chunk worker stopped (%s); its chunks are done on the event loop", why)
        self._teardown(sock, grace=0.0)

    def _teardown(self, sock: socket.socket, *, grace: float) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
            self._loop.remove_writer(sock.fileno())
        self._writing = False
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        sock.close()
        for _msg, fds in self._outbox:
            for fd in fds:
                os.close(fd)
        self._outbox.clear()
        pending, self._pending = self._pending, {}
        self._tids.clear()
        for fut, _slot, _sent in pending.values():
            self._answer(fut, WorkerGone("the chunk worker stopped"))
        waiters, self._slot_waiters = self._slot_waiters, deque()
        for job in waiters:
            self._answer(job.answered, WorkerGone("the chunk worker stopped"))
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(grace)  # its socket is closed: it exits on its own
            except subprocess.TimeoutExpired:
                pass
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._shm is not None:
            self._shm.close()
            self._shm = None

    def shutdown(self) -> None:
        """Stop the worker (its socket closes; it exits at once)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            self._teardown(sock, grace=2.0)

    # -- channel -------------------------------------------------------------------------------

    def _send(self, msg: bytes, fds: list[int] | None = None) -> None:
        """Send one record in order (queued while the socket is full). Takes ownership of
        ``fds``: they are closed once sent."""
        fds = fds or []
        if self._sock is None:
            for fd in fds:
                os.close(fd)
            raise WorkerGone("the chunk worker is not running")
        self._outbox.append((msg, fds))
        if len(self._outbox) == 1:
            self._flush()

    def _flush(self) -> None:
        sock = self._sock
        while sock is not None and self._outbox:
            msg, fds = self._outbox[0]
            try:
                if fds:
                    sock.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                          struct.pack(f"{len(fds)}i", *fds))])
                else:
                    sock.send(msg)
            except BlockingIOError:
                if not self._writing and self._loop is not None and not self._loop.is_closed():
                    self._loop.add_writer(sock.fileno(), self._flush)
                    self._writing = True
                return
            except OSError as exc:
                self._gone(f"send failed: {exc}")
                return
            self._outbox.pop(0)
            for fd in fds:
                os.close(fd)
        if self._writing and sock is not None and self._loop is not None:
            self._loop.remove_writer(sock.fileno())
            self._writing = False

    def _on_readable(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                msg = sock.recv(_MAX_RECORD)
            except BlockingIOError:
                return
            except OSError as exc:
                self._gone(f"receive failed: {exc}")
                return
            if not msg:
                code = self._proc.poll() if self._proc is not None else None
                self._gone(f"exited with {code}" if code is not None else "closed its socket")
                return
            req, status, err = _ANSWER.unpack_from(msg)
            waiting = self._pending.pop(req, None)
            if waiting is None:
                continue
            fut, slot, _sent = waiting
            if slot >= 0:
                self._release(slot)
            extra = msg[_ANSWER.size:]
            error: BaseException | None = None
            if status == BAD_HASH:
                error = ChunkHashMismatch()
            elif status == TAMPERED:
                error = EnvelopeError(extra.decode(errors="replace"))
            elif status == OS_ERROR:
                error = OSError(err, extra.decode(errors="replace"))
            elif status != OK:
                error = WorkerGone(f"the chunk worker failed: {extra.decode(errors='replace')}")
            elif not isinstance(fut, asyncio.Future):
                self.chunks += 1  # (a staged chunk; a future is a DIGEST's answer)
            self._answer(fut, error, extra)

    @staticmethod
    def _answer(fut: asyncio.Future[bytes] | Answered, error: BaseException | None,
                extra: bytes = b"") -> None:
        if isinstance(fut, asyncio.Future):
            if fut.done():
                return
            if error is None:
                fut.set_result(extra)
            else:
                fut.set_exception(error)
            return
        try:
            fut(error)
        except Exception:  # a callback's own failure must not stop the answers behind it
            log.exception("chunk answer callback failed")

    def _release(self, slot: int) -> None:
        self._free.append(slot)
        while self._slot_waiters and self._free:
            self._send_chunk(self._slot_waiters.popleft())

    async def _ask(self, msg: bytes, req: int) -> bytes:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[req] = (fut, -1, time.monotonic())
        try:
            self._send(msg)
        except WorkerGone:
            self._pending.pop(req, None)
            raise
        return await fut

    # -- operations ----------------------------------------------------------------------------

    def open(self, transfer: Transfer) -> int | None:
        """Hand a transfer to the worker; its id, or None if no worker is available."""
        if self._sock is None:
            if time.monotonic() < self._next_spawn:
                return None
            try:
                self._spawn()
            except OSError as exc:
                self._next_spawn = time.monotonic() + self.RESPAWN_AFTER
                log.error("could not start a chunk worker (%s); chunks are done on the event "
                          "loop", exc)
                return None
        m = transfer.manifest
        tid = next(self._ids) & 0xFFFFFFFF
        enc = m.encryption
        body = _OPEN.pack(m.chunk_size, m.chunk_count, enc is not None)
        alg = b""
        if enc is not None:
            body += enc.epk + enc.recipient
            alg = enc.alg.encode()
        sid = m.segment_id.encode()
        body += _STRINGS.pack(len(alg), len(sid)) + alg + sid
        try:
            self._send(_HEAD.pack(_OPEN_OP, tid, 0) + body, transfer.dup_fds())
        except WorkerGone:
            return None
        self._tids.add(tid)
        return tid

    async def chunk(self, tid: int, index: int, data: bytes | memoryview, sha256: bytes,
                    last: bool) -> None:
        """Check, open and stage one chunk (:meth:`submit`, waiting for its answer). Raises
        :class:`ChunkHashMismatch`, ``EnvelopeError`` (tampered), ``OSError`` (e.g. ENOSPC)
        or :class:`WorkerGone`. A caller cancelled meanwhile does not count the chunk as
        received, though the worker may still write it (a later copy writes the same bytes)."""
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def answered(error: BaseException | None) -> None:
            if answer.done():  # (the caller was cancelled)
                return
            if error is None:
                answer.set_result(None)
            else:
                answer.set_exception(error)

        if not self.submit(tid, index, data, sha256, last, answered):
            raise WorkerGone("transfer not open in the current chunk worker, or too large")
        await answer

    def submit(self, tid: int, index: int, data: bytes | memoryview, sha256: bytes,
               last: bool, answered: Answered) -> bool:
        """:meth:`chunk` without waiting: False (and nothing done) if the transfer is not
        open in this worker. Otherwise the chunk is sent now, or as soon as a slot is free
        (``data`` is kept until then), and ``answered`` is called on the event loop once the
        worker has answered: with None when the chunk is staged, else with the error
        :meth:`chunk` would raise (:class:`WorkerGone` if the worker dies first or the
        transfer was closed meanwhile). Several chunks of one transfer may be in flight
        together; the worker takes them in the order they were submitted."""
        if tid not in self._tids or self._view is None:
            return False
        if memoryview(data).nbytes > self.slot_bytes:
            return False
        job = _Submitted(tid, index, data, sha256, last, answered)
        if self._free and not self._slot_waiters:
            self._send_chunk(job)
        else:  # sent when a slot is free, after those waiting already
            self.slot_waits += 1
            self._slot_waiters.append(job)
        return True

    def _send_chunk(self, job: _Submitted) -> None:
        """Send a submitted chunk in a free slot; a transfer closed (or a worker gone)
        meanwhile is answered with :class:`WorkerGone`."""
        if job.tid not in self._tids or self._view is None:
            self._answer(job.answered, WorkerGone("transfer not open in the current worker"))
            return
        slot = self._free.pop()
        n = memoryview(job.data).nbytes
        start = slot * self.slot_bytes
        self._view[start:start + n] = job.data
        req = next(self._ids)
        self._pending[req] = (job.answered, slot, time.monotonic())
        try:
            self._send(_HEAD.pack(_CHUNK_OP, job.tid, req)
                       + _CHUNK.pack(slot, job.index, n, job.last, job.sha256))
        except WorkerGone as exc:  # (the worker was found gone before: nothing in flight)
            self._pending.pop(req, None)
            self._free.append(slot)
            self._answer(job.answered, exc)

    async def digest(self, tid: int) -> bytes:
        if tid not in self._tids:
            raise WorkerGone("transfer not open in the current chunk worker")
        req = next(self._ids)
        return await self._ask(_HEAD.pack(_DIGEST, tid, req), req)

    def close(self, tid: int) -> None:
        """Forget a transfer (the worker closes its descriptors). Never raises."""
        if tid in self._tids:
            self._tids.discard(tid)
            try:
                self._send(_HEAD.pack(_CLOSE, tid, 0))
            except WorkerGone:
                pass


if __name__ == "__main__":
    sys.exit(main())
