"""Local files for blob references, whatever the blob store (local folder or S3)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..storage.base import parse_ref
from .progress import Tracker

#: digests (per algorithm) and length of a downloaded blob
Digests = tuple[dict[str, str], int]


async def local_files(store: Any, refs: Iterable[str], scratch: Path) -> Callable[[str], Path]:
    """A ``ref -> path`` function. A local store's own (read-only) files are used directly;
    any other store's objects are downloaded once into ``scratch``."""
    path_for, _digests = await fetch(store, refs, scratch)
    return path_for


async def fetch(store: Any, refs: Iterable[str], scratch: Path, *,
                algorithms: tuple[str, ...] = (), progress: Tracker | None = None
                ) -> tuple[Callable[[str], Path], dict[str, Digests]]:
    """Like :func:`local_files`, and for downloaded objects their ``algorithms`` digests,
    computed while downloading (by reference; empty for a local store, whose files are hashed
    where they are used). ``progress`` counts the downloaded bytes (an object listed n times
    counts n times: every listing is one file of the package, copied and hashed)."""
    if hasattr(store, "path_for"):
        return store.path_for, {}
    scratch.mkdir(parents=True, exist_ok=True)
    uses = Counter(refs)
    paths: dict[str, Path] = {}
    digests: dict[str, Digests] = {}
    for ref, times in uses.items():
        dst = scratch / parse_ref(ref)
        hashes = [hashlib.new(a) for a in algorithms]
        length = 0

        def write(f: Any, block: bytes, hashes: list[Any] = hashes) -> None:
            f.write(block)
            for h in hashes:
                h.update(block)

        with open(dst, "wb") as f:  # noqa: ASYNC230  (writes go through a thread below)
            async for block in store.read_range(ref):
                await asyncio.to_thread(write, f, block)
                length += len(block)
                if progress is not None:
                    progress.update(len(block) * times)
            await asyncio.to_thread(os.fsync, f.fileno())
        paths[ref] = dst
        if algorithms:
            digests[ref] = ({a: h.hexdigest() for a, h in zip(algorithms, hashes)}, length)
        if progress is not None:
            progress.file_done(times)
    return paths.__getitem__, digests
