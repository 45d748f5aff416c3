"""Keep the hub's resident memory flat on glibc.

The hub allocates in several threads (the event loop, which reads and stores the 256 KiB chunk
payloads, the database driver's threads, the executor's for files). glibc gives every thread
that allocates its own arena (up to 8 per core), and freed buffers stay in those arenas: the
process's RSS creeps up for hours although nothing leaks. Two arenas are
plenty for this workload, and trimming returns the free top of every arena to the kernel.

Both are no-ops where glibc is not the C library (musl, macOS)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc <malloc.h>


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def limit_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (call before the worker threads start). True if applied."""
    if _LIBC is None:
        return False
    ok = bool(_LIBC.mallopt(M_ARENA_MAX, arenas))
    if not ok:
        log.warning("mallopt(M_ARENA_MAX, %d) refused", arenas)
    return ok


def trim() -> bool:
    """Give freed heap memory back to the kernel (``malloc_trim(0)``). True if supported;
    glibc answers whether any memory was released, which does not matter here."""
    if _LIBC is None:
        return False
    _LIBC.malloc_trim(0)
    return True
