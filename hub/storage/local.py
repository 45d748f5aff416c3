"""A local folder as content-addressed, write-once storage.

Layout: ``<root>/objects/sha256/<2 hex>/<2 hex>/<64 hex>`` (mode 0444) and
``<root>/staging/`` for transfers in progress (same filesystem, so a completed transfer is
published with one atomic link). An object is never overwritten: it is published with
``link()``, which fails if the name exists.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from ..errors import IntegrityError, StorageError, StorageFull
from .base import parse_ref, ref_for

READ_BLOCK = 1024 * 1024


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore:
    def __init__(self, root: Path, reserve_bytes: int = 0) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects" / "sha256"
        self.staging_dir = self.root / "staging"
        self.reserve_bytes = reserve_bytes
        self.objects.mkdir(parents=True, exist_ok=True)
        self.staging_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, ref: str) -> Path:
        h = parse_ref(ref)
        return self.objects / h[:2] / h[2:4] / h

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def check_space(self, needed: int) -> None:
        free = self.free_bytes()
        if free - needed < self.reserve_bytes:
            raise StorageFull(needed, free)

    def _put(self, path: Path, sha256_hex: str, length: int) -> str:
        ref = ref_for(sha256_hex)
        final = self.path_for(ref)
        if os.path.getsize(path) != length:
            raise StorageError(f"{path} has {os.path.getsize(path)} bytes, expected {length}")
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(path, 0o444)
        self._make_dirs(final.parent)
        try:
            os.link(path, final)
        except FileExistsError:
            if os.path.getsize(final) != length:
                raise IntegrityError(ref, "a different size") from None
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise StorageFull(length, self.free_bytes()) from exc
            raise
        fsync_dir(final.parent)
        os.unlink(path)
        return ref

    def _make_dirs(self, leaf: Path) -> None:
        """Create the object's ``<2 hex>/<2 hex>`` folders that are missing, each made durable
        (its parent fsynced) before the object is linked into it: otherwise a crash could lose
        the folder, and the object in it, after its receipt was sent."""
        if leaf.is_dir():
            return
        for folder in (leaf.parent, leaf):
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            fsync_dir(folder.parent)

    async def put_file(self, path: Path, sha256_hex: str, length: int) -> str:
        return await asyncio.to_thread(self._put, Path(path), sha256_hex, length)

    async def exists(self, ref: str) -> bool:
        return self.path_for(ref).exists()

    async def size(self, ref: str) -> int:
        return self.path_for(ref).stat().st_size

    async def read_range(
        self, ref: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self.path_for(ref)
        with open(path, "rb") as f:
            f.seek(start)
            remaining = (end if end is not None else path.stat().st_size) - start
            while remaining > 0:
                block = await asyncio.to_thread(f.read, min(READ_BLOCK, remaining))
                if not block:
                    break
                remaining -= len(block)
                yield block

    def _delete(self, ref: str) -> None:
        path = self.path_for(ref)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        fsync_dir(path.parent)

    async def delete(self, ref: str) -> None:
        await asyncio.to_thread(self._delete, ref)

    def _hash(self, ref: str) -> str:
        h = hashlib.sha256()
        with open(self.path_for(ref), "rb") as f:
            while block := f.read(READ_BLOCK):
                h.update(block)
        return h.hexdigest()

    async def verify(self, ref: str) -> None:
        actual = await asyncio.to_thread(self._hash, ref)
        if actual != parse_ref(ref):
            raise IntegrityError(ref, actual)
