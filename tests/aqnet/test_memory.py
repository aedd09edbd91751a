"""aqnet.memory on this machine's libc: a thread's freed heap is given back by `trim`, `limit_arenas` leaves an
operator's MALLOC_ARENA_MAX alone. Each check runs in a fresh interpreter (an arena cap applies to a process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aqnet import memory

pytestmark = pytest.mark.skipif(memory.libc() is None, reason="not glibc: aqnet.memory does nothing here")

#: a thread fills its arena with MIB thousand 1 KiB blocks (above pymalloc's 512 bytes: they come from malloc), frees
#: all but one in fifty (so the arena cannot shrink from its top), then the resident size and the free heap before,
#: and the resident size after, TRIM (a call of aqnet.memory)
_FRAGMENTED = """
import json, threading
from aqnet import memory

def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

kept = []
def fill():
    blocks = [bytes(1024) + bytes([i % 256]) for i in range(MIB * 1000)]
    kept.extend(blocks[::50])
t = threading.Thread(target=fill)
t.start(); t.join()
before, free = rss_kib(), memory.free_bytes()
trimmed = memory.TRIM
print(json.dumps({"before": before, "after": rss_kib(), "free": free, "trimmed": trimmed, "kept": len(kept)}))
"""


def _fragmented(mib: int, trim: str) -> str:
    return _FRAGMENTED.replace("MIB", str(mib)).replace("TRIM", trim)


def _run(code: str, env: dict[str, str] | None = None) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         env=env)
    return json.loads(out.stdout)


def test_trim_gives_a_threads_freed_heap_back() -> None:
    got = _run(_fragmented(200, "trim()"))
    assert got["trimmed"] is True
    before, after = int(got["before"]), int(got["after"])  # type: ignore[call-overload]
    # ~200 MiB was allocated, ~4 MiB is still in use: most of the difference goes back
    assert before - after > 100 * 1024, got


def test_limit_arenas_applies_unless_the_operator_set_it() -> None:
    code = "import json; from aqnet import memory; print(json.dumps({'applied': memory.limit_arenas()}))"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert _run(code, env)["applied"] is True
    assert _run(code, {**env, "MALLOC_ARENA_MAX": "4"})["applied"] is False
    with pytest.raises(ValueError, match="arenas must be >= 1"):
        memory.limit_arenas(0)


@pytest.mark.skipif(memory.free_bytes() is None, reason="no mallinfo2 (glibc < 2.33): every tick trims")
@pytest.mark.parametrize(("mib", "trims"), [(200, True), (20, False)])
def test_the_heap_is_trimmed_only_above_the_floor(mib: int, trims: bool) -> None:
    got = _run(_fragmented(mib, "trim_if_free(64 * 1024 * 1024)"))
    before, after, free = int(got["before"]), int(got["after"]), int(got["free"])  # type: ignore[call-overload]
    assert (free > 64 * 1024 * 1024) is trims, got  # the freed heap is counted as free
    assert got["trimmed"] is trims, got
    if trims:
        assert before - after > 100 * 1024, got
    else:
        assert abs(before - after) < 2 * 1024, got  # left as it was: no sawtooth in the steady state
