"""Signed checkpoints of the audit log, on a schedule and on demand.

The daemon runs :func:`checkpoint_loop` as one named task of its TaskGroup; an operator (or
the archive builder) calls :func:`checkpoint_now`. A checkpoint is only written when the log
grew (``make_checkpoint`` is idempotent per size), so an idle hub writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..audit import log as audit

log = logging.getLogger(__name__)


async def checkpoint_now(
    sessions: Any, key: Ed25519PrivateKey, origin: str = audit.DEFAULT_ORIGIN
) -> bytes:
    """Sign the current head (if not signed yet) in its own transaction; return the note."""
    async with sessions() as s, s.begin():
        return await audit.make_checkpoint(s, key, origin)


async def checkpoint_loop(
    sessions: Any,
    key: Ed25519PrivateKey,
    interval: float = 300.0,
    origin: str = audit.DEFAULT_ORIGIN,
) -> None:
    """Every ``interval`` seconds sign a checkpoint if the log grew. Runs until cancelled;
    a failure (database busy, disk full) is logged and retried at the next tick, never fatal."""
    last = -1
    while True:
        try:
            async with sessions() as s:
                size = await audit.size(s)
            if size != last and size > 0:
                await checkpoint_now(sessions, key, origin)
                last = size
                log.debug("audit checkpoint signed at size %d", size)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not sign an audit checkpoint; retrying in %.0f s", interval)
        await asyncio.sleep(interval)
