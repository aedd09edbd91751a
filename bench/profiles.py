"""Where the time goes when `make bench` misses the Modbus or the scheduler goal: a separate run of that benchmark
under py-spy (this process and its children, every thread: `bench.spy`) and the CPU of every process of the tree
from /proc. The ingest benchmark profiles its own daemon (`bench.ingest`). I/O (services, a py-spy child).

- Modbus: `bench.modbus.run` for at most `PROFILE_MODBUS_S` of polling (servers, pollers and links all run in
  this process), with a short baseline.
- scheduler: one tick (`alerts.averaging.job.compute_windows`) on a database seeded as `bench.averages` seeds it;
  only the tick is recorded, so the time spent in postgres shows as its backend's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psycopg

from alerts.averaging.job import compute_windows
from aqnet.localstack import TimescaleCluster, free_port
from bench import averages, modbus
from bench.ingest_daemon import profiler_for
from bench.spy import Spy, TreeCpu, ptrace_hint
from bench.summary import Row

__all__ = ["PROFILE_MODBUS_S", "missed", "where"]

PROFILE_MODBUS_S = 20.0  #: a missed goal's profiling run of the Modbus benchmark is this long at most, in s


def where(title: str, fn: Callable[[], object]) -> list[str]:
    """Run `fn` under py-spy (this process and its children, every thread) and return where the time went:
    CPU of every process of the tree, then per process and thread its hottest frames."""
    hint = ptrace_hint()
    if hint:
        return [f"where the time goes: {title}: not profiled: {hint}"]
    with tempfile.TemporaryDirectory(prefix="aqnet-bench-spy-") as tmp:
        spy, tree = Spy(os.getpid(), Path(tmp) / "spy.raw"), TreeCpu(os.getpid())
        spy.start()
        tree.start()
        try:
            fn()
        finally:
            cpu = tree.stop()
            spy.stop()
        lines = [f"where the time goes: {title} (py-spy of a separate run; its figures are not reported)",
                 (f"  CPU of every process (py-spy's own included): {cpu.cores:.2f} CPU s per wall s over "
                 f"{cpu.wall_s:.1f} s")]
        lines += [f"    pid {pid:>7}  {s:7.1f} s  {name}" for pid, name, s in cpu.per_process if s >= 0.05]
        return lines + spy.lines()


def _tick(sensors: int) -> list[str]:
    """One scheduler tick for `sensors` sensors, only the tick under py-spy."""
    with tempfile.TemporaryDirectory(prefix="aqnet-bench-tick-") as tmp:
        cluster = TimescaleCluster(Path(tmp) / "pgdata", free_port(), persistent=False)
        try:
            cluster.start()
            url = averages._database(cluster, "bench_tick_profile")  # noqa: SLF001 - the benchmark's own setup
            with psycopg.connect(url, autocommit=True) as conn:
                averages.seed(conn, sensors)
                return where(f"scheduler tick, {sensors:,d} sensors", lambda: compute_windows(
                    conn, averages.TICK_END + timedelta(minutes=1), cadence_s=averages.CADENCE_S, tz=averages.TZ))
        finally:
            cluster.discard()


def missed(opts: argparse.Namespace, rows: dict[str, Row]) -> list[str]:
    """Where the time goes for the Modbus and scheduler rows whose goal was missed (or all, `--profile always`)."""
    out: list[str] = []
    m, a = rows.get("modbus"), rows.get("averages")
    if m is not None and profiler_for(opts.profile, m.met is False):
        duration = min(opts.duration, PROFILE_MODBUS_S)
        out += where(f"Modbus, {opts.stations} stations for {duration:g} s", lambda: asyncio.run(modbus.run(
            stations=opts.stations, interval_s=opts.interval, duration_s=duration, baseline_s=0.5,
            clients=opts.clients)))
    if a is not None and profiler_for(opts.profile, a.met is False):
        out += _tick(int(a.values["sensors"]))
    return out
