"""Where a benchmark's time goes, for every process and thread: CPU of a process tree from /proc, and py-spy
recordings of it (`py-spy record --subprocesses --threads --format raw`) summarised per process and thread.

- `TreeCpu`: CPU seconds of a root process and all its descendants (the daemon and its intake workers, a
  cluster's postmaster and backends), per process, between `start()` and `stop()`. A descendant that exited in
  between is still in the total through its parent's reaped-children time (cutime + cstime).
- `Spy`: py-spy recording a process tree (all its Python processes and threads) while running; `summarise`
  (pure) turns the raw output into lines: per process and thread, the share of the wall it was active and its
  hottest frames (CPU seconds themselves come from `TreeCpu`).
- py-spy needs ptrace permission over the target: as root it has it; otherwise `ptrace_hint()` says how to
  allow it (`kernel.yama.ptrace_scope`). I/O (/proc, a py-spy child process), except `summarise`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Self

__all__ = ["Spy", "TreeCpu", "TreeCpuResult", "descendants", "proc_name", "ptrace_hint", "py_spy", "summarise",
           "tree_rss_kib"]

#: a frame of aqnet's own code, in py-spy's "func (path:line)"
_OURS = re.compile(r"\((?:.*/)?(sensors|ingest|storage|aqnet|alerts)/")
#: where a thread waits (py-spy records only threads it sees running, but a few wait states slip through)
_IDLE = re.compile(r"^(?:\w+\.)*(poll|select|epoll|_poll|acquire|wait|sleep|_recv_into|accept) \(")
_PROCESS = re.compile(r'^process (\d+):"(.*)"$')
_THREAD = re.compile(r"^thread \((?:0x)?([0-9A-Fa-f]+)\)(?::\s*(.*))?$")


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/`pid`/stat after the command name (index 0 is the state), or None once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def descendants(root: int) -> list[int]:
    """`root` and every process below it (children, grandchildren, ...), from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                children[int(fields[1])].append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def tree_rss_kib(root: int) -> int:
    """Resident set size of `root` and every process below it, summed (VmRSS, KiB; pages shared between a
    parent and its forked children count once per process, an upper bound)."""
    total = 0
    for pid in descendants(root):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


def proc_name(pid: int, width: int = 60) -> str:
    """A short name of `pid`: its command line without the interpreter's path, cut to `width` characters."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return "(gone)"
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return "(kernel)"
    words[0] = Path(words[0]).name
    text = " ".join(words)
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True, slots=True)
class TreeCpuResult:
    """CPU seconds of a process tree over a span of wall time."""

    wall_s: float
    total_s: float  #: every process of the tree, reaped children included
    per_process: tuple[tuple[int, str, float], ...]  #: (pid, name, CPU s), busiest first

    @property
    def cores(self) -> float:
        """CPU seconds per wall second: above 1.0, more than one core was in use on average."""
        return self.total_s / self.wall_s if self.wall_s > 0 else float("nan")


class TreeCpu:
    """CPU of `root` and its descendants between `start()` and `stop()` (utime + stime per process; the
    total adds the reaped children's time, so processes that came and went count too)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self._own: dict[int, float] = {}
        self._names: dict[int, str] = {}
        self._total0 = 0.0
        self._t0 = 0.0

    def _sample(self) -> tuple[dict[int, float], float]:
        own, total = {}, 0.0
        for pid in descendants(self.root):
            fields = _stat(pid)
            if fields is None:
                continue
            own[pid] = (int(fields[11]) + int(fields[12])) / _ticks()
            total += own[pid] + (int(fields[13]) + int(fields[14])) / _ticks() * (pid == self.root)
            if pid not in self._names:
                self._names[pid] = proc_name(pid)
        return own, total

    def start(self) -> None:
        self._own, self._total0 = self._sample()
        self._t0 = time.monotonic()

    def stop(self) -> TreeCpuResult:
        own, total = self._sample()
        wall = time.monotonic() - self._t0
        rows = sorted(((pid, self._names.get(pid, "?"), cpu - self._own.get(pid, 0.0)) for pid, cpu in own.items()),
                      key=lambda r: -r[2])
        return TreeCpuResult(wall, max(0.0, total - self._total0), tuple(rows))


def py_spy() -> str | None:
    """The py-spy executable on PATH or beside this interpreter, if installed."""
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def ptrace_hint() -> str | None:
    """Why py-spy cannot attach here and how to allow it, or None when it can (root, or ptrace_scope 0)."""
    if py_spy() is None:
        return "py-spy is not installed: `.venv/bin/pip install -e '.[bench]'` (make bench does)"
    if os.geteuid() == 0:
        return None
    try:
        scope = int(Path("/proc/sys/kernel/yama/ptrace_scope").read_text())
    except (OSError, ValueError):
        return None
    if scope == 0:
        return None
    return ("py-spy needs ptrace permission over the daemon: run as root, or allow it for your user with "
            "`sudo sysctl kernel.yama.ptrace_scope=0` (or `sudo setcap cap_sys_ptrace+ep $(which py-spy)`)")


class Spy:
    """py-spy recording `pid`, its subprocesses and every thread, at `rate` samples/s, into `out` (raw format).

    Use as a context manager (or `start()`/`stop()`); `lines()` summarises the recording afterwards."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self.log = out.with_name(out.name + ".log")  #: py-spy's own messages
        self.proc: subprocess.Popen[bytes] | None = None
        self.wall_s = 0.0
        self._t0 = 0.0

    def start(self) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError(ptrace_hint() or "py-spy not found")
        self.proc = subprocess.Popen([exe, "record", "--pid", str(self.pid), "--subprocesses", "--threads",
                                      "--format", "raw", "--rate", str(self.rate), "--nonblocking",
                                      "-o", str(self.out)], stdout=subprocess.DEVNULL, stderr=self.log.open("wb"))
        time.sleep(0.5)  # py-spy attaches before the measured work starts
        self._t0 = time.monotonic()

    def stop(self) -> None:
        """Stop recording and wait (up to 30 s) for the profile to be written."""
        self.wall_s = time.monotonic() - self._t0
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def lines(self, top: int | None = None) -> list[str]:
        """The recording summarised per process and thread (the `top` hottest frames of each thread; 4, or
        `AQNET_BENCH_TOP` when set); why there is none when py-spy failed."""
        top = top if top is not None else int(os.environ.get("AQNET_BENCH_TOP", "4"))
        if not self.out.exists() or not self.out.stat().st_size:
            err = self.log.read_text(errors="replace").strip() if self.log.exists() else ""
            return [(f"  (py-spy wrote no samples: {err.splitlines()[-1] if err else 'no output'}; "
                     f"{ptrace_hint() or 'check that the process is a Python one'})")]
        return summarise(self.out.read_text(errors="replace"), rate=self.rate, wall_s=self.wall_s, top=top)


def _split(stack: str) -> tuple[str, str, list[str]]:
    """A py-spy raw stack → (process, thread, frames): the innermost process, the thread's name, the frames."""
    process, thread, frames = "?", "?", []
    for part in stack.split(";"):
        if m := _PROCESS.match(part):
            pid, cmd = m.groups()
            words = cmd.split()
            cmd = " ".join([Path(words[0]).name, *words[1:]]) if words else cmd
            process = f"pid {pid} {cmd[:70]}"
        elif m := _THREAD.match(part):
            tid, name = m.groups()
            thread = f"{name or 'thread'} ({tid})"
        else:
            frames.append(part)
    return process, thread, frames


def summarise(raw: str, *, rate: int, wall_s: float, top: int = 4) -> list[str]:
    """Per process and per thread of a py-spy raw recording (`--subprocesses --threads`, lines of
    "process ..;thread ..;frame;..;frame count"): the share of the wall it was active (samples ÷ rate ÷ wall;
    py-spy samples a thread that runs or waits for the GIL or a CPU, not one blocked in I/O), its hottest frames
    by self time, and the aqnet function most of its time is under. Pure."""
    samples: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    ours: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        process, thread, frames = _split(stack)
        leaf = frames[-1] if frames else "(no Python frame)"
        samples[process][thread][leaf] += int(count)
        inner = [f for f in frames[:-1] if _OURS.search(f)]
        if inner:  # the innermost aqnet frame above the leaf: what of ours the time is under
            ours[process][thread][inner[-1]] += int(count)
    per_core = rate * wall_s if rate > 0 and wall_s > 0 else 0.0
    lines: list[str] = []
    by_process = sorted(samples.items(), key=lambda kv: -sum(sum(c.values()) for c in kv[1].values()))
    for process, threads in by_process:
        n = sum(sum(c.values()) for c in threads.values())
        lines.append(f"  {process}: threads active {n / per_core:.0%} of the wall (summed)" if per_core
                     else f"  {process}: {n} samples")
        for thread, leaves in sorted(threads.items(), key=lambda kv: -sum(kv[1].values())):
            t = sum(leaves.values())
            busy = sum(v for k, v in leaves.items() if not _IDLE.match(k))
            share = f"active {t / per_core:.0%} of the wall" if per_core else f"{t} samples"
            lines.append(f"    thread {thread}: {share}, waiting {1 - busy / t:.0%}")
            hot = [(k, v) for k, v in leaves.most_common() if not _IDLE.match(k)][:top]
            lines.extend(f"      self {v / t:6.1%}  {k}" for k, v in hot)
            mine = ours[process][thread].most_common(1)
            if mine:
                lines.append(f"      under {mine[0][1] / t:5.1%}  {mine[0][0]}  (innermost aqnet caller)")
    return lines
