"""Segments in transit: assembled on the hub's disk until complete, then verified and stored.

A transfer lives in ``<staging>/<device>/<segment>/`` as the signed manifest, the growing data
file (plaintext, written at each chunk's offset) and a one-byte-per-chunk ``have`` map. The map
is written after the chunk's data, so after a crash a chunk marked present is on disk; the
whole-segment hash at completion catches anything else. Transfers therefore survive hub
restarts, and a recorder that announces a half-sent segment again only sends what is missing.

Several hub workers may share one staging folder (MQTT shared subscriptions spread the chunks
of one segment over all of them). Then the on-disk ``have`` map is the only truth: a
``shared`` transfer re-reads it instead of trusting a count kept in memory, and hashes the
assembled file from disk at the end. Whoever finishes (or creates) a transfer holds
:func:`lock_transfer` — an exclusive ``flock`` on ``<transfer>/lock`` — so exactly one worker
stores a segment. A finished or discarded transfer is first renamed into ``<staging>/.discard/``
and then removed, so its path vanishes atomically: another worker either sees the whole
transfer or none of it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path

from lerec.protocol import SegmentManifest, Signed, decode_signed

READ_BLOCK = 1024 * 1024
log = logging.getLogger(__name__)

#: Folder inside the staging root for transfers being removed (device ids never start with '.').
DISCARD_DIR = ".discard"


class Transfer:
    """One segment being received. ``shared``: other processes write the same transfer."""

    def __init__(
        self, root: Path, signed: Signed[SegmentManifest], *, shared: bool = False,
        create: bool = False,
    ) -> None:
        self.root = root
        self.signed = signed
        self.manifest = signed.message
        self.count = self.manifest.chunk_count
        self.shared = shared
        self.data_path = root / "data"
        self._have_path = root / "have"
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        # ``have`` exists for every transfer (it is made before the manifest is published); the
        # data file may have been consumed by the store already (crash between store and row).
        self._have_fd = os.open(self._have_path, flags, 0o600)
        try:
            self._data_fd = os.open(self.data_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            os.close(self._have_fd)
            raise
        self.have = bytearray(self.count)
        self.received = 0
        self._sync()
        # Running hash over the contiguous prefix of chunks (the common, in-order case). Only
        # used when this process is the only writer.
        self._hasher = hashlib.sha256()
        self._hashed_upto = 0

    @classmethod
    def create(
        cls, root: Path, signed: Signed[SegmentManifest], *, shared: bool = False
    ) -> Transfer:
        root.mkdir(parents=True, exist_ok=True)
        for name in ("have", "data"):
            os.close(os.open(root / name, os.O_RDWR | os.O_CREAT, 0o600))
        tmp = root / f"manifest.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_bytes(signed.wire)
        os.replace(tmp, root / "manifest")
        return cls(root, signed, shared=shared, create=True)

    @classmethod
    def load(cls, root: Path, *, shared: bool = False) -> Transfer | None:
        """The transfer in ``root``, or None if there is none (or it is being removed)."""
        try:
            wire = (root / "manifest").read_bytes()
            return cls(root, decode_signed(wire, SegmentManifest), shared=shared)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None

    def _sync(self) -> None:
        """Re-read the ``have`` map from disk (other workers may have written chunks)."""
        have = os.pread(self._have_fd, self.count, 0)
        self.have = bytearray(have.ljust(self.count, b"\x00"))
        self.received = self.count - self.have.count(0)

    @property
    def complete(self) -> bool:
        if self.shared:
            self._sync()
        return self.received == self.count

    def has(self, index: int) -> bool:
        if self.shared:
            return os.pread(self._have_fd, 1, index) == b"\x01"
        return bool(self.have[index])

    def missing_ranges(self) -> list[tuple[int, int]]:
        if self.shared:
            self._sync()
        ranges: list[tuple[int, int]] = []
        start = None
        for i, b in enumerate(self.have):
            if not b and start is None:
                start = i
            elif b and start is not None:
                ranges.append((start, i))
                start = None
        if start is not None:
            ranges.append((start, self.count))
        return ranges

    def write(self, index: int, plaintext: bytes) -> None:
        pwrite_all(self._data_fd, plaintext, index * self.manifest.chunk_size)
        pwrite_all(self._have_fd, b"\x01", index)
        self.mark(index)
        if not self.shared and index == self._hashed_upto:
            self._hasher.update(plaintext)
            self._hashed_upto += 1

    def mark(self, index: int) -> None:
        """Count chunk ``index`` as received: its data and its ``have`` byte are on disk
        (written by :meth:`write`, or by a chunk worker through :meth:`dup_fds`)."""
        if not self.have[index]:
            self.have[index] = 1
            self.received += 1

    def dup_fds(self) -> list[int]:
        """New descriptors of the data file and the ``have`` map, for a chunk worker (which
        writes chunks the way :meth:`write` does, and keeps its own running hash)."""
        fds = [os.dup(self._data_fd)]
        try:
            fds.append(os.dup(self._have_fd))
        except OSError:
            os.close(fds[0])
            raise
        return fds

    @property
    def fully_hashed(self) -> bool:
        """Whether the running hash covers every chunk (``digest`` then reads nothing)."""
        return not self.shared and self._hashed_upto == self.count

    def digest(self) -> bytes:
        """SHA-256 of the assembled data (reads back only what the running hash missed)."""
        h = self._hasher.copy()
        offset = self._hashed_upto * self.manifest.chunk_size
        with open(self.data_path, "rb") as f:
            f.seek(offset)
            while block := f.read(READ_BLOCK):
                h.update(block)
        return h.digest()

    def size(self) -> int:
        return os.path.getsize(self.data_path)

    def close(self) -> None:
        """Close the files (idempotent: a descriptor is closed exactly once, so a second call
        can never close a number another thread has been given meanwhile)."""
        fds, self._data_fd, self._have_fd = (self._data_fd, self._have_fd), -1, -1
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def discard(self) -> None:
        self.close()
        remove_transfer(self.root)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset``. A full disk may accept only part of a write without
    an error; the rest is retried, which then fails with ENOSPC — a chunk is never marked as
    received (nor counted in the running hash) unless every byte of it reached the file."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(errno.ENOSPC, "no space left for a staged chunk")
        view = view[n:]
        offset += n


def remove_transfer(root: Path) -> None:
    """Remove a transfer folder: rename it out of the way first (atomic), then delete it."""
    trash = root.parent.parent / DISCARD_DIR / f"{root.parent.name}.{root.name}.{uuid.uuid4().hex}"
    try:
        trash.parent.mkdir(exist_ok=True)
        os.rename(root, trash)
    except FileNotFoundError:
        return
    except OSError as exc:  # e.g. staging root not shaped as expected: delete in place
        if exc.errno not in (errno.EXDEV, errno.ENOTDIR, errno.EISDIR):
            raise
        trash = root
    shutil.rmtree(trash, ignore_errors=True)


def sweep_discarded(staging: Path) -> int:
    """Delete what is left in ``<staging>/.discard/``: transfers a process renamed away but did
    not finish deleting because it was killed. Everything there is already out of every
    worker's sight, so a start-up may delete it while other workers are running (one that is
    deleting the same folder meanwhile just finds less to delete). Best effort: what cannot be
    deleted stays for the next start-up and is logged. Returns how many entries are gone."""
    trash = staging / DISCARD_DIR
    try:
        entries = list(trash.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return 0
    except OSError as exc:
        log.warning("cannot read %s to delete half-deleted transfers: %s", trash, exc)
        return 0
    gone = 0
    for entry in entries:
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            pass  # (another worker deleted it meanwhile)
        except OSError as exc:
            log.warning("cannot delete half-deleted transfer %s: %s", entry, exc)
            continue
        gone += 1
    return gone


class TransferLock:
    """An exclusive ``flock`` on ``<transfer>/lock``; released by :meth:`release` (or by the
    kernel when the process dies, so a killed worker never leaves a transfer locked)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)  # closing the only descriptor drops the lock


def try_lock_transfer(root: Path, *, create: bool) -> TransferLock | None | bool:
    """Try once to lock the transfer in ``root``.

    Returns the lock; ``None`` if the transfer folder does not exist (and ``create`` is false);
    ``False`` if another process holds the lock right now. The lock is only valid if the lock
    file is still the one at the path after locking: a worker that locked a transfer which was
    removed meanwhile tries again (and finds it gone, or a new one)."""
    while True:
        if create:
            root.mkdir(parents=True, exist_ok=True)
        path = root / "lock"
        try:
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
        except FileNotFoundError:
            if create:
                continue  # removed between mkdir and open
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return TransferLock(fd)
        os.close(fd)  # removed (and maybe re-created) meanwhile: look again
