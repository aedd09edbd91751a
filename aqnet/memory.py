"""The daemon's native heap (glibc malloc): two arenas, and freed memory given back every minute. Shell, I/O (libc).

Why: Python objects of more than 512 bytes (a batch's lists, COPY buffers, query results), and every C library's
buffers (libpq, numpy), come from malloc. glibc gives each thread that allocates its own arena, up to eight per
core, and an arena keeps the memory it was once given: a soak of the daemon showed its resident size rising in
steps of ~17-25 MiB whenever a job first ran on a new thread (the device-health job every 5 minutes, the writer's
and the MQTT client's threads under load), each step one arena's high-water mark, while the memory in use stayed
flat. So, at start, `limit_arenas` caps glibc at `ARENA_MAX` arenas (the threads share them: they spend their
time waiting on the network, not in malloc), unless the operator set `MALLOC_ARENA_MAX`, which glibc itself
honours; and every minute `trim_every` calls `malloc_trim(0)`, which returns the free pages of every arena to the
system, when more than `TRIM_MIN_FREE` of the heap is free (glibc's `mallinfo2`; without it, every minute). The
floor keeps the steady state flat: trimming the ~20 MiB the averaging job frees every minute only made the resident
size a sawtooth (down at the trim, up again at the job's next run), while a backlog's or a one-off run's surplus
goes back.

Elsewhere than glibc (musl, macOS) both do nothing: `libc()` is None.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
from functools import cache

__all__ = ["ARENA_MAX", "TRIM_EVERY_S", "TRIM_MIN_FREE", "free_bytes", "libc", "limit_arenas", "trim", "trim_every",
           "trim_if_free"]

log = logging.getLogger(__name__)

#: glibc malloc arenas the daemon's threads share (glibc's default: 8 per core); `MALLOC_ARENA_MAX` overrides it
ARENA_MAX = 2
#: how often freed heap memory is given back (s)
TRIM_EVERY_S = 60.0
#: free heap (bytes) above which it is given back
TRIM_MIN_FREE = 64 * 1024 * 1024
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
    if hasattr(lib, "mallinfo2"):  # glibc >= 2.33
        lib.mallinfo2.argtypes, lib.mallinfo2.restype = [], _Mallinfo2
    return lib


class _Mallinfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (malloc.h): every field a size_t."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def free_bytes() -> int | None:
    """Bytes free in the malloc arenas (`mallinfo2().fordblks`: what a trim can give back, at most); None without
    glibc's `mallinfo2`."""
    lib = libc()
    if lib is None or not hasattr(lib, "mallinfo2"):
        return None
    return int(lib.mallinfo2().fordblks)


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


def trim_if_free(min_free: int = TRIM_MIN_FREE) -> bool:
    """`trim()` when more than `min_free` bytes of the heap are free (always, when that cannot be known); True when
    pages went back."""
    free = free_bytes()
    if free is not None and free <= min_free:
        return False
    return trim()


async def trim_every(interval_s: float = TRIM_EVERY_S, min_free: int = TRIM_MIN_FREE) -> None:
    """`trim_if_free(min_free)` every `interval_s` until cancelled (a daemon task); returns at once where there is
    no glibc."""
    if libc() is None:
        log.debug("not glibc: the native heap is not trimmed")
        return
    while True:
        await asyncio.sleep(interval_s)
        trim_if_free(min_free)
