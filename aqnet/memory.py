"""The daemon's native heap (glibc malloc): two arenas, and freed memory given back every minute. Shell, I/O (libc).

Why: Python objects of more than 512 bytes (a batch's lists, COPY buffers, query results), and every C library's
buffers (libpq, numpy), come from malloc. glibc gives each thread that allocates its own arena, up to eight per
core, and an arena keeps the memory it was once given: a soak of the daemon showed its resident size rising in
steps of ~17-25 MiB whenever a job first ran on a new thread (the device-health job every 5 minutes, the writer's
and the MQTT client's threads under load), each step one arena's high-water mark, while the memory in use stayed
flat. So, at start, `limit_arenas` caps glibc at `ARENA_MAX` arenas (the threads share them: they spend their
time waiting on the network, not in malloc), unless the operator set `MALLOC_ARENA_MAX`, which glibc itself
honours; and `trim_every` calls `malloc_trim(0)`, which returns the free pages of every arena to the system.

Elsewhere than glibc (musl, macOS) both do nothing: `libc()` is None.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
from functools import cache

__all__ = ["ARENA_MAX", "TRIM_EVERY_S", "libc", "limit_arenas", "trim", "trim_every"]

log = logging.getLogger(__name__)

#: glibc malloc arenas the daemon's threads share (glibc's default: 8 per core); `MALLOC_ARENA_MAX` overrides it
ARENA_MAX = 2
#: how often freed heap memory is given back (s)
TRIM_EVERY_S = 60.0
_M_ARENA_MAX = -8  #: mallopt parameter (glibc malloc.h)


@cache
def libc() -> ctypes.CDLL | None:
    """glibc, when this process runs on it (it has `malloc_trim` and `mallopt`); else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    if not (hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt")):
        return None
    lib.malloc_trim.argtypes, lib.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    lib.mallopt.argtypes, lib.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return lib


def limit_arenas(arenas: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas at `arenas` (call before threads start); False where it does not apply: not glibc,
    or `MALLOC_ARENA_MAX` is set (the operator's choice stands)."""
    if arenas < 1:
        raise ValueError(f"limit_arenas: arenas must be >= 1, got {arenas}")
    lib = libc()
    if lib is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(lib.mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Give the free pages of every malloc arena back to the system; True when some were (glibc only)."""
    lib = libc()
    return bool(lib.malloc_trim(0)) if lib is not None else False


async def trim_every(interval_s: float = TRIM_EVERY_S) -> None:
    """`trim()` every `interval_s` until cancelled (a daemon task); returns at once where there is no glibc."""
    if libc() is None:
        log.debug("not glibc: the native heap is not trimmed")
        return
    while True:
        await asyncio.sleep(interval_s)
        trim()
