"""The end-to-end ingest benchmark's instruments (`bench.ingest`): process CPU and RSS from /proc, commit times
seen by polling the database, the daemon's /metrics, and a summary of a profile of the daemon. I/O.

Commit times: every `POLL_S` `CommitObserver` reads each sensor's newest stored pm25 time (an index lookup on
`measurements_sensor_variable_time_idx`). When each sensor's messages are stored in the order they were
published (one publisher per sensor, one MQTT connection, consumers committing in arrival order), a message is
committed by the first poll at which its sensor's newest time reaches its own reading time.
"""

from __future__ import annotations

import contextlib
import math
import os
import pstats
import re
import threading
import time
import urllib.request
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["POLL_S", "CommitObserver", "CpuMeter", "hottest", "peak_rss_kib", "scrape", "with_children"]

POLL_S = 0.05  #: commit-time resolution: how often the observer reads each sensor's newest stored time
#: a frame of aqnet's own code, in cProfile's paths or py-spy's "func (path:line)"
_OURS = re.compile(r"(^|[/(])(sensors|ingest|storage|aqnet|alerts)/")
#: where a thread waits for I/O: not CPU, left out of the profile's shares
_IDLE = re.compile(r"'(poll|select|epoll|acquire|wait)' of|\b(select|poll|epoll_wait|wait|sleep)\b \(")


def cpu_s(pid: int) -> float:
    """CPU time of `pid` and of its children it has reaped (utime + stime + cutime + cstime), in s; 0 once gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def peak_rss_kib(pid: int) -> int:
    """VmHWM (peak resident set size) of `pid`, in KiB (0 when it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def with_children(root: int) -> list[int]:
    """`root` and its direct children (the postmaster and its backends)."""
    out = [root]
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.name.isdigit() and int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == root:
                out.append(int(entry.name))
    return out


class CpuMeter:
    """CPU of named process groups (name → pids, asked at each sample) between `start()` and `stop()`, in s.

    A process that exits in between is still counted when the group includes its parent (a backend's time
    moves into the postmaster's reaped-children time), so a group's figure is its total now minus its total then.
    """

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self._groups = groups
        self._start: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        return {name: sum(cpu_s(pid) for pid in pids()) for name, pids in self._groups.items()}

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        return {name: total - self._start.get(name, 0.0) for name, total in self._sample().items()}


class CommitObserver(threading.Thread):
    """Polls each sensor's newest stored pm25 time until every sensor reached `last[sensor]` (and, given `total`
    = (first time, last time, rows), that many rows are stored between those times: a batch written late, e.g.
    replayed from the spool, may land after newer ones), or nothing new was stored for `stall_s`; `on_poll`
    runs after each poll."""

    _QUERY = ("SELECT s, (SELECT max(time) FROM measurements m WHERE m.sensor_id = s AND m.variable = 'pm25') "
              "FROM unnest(%s::text[]) AS s")

    def __init__(self, url: str, last: dict[str, datetime], on_poll: Callable[[], None] | None = None,
                 stall_s: float = 30.0, total: tuple[datetime, datetime, int] | None = None) -> None:
        super().__init__(name="bench-commit-observer", daemon=True)
        self.url, self.last, self.on_poll, self.stall_s, self.total = url, last, on_poll, stall_s, total
        self.seen: dict[str, tuple[list[float], list[datetime]]] = {s: ([], []) for s in last}
        self.done_at = math.nan  #: time of the poll that saw every message stored (NaN: it stalled)
        self.last_progress = math.nan  #: time of the last poll that saw something new

    def run(self) -> None:
        sensors = list(self.last)
        newest = dict.fromkeys(sensors, datetime.min.replace(tzinfo=UTC))
        self.last_progress = time.time()
        with psycopg.connect(self.url, autocommit=True) as conn:
            while True:
                t = time.time()
                for sensor, at in conn.execute(self._QUERY, (sensors,)).fetchall():
                    if at is not None and at > newest[sensor]:
                        newest[sensor], self.last_progress = at, t
                        self.seen[sensor][0].append(t)
                        self.seen[sensor][1].append(at)
                if all(newest[s] >= self.last[s] for s in sensors) and self._all_stored(conn, t):
                    self.done_at = t
                    return
                if t - self.last_progress > self.stall_s:
                    return
                if self.on_poll is not None:
                    self.on_poll()
                time.sleep(max(0.0, POLL_S - (time.time() - t)))

    def _all_stored(self, conn: psycopg.Connection, t: float) -> bool:
        if self.total is None:
            return True
        lo, hi, n = self.total
        row = conn.execute("SELECT count(*) FROM measurements WHERE time BETWEEN %s AND %s", (lo, hi)).fetchone()
        stored = int(row[0]) if row else 0
        if stored > self._stored:
            self._stored, self.last_progress = stored, t
        return stored >= n

    _stored = 0

    def committed_at(self, sensor: str, at: datetime) -> float:
        """When the message of `sensor` with reading time `at` was first seen stored (NaN: never)."""
        times, newest = self.seen[sensor]
        k = bisect_left(newest, at)
        return times[k] if k < len(times) else math.nan


def scrape(port: int) -> dict[str, float]:
    """The daemon's /metrics on 127.0.0.1:`port` as `name{label="value",...}` → value, summed over the `process`
    label of a daemon with several processes (the whole daemon's figure)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + "".join(f'{{{k}="{v}"}}' for k, v in sorted(s.labels.items()) if k != "process")
            out[key] = out.get(key, 0.0) + s.value
    return out


def hottest(profiler: str, out: Path, n: int = 10) -> list[str]:
    """Summary of a profile (`cprofile` stats file or py-spy `raw` output): the `n` functions with the most self
    time, then aqnet's own functions with the most inclusive time, as shares of the busy (non-waiting) time."""
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    if profiler == "cprofile":
        for (path, line, func), (_, _, tt, ct, _) in pstats.Stats(str(out)).stats.items():  # type: ignore[attr-defined]
            where = f"{func} ({'/'.join(Path(path).parts[-2:])}:{line})"
            self_t[where] += tt
            if _OURS.search(path):
                incl[where] = max(incl[where], ct)
    else:  # py-spy raw: "frame;frame;...;leaf count", each frame "func (path:line)"
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            self_t[frames[-1]] += int(count)
            for frame in set(frames):
                if _OURS.search(frame):
                    incl[frame] += int(count)
    idle = sum(v for k, v in self_t.items() if _IDLE.search(k))
    busy = (sum(self_t.values()) - idle) or 1
    lines = [f"  waiting for I/O: {idle / (busy + idle):.0%} of the samples; shares below are of the rest"]
    lines += [f"  self {v / busy:6.1%}  {k}" for k, v in self_t.most_common() if not _IDLE.search(k)][:n]
    # the entry chain (cli, run_daemon, ...) holds everything: show what lies below it
    lines += [f"  incl {v / busy:6.1%}  {k}" for k, v in incl.most_common() if v < 0.9 * busy][:n]
    return lines
