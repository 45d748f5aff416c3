"""Segments in transit: assembled on the hub's disk until complete, then verified and stored.

A transfer lives in ``<staging>/<device>/<segment>/`` as the signed manifest, the growing data
file (plaintext, written at each chunk's offset) and a one-byte-per-chunk ``have`` map. The map
is written after the chunk's data, so after a crash a chunk marked present is on disk; the
whole-segment hash at completion catches anything else. Transfers therefore survive hub
restarts, and a recorder that announces a half-sent segment again only sends what is missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from lerec.protocol import SegmentManifest, Signed, decode_signed

READ_BLOCK = 1024 * 1024


class Transfer:
    """One segment being received."""

    def __init__(self, root: Path, signed: Signed[SegmentManifest]) -> None:
        self.root = root
        self.signed = signed
        self.manifest = signed.message
        self.count = self.manifest.chunk_count
        self.data_path = root / "data"
        self._have_path = root / "have"
        self._data_fd = os.open(self.data_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._have_fd = os.open(self._have_path, os.O_RDWR | os.O_CREAT, 0o600)
        have = os.pread(self._have_fd, self.count, 0)
        self.have = bytearray(have.ljust(self.count, b"\x00"))
        self.received = sum(1 for b in self.have if b)
        # Running hash over the contiguous prefix of chunks (the common, in-order case).
        self._hasher = hashlib.sha256()
        self._hashed_upto = 0

    @classmethod
    def create(cls, root: Path, signed: Signed[SegmentManifest]) -> Transfer:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / "manifest.tmp"
        tmp.write_bytes(signed.wire)
        os.replace(tmp, root / "manifest")
        return cls(root, signed)

    @classmethod
    def load(cls, root: Path) -> Transfer | None:
        try:
            wire = (root / "manifest").read_bytes()
        except FileNotFoundError:
            return None
        return cls(root, decode_signed(wire, SegmentManifest))

    @property
    def complete(self) -> bool:
        return self.received == self.count

    def has(self, index: int) -> bool:
        return bool(self.have[index])

    def missing_ranges(self) -> list[tuple[int, int]]:
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
        os.pwrite(self._data_fd, plaintext, index * self.manifest.chunk_size)
        os.pwrite(self._have_fd, b"\x01", index)
        self.have[index] = 1
        self.received += 1
        if index == self._hashed_upto:
            self._hasher.update(plaintext)
            self._hashed_upto += 1

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
        shutil.rmtree(self.root, ignore_errors=True)
