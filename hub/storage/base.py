"""The blob-store interface. Objects are addressed by the SHA-256 of their content
(``sha256:<hex>``), written once and never modified; deletion is a separate, audited path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

PREFIX = "sha256:"


def ref_for(sha256_hex: str) -> str:
    return PREFIX + sha256_hex


def parse_ref(ref: str) -> str:
    if not ref.startswith(PREFIX) or len(ref) != len(PREFIX) + 64:
        raise ValueError(f"not a content reference: {ref!r}")
    hexpart = ref[len(PREFIX) :]
    int(hexpart, 16)
    return hexpart


class BlobStore(Protocol):
    """What the hub needs from a place that keeps evidence."""

    #: Folder on the hub's local disk where incoming segments are assembled.
    staging_dir: Path

    async def put_file(self, path: Path, sha256_hex: str, length: int) -> str:
        """Move a verified, complete file into the store; return its reference.

        Idempotent: storing identical content again returns the same reference and leaves the
        existing object untouched. ``path`` is consumed (moved or deleted) on success.
        """
        ...

    def check_space(self, needed: int) -> None:
        """Raise :class:`StorageFull` if ``needed`` more bytes would not fit."""
        ...

    async def exists(self, ref: str) -> bool: ...

    async def size(self, ref: str) -> int: ...

    def read_range(self, ref: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield the bytes ``[start, end)`` of an object in pieces."""
        ...

    async def verify(self, ref: str) -> None:
        """Re-hash an object; raise :class:`IntegrityError` if it no longer matches."""
        ...

    async def delete(self, ref: str) -> None:
        """Remove an object. Only the retention path calls this, after two approvals and with
        the deletion record committed first (hub/oversight/retention.py). Idempotent."""
        ...
