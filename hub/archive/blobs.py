"""Local files for blob references, whatever the blob store (local folder or S3)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..storage.base import parse_ref


async def local_files(store: Any, refs: Iterable[str], scratch: Path) -> Callable[[str], Path]:
    """A ``ref -> path`` function. A local store's own (read-only) files are used directly;
    any other store's objects are downloaded once into ``scratch``."""
    if hasattr(store, "path_for"):
        return store.path_for  # type: ignore[no-any-return]
    scratch.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for ref in dict.fromkeys(refs):
        dst = scratch / parse_ref(ref)
        with open(dst, "wb") as f:  # noqa: ASYNC230  (writes go through a thread below)
            async for block in store.read_range(ref):
                await asyncio.to_thread(f.write, block)
            await asyncio.to_thread(os.fsync, f.fileno())
        paths[ref] = dst
    return paths.__getitem__
