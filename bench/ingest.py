"""`python -m bench ingest-e2e`: microsensors → Mosquitto → aqnet → TimescaleDB, against baselines of the same run.

One run starts its own TimescaleDB and Mosquitto (`aqnet.localstack`, free ports, a temporary directory) and
measures, with the same database settings and a freshly migrated database each:

- aqnet: `python -m aqnet run` (`bench.ingest_daemon.bench_config`: bundled network, stations pointed at a port
  where nothing listens, the averages job held off; `mqtt.*` and `ingest.*` at their defaults, printed).
  `publishers` processes (`bench.ingest_peers`) publish `readings / 4` aqnet JSON messages (pm25, pm10,
  temperature, relativehumidity) with QoS 1 as fast as they can; every message has its own reading time, so every
  reading is a distinct row. Sustained readings/s = rows committed / (first publish → last commit).
- aqnet at the 10,000-sensor rate: a paced phase offers exactly `rate` readings/s (default 8,000 = 10,000
  sensors × 8 values every 10 s: 1,000 eight-value messages/s across the publisher processes) for `latency_s`
  and measures publish → commit latency per message; the rate the publishers achieved is printed beside it.
- where the time goes: CPU of the daemon and every process below it (intake workers) per process, of postgres,
  mosquitto and the publishers, from /proc; the daemon's CPU seconds per wall second (> 1.0: more than one core
  in use); the writer's busy share and batches from its /metrics. Commit times come from polling the database
  (`bench.ingest_probes` says how).
- ceiling: `psql \\copy` of the rows aqnet stored (exported as CSV) into an empty `measurements` hypertable.
- copy subscriber: a minimal hand-written paho subscriber (QoS 1, acks after commit, aqnet's default Receive
  Maximum, batch size and age) that binary-COPYs each batch straight into the hypertable.
- naive peer: the same subscriber doing one autocommitted INSERT per reading (`naive_readings` of them).

Goals (issue 19): ≥ 50 % of the ceiling and at least the hand-written subscriber's rate (the naive ratio is
printed only); p99 publish → commit < 1 s at the 10,000-sensor rate; more than one core busy. Where aqnet misses
one, or with `--profile always` or `AQNET_BENCH_PROFILE=1`, one more aqnet run goes under py-spy (every process
and thread, `bench.spy`; cProfile of the main thread when py-spy is missing) and where its time goes is printed
per process and thread; that run's figures are not reported. No figure here is asserted by a test.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from aqnet.localstack import MosquittoBroker, TimescaleCluster, free_port
from bench.ingest_daemon import DEFAULT_PROCESSES, Daemon, bench_config, profiler_for
from bench.ingest_peers import SENSORS, VALUES, WIDE, Publishers, reading_time, sensor_of, subscriber
from bench.ingest_probes import CommitObserver, CpuMeter, scrape, with_children
from bench.spy import TreeCpu, descendants, tree_rss_kib
from storage.migrate import migrate

__all__ = ["IngestBench", "Phase", "add_options", "main", "report", "run"]

#: issue 19's goals on 2 cores (reported, not a gate): share of the psql \copy ceiling, of the hand-written COPY
#: subscriber's rate, p99 publish → commit at the 10,000-sensor rate, daemon CPU seconds per wall second
GOAL_OF_CEILING, GOAL_OF_COPY, GOAL_P99_S, GOAL_CORES = 0.5, 1.0, 1.0, 1.0
#: the 10,000-sensor rate: 10,000 sensors × 8 values every 10 s (issue 19), readings/s
SENSOR_RATE = 10_000 * 8 / 10
PROFILE_MESSAGES = 25_000  #: messages of the profiled run (its figures are not reported): ~3 s flat out, so each
#: busy thread gets some hundreds of samples (`bench.ingest_daemon.PROFILE_RATE`)


@dataclass(frozen=True, slots=True)
class Phase:
    """One consumer's measurement: rows committed over the wall time from first publish to last commit."""

    name: str
    rows: int  #: rows stored at the end
    expected: int  #: rows the messages carried
    wall_s: float
    latencies_s: tuple[float, ...] = ()  #: publish → commit, per message
    cpu_s: dict[str, float] = field(default_factory=dict)  #: CPU of each process group over the phase, s
    rss_kib: int = 0  #: the consumer's peak resident set size
    offered_per_s: float = math.nan  #: paced phases: readings/s the publishers were asked to offer
    achieved_per_s: float = math.nan  #: readings/s the publishers did offer (first → last publish)
    processes: tuple[tuple[int, str, float], ...] = ()  #: the consumer's process tree: (pid, name, CPU s)

    @property
    def per_s(self) -> float:
        """Rows committed per wall-clock second."""
        return self.rows / self.wall_s if self.wall_s > 0 else math.nan

    def latency_s(self, q: float) -> float:
        """Nearest-rank `q` quantile of publish → commit, in s (NaN when none)."""
        ordered = sorted(x for x in self.latencies_s if not math.isnan(x))
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else math.nan


@dataclass(frozen=True, slots=True)
class IngestBench:
    """Every phase of one run, the daemon's settings in force, its metrics and (when taken) its profile."""

    aqnet: Phase
    paced: Phase
    ceiling: Phase
    copy: Phase
    naive: Phase
    settings: dict[str, Any]
    metrics: dict[str, float]
    profile: tuple[str, ...] = ()

    @property
    def of_ceiling(self) -> float:
        """aqnet's sustained rate ÷ the psql \\copy ceiling."""
        return self.aqnet.per_s / self.ceiling.per_s

    @property
    def of_copy(self) -> float:
        """aqnet's sustained rate ÷ the hand-written COPY subscriber's."""
        return self.aqnet.per_s / self.copy.per_s

    @property
    def over_naive(self) -> float:
        """aqnet's sustained rate ÷ the naive peer's."""
        return self.aqnet.per_s / self.naive.per_s

    @property
    def cores(self) -> float:
        """The daemon's CPU seconds (every process of its tree) per wall second while ingesting flat out."""
        return self.aqnet.cpu_s.get("consumer", math.nan) / self.aqnet.wall_s

    @property
    def writer_busy(self) -> float:
        """Share of the flat-out phase's wall time the daemon spent writing batches (from its /metrics)."""
        return self.metrics.get("aqnet_storage_batch_write_seconds_sum", math.nan) / self.aqnet.wall_s

    @property
    def rate_met(self) -> bool:
        """The sustained-rate goal: ≥ 50 % of the ceiling and ≥ the hand-written subscriber's rate, every
        reading stored."""
        return self.of_ceiling >= GOAL_OF_CEILING and self.of_copy >= GOAL_OF_COPY and \
            self.aqnet.rows == self.aqnet.expected

    @property
    def latency_met(self) -> bool:
        """The latency goal: p99 publish → commit < 1 s while offered the 10,000-sensor rate, every reading
        stored."""
        return self.paced.latency_s(0.99) < GOAL_P99_S and self.paced.rows == self.paced.expected

    @property
    def cores_met(self) -> bool:
        """The both-cores goal: the daemon used more than one core on average."""
        return self.cores > GOAL_CORES

    @property
    def short(self) -> bool:
        """True when aqnet misses a goal."""
        return not (self.rate_met and self.latency_met and self.cores_met)


# -------------------------------------------------------------------------------------------- phases


@dataclass
class _Stack:
    """The run's services and what every phase needs to know about them."""

    cluster: TimescaleCluster
    broker: MosquittoBroker
    publishers: int
    t0: datetime

    def database(self, name: str) -> str:
        """A fresh, migrated database `name` in the cluster; its URL."""
        with psycopg.connect(self.cluster.url_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = self.cluster.url_for(name)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            migrate(conn)
        return url

    def groups(self, consumer: Callable[[], list[int]]) -> dict[str, Callable[[], list[int]]]:
        """CPU meter groups: the consumer (its whole process tree), postgres (postmaster and backends), mosquitto."""
        assert self.cluster.pid is not None
        assert self.broker.pid is not None
        pg, mq = self.cluster.pid, self.broker.pid
        return {"consumer": consumer, "postgres": lambda: with_children(pg), "mosquitto": lambda: [mq]}

    def phase(self, name: str, url: str, prefix: str, indices: range, consumer_pid: int | None, *,
              rate: float | None = None, on_poll: Callable[[], None] | None = None,
              names: tuple[str, ...] = VALUES, around: tuple[Callable[[], object], Callable[[], object]] | None = None
              ) -> Phase:
        """Publish `indices` (at `rate` messages/s, or flat out), each message with the values of `names`, and
        wait until the consumer stored them all; `around`: called just before the first publish and just after
        the last commit (a profiler's start and stop)."""
        last: dict[str, datetime] = {}
        for i in indices[-len(SENSORS):]:
            last[sensor_of(i)] = reading_time(self.t0, i)
        pubs = Publishers(self.publishers, self.broker.port, prefix, self.t0, indices, rate, names)
        tree = TreeCpu(consumer_pid) if consumer_pid else None
        rss = [0]

        def poll() -> None:
            if consumer_pid:
                rss[0] = max(rss[0], tree_rss_kib(consumer_pid))
            if on_poll is not None:
                on_poll()

        try:
            meter = CpuMeter(self.groups(lambda: descendants(consumer_pid) if consumer_pid else []))
            meter.start()
            if tree is not None:
                tree.start()
            observer = CommitObserver(url, last, poll, total=(reading_time(self.t0, indices[0]),
                                                              reading_time(self.t0, indices[-1]),
                                                              len(indices) * len(names)))
            observer.start()
            if around is not None:
                around[0]()
            pubs.go()
            observer.join()
            if around is not None:
                around[1]()
            cpu = meter.stop()
            processes = tree.stop().per_process if tree is not None else ()
            published, cpu["publishers"] = pubs.join()
        finally:
            pubs.close()
        first = min(published.values())
        end = observer.done_at if not math.isnan(observer.done_at) else observer.last_progress
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT count(*) FROM measurements WHERE time BETWEEN %s AND %s",
                                (reading_time(self.t0, indices[0]), reading_time(self.t0, indices[-1]))).fetchone()
        latencies = tuple(observer.committed_at(sensor_of(i), reading_time(self.t0, i)) - published[i]
                          for i in indices)
        span = max(published.values()) - first
        return Phase(name, int(rows[0]) if rows else 0, len(indices) * len(names), end - first, latencies, cpu,
                     rss[0], rate * len(names) if rate else math.nan,
                     (len(indices) - 1) * len(names) / span if span > 0 else math.nan, processes)


def _ceiling(stack: _Stack, source: str, tmp: Path) -> Phase:
    """`psql \\copy` of the rows stored at `source` into a fresh hypertable."""
    url, csv, psql = stack.database("bench_ceiling"), tmp / "rows.csv", shutil.which("psql") or "psql"
    env = {**os.environ, "PGCLIENTENCODING": "UTF8"}
    subprocess.run([psql, source, "-qX", "-v", "ON_ERROR_STOP=1", "-c",
                    f"\\copy (SELECT * FROM measurements) TO '{csv}' CSV"], check=True, env=env)
    with psycopg.connect(source) as conn:
        expected = int(conn.execute("SELECT count(*) FROM measurements").fetchone()[0])  # type: ignore[index]
    meter = CpuMeter(stack.groups(list))
    meter.start()
    started = time.perf_counter()
    subprocess.run([psql, url, "-qX", "-v", "ON_ERROR_STOP=1", "-c", f"\\copy measurements FROM '{csv}' CSV"],
                   check=True, env=env)
    wall = time.perf_counter() - started
    with psycopg.connect(url) as conn:
        rows = int(conn.execute("SELECT count(*) FROM measurements").fetchone()[0])  # type: ignore[index]
    return Phase("ceiling", rows, expected, wall, cpu_s=meter.stop())


def _peer_phase(stack: _Stack, mode: str, readings: int, settings: dict[str, Any]) -> Phase:
    """The hand-written subscriber (`mode` copy or insert) under the same publishers."""
    url, prefix = stack.database(f"bench_{mode}"), f"bench{mode}"
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=subscriber, args=(mode, stack.broker.port, prefix, url, settings["ingest.batch_max"],
                                                settings["mqtt.receive_maximum"], settings["ingest.batch_max_age_s"],
                                                ready, stop), daemon=True)
    proc.start()
    try:
        if not ready.wait(30):
            raise RuntimeError(f"bench: the {mode} subscriber did not subscribe within 30 s")
        phase = stack.phase(f"{mode} subscriber", url, prefix, range(math.ceil(readings / len(VALUES))), proc.pid)
    finally:
        stop.set()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join()
    return phase


def run(*, readings: int = 100_000, publishers: int = 3, naive_readings: int = 5_000, latency_s: float = 15.0,
        rate: float = SENSOR_RATE, profile: str = "auto", processes: int = DEFAULT_PROCESSES) -> IngestBench:
    """Start the stack, measure aqnet (flat out, then at `rate` readings/s) and the three baselines; profile
    aqnet if asked or short of a goal."""
    if min(readings, naive_readings) < len(VALUES) * len(SENSORS) or publishers < 1 or not rate > 0 or \
            not latency_s > 0:
        raise ValueError(f"expected readings and naive readings >= {len(VALUES) * len(SENSORS)}, publishers >= 1 "
                         f"and rate, latency_s > 0, got {readings}, {naive_readings}, {publishers}, {rate}, "
                         f"{latency_s}")
    messages = math.ceil(readings / len(VALUES))
    with tempfile.TemporaryDirectory(prefix="aqnet-bench-") as tmp_name:
        tmp = Path(tmp_name)
        cluster = TimescaleCluster(tmp / "pgdata", free_port(), persistent=False)
        paced_messages = max(len(SENSORS), round(rate / len(WIDE) * latency_s))
        broker = MosquittoBroker(tmp / "broker", free_port(), persistent=False,
                                 max_queued=max(200_000, 2 * messages, 2 * paced_messages))
        try:
            cluster.start()
            broker.start()
            t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
            stack = _Stack(cluster, broker, publishers, t0)
            url = stack.database("bench_aqnet")
            daemon = Daemon(tmp, bench_config(tmp, url, broker, processes))
            s = daemon.settings
            settings = {"mqtt.receive_maximum": s.mqtt.receive_maximum, "ingest.batch_max": s.ingest.batch_max,
                        "ingest.batch_max_age_s": s.ingest.batch_max_age_s, "ingest.queue_max": s.ingest.queue_max,
                        "database.pool_max_size": s.database.pool_max_size, "publishers": publishers,
                        "ingest.processes": s.ingest.processes,
                        "messages": messages, "rate": rate}
            queue = [0.0]
            sampled = [0.0]

            def sample_queue() -> None:
                if time.monotonic() - sampled[0] >= 0.25:
                    sampled[0] = time.monotonic()
                    queue[0] = max(queue[0], daemon.metric("aqnet_ingest_queue_length"))

            try:
                aqnet = stack.phase("aqnet", url, "aqnet", range(messages), daemon.proc.pid, on_poll=sample_queue)
                metrics = {**scrape(daemon.http_port), "queue_length_max": queue[0]}
                paced = stack.phase("aqnet paced", url, "aqnet", range(messages, messages + paced_messages),
                                    daemon.proc.pid, rate=rate / len(WIDE), names=WIDE)
            finally:
                daemon.stop()
            ceiling = _ceiling(stack, url, tmp)
            copy = _peer_phase(stack, "copy", readings, settings)
            naive = _peer_phase(stack, "insert", naive_readings, settings)
            result = IngestBench(aqnet, paced, ceiling, copy, naive, settings, metrics)
            profiler = profiler_for(profile, result.short)
            if profiler:
                purl, ptmp = stack.database("bench_profile"), tmp / "profile"
                ptmp.mkdir()
                daemon = Daemon(ptmp, bench_config(ptmp, purl, broker, processes), profiler)
                lines: list[str] = []
                try:
                    stack.phase("profile", purl, "aqnet", range(min(messages, PROFILE_MESSAGES)), daemon.proc.pid,
                                around=(daemon.profile_start, lambda: lines.extend(daemon.profile_stop())))
                finally:
                    daemon.stop()
                result = IngestBench(*[getattr(result, f) for f in ("aqnet", "paced", "ceiling", "copy", "naive",
                                                                    "settings", "metrics")],
                                     profile=(profiler, *lines))
        finally:
            broker.discard()
            cluster.discard()
    return result


# ------------------------------------------------------------------------------------------ report


def report(r: IngestBench) -> list[str]:
    """The aligned lines `main` prints, each figure with its unit."""
    s, m, a, p = r.settings, r.metrics, r.aqnet, r.paced

    def lost(ph: Phase) -> str:
        return f", {ph.expected - ph.rows:,d} MISSING" if ph.rows != ph.expected else ""

    def rate(ph: Phase, extra: str = "") -> str:
        return f"{ph.per_s:12,.0f} readings/s  ({ph.rows:,d} rows in {ph.wall_s:.2f} s{lost(ph)}{extra})"

    def usage(ph: Phase) -> str:
        return (f", CPU {ph.cpu_s.get('consumer', 0) / ph.wall_s:.0%} of a core, peak RSS "
                f"{ph.rss_kib / 1024:.0f} MiB")

    batches = m.get("aqnet_storage_batch_write_seconds_count", 0.0)
    written = m.get("aqnet_storage_batch_write_seconds_sum", 0.0)
    rows_written = m.get('aqnet_storage_rows_total{result="inserted"}', float(a.rows))
    per_batch, ms_each = (rows_written / batches, written / batches * 1e3) if batches else (math.nan, math.nan)
    cpu = ", ".join(f"{'daemon' if k == 'consumer' else k} {v:.1f} s" for k, v in a.cpu_s.items())
    lines = [
        (f"aqnet settings             mqtt.receive_maximum {s['mqtt.receive_maximum']}, ingest.batch_max "
        f"{s['ingest.batch_max']} messages, batch_max_age_s {s['ingest.batch_max_age_s']:g}, queue_max "
        f"{s['ingest.queue_max']:,d}, pool_max_size {s['database.pool_max_size']} (defaults); ingest.processes "
        f"{s.get('ingest.processes', 1)}"),
        (f"workload                   {a.expected:,d} readings: {s['messages']:,d} aqnet JSON messages × {len(VALUES)} "
        f"from {len(SENSORS)} microsensors, {s['publishers']} publisher processes, QoS 1"),
        f"ceiling (psql \\copy)       {rate(r.ceiling)}",
        f"copy subscriber            {rate(r.copy, usage(r.copy))}",
        f"naive peer (INSERT each)   {rate(r.naive, usage(r.naive))}",
        f"aqnet                      {rate(a, usage(a))}",
        (f"aqnet publish→commit       p50 {p.latency_s(0.5) * 1e3:,.0f} ms, p99 {p.latency_s(0.99) * 1e3:,.0f} ms  "
        f"(asked {p.offered_per_s:,.0f} readings/s, publishers offered {p.achieved_per_s:,.0f} readings/s in "
        f"{len(WIDE)}-value messages; {p.expected:,d} readings{lost(p)}, {p.per_s:,.0f} stored/s, peak RSS "
        f"{p.rss_kib / 1024:.0f} MiB)"),
        (f"ratios                     aqnet/ceiling {r.of_ceiling:.1%} (goal ≥ {GOAL_OF_CEILING:.0%}), aqnet/copy "
        f"subscriber {r.of_copy:.1%} (goal ≥ {GOAL_OF_COPY:.0%}), aqnet/naive {r.over_naive:.1f}x"),
        (f"CPU during aqnet           {cpu} (wall {a.wall_s:.1f} s × {os.cpu_count()} cores); daemon "
        f"{r.cores:.2f} CPU s per wall s (goal > {GOAL_CORES:g})"),
        *[f"  daemon process {pid:>7}  {cpu_s:7.1f} s  {name}" for pid, name, cpu_s in a.processes],
        (f"aqnet writer               {batches:,.0f} batches of {per_batch:,.0f} rows, {ms_each:.1f} ms each "
        f"({rows_written / written if written else math.nan:,.0f} rows/s while writing); writing "
        f"{written / a.wall_s:.0%} of the wall; ingest queue ≤ {m.get('queue_length_max', math.nan):,.0f} of "
        f"{s['ingest.queue_max']:,d}"),
    ]
    if r.profile:
        scope = "main thread only: install py-spy for every thread" if r.profile[0] == "cprofile" else "all threads"
        lines.append(f"where aqnet's time goes    ({r.profile[0]} of a separate run, {scope})")
        lines.extend(r.profile[1:])
    return lines


def add_options(cli: argparse._ActionsContainer) -> None:
    """Add the end-to-end ingest benchmark's options to `cli` (a parser or an argument group)."""
    cli.add_argument("--readings", type=int, default=100_000, help="readings aqnet and the copy subscriber "
                     "ingest (4 per message; default: %(default)s)")
    cli.add_argument("--publishers", type=int, default=3, help="publisher processes (default: %(default)s)")
    cli.add_argument("--naive-readings", type=int, default=5_000,
                     help="readings the naive INSERT-per-reading peer ingests (default: %(default)s)")
    cli.add_argument("--latency-s", type=float, default=15.0,
                     help="length of the fixed-rate phase that measures latency, in s (default: %(default)s)")
    cli.add_argument("--rate", type=float, default=SENSOR_RATE,
                     help="readings/s offered by the fixed-rate phase (ingest-e2e) and the synthetic load (soak), in "
                          "8-value messages (default: the 10,000-sensor rate, %(default)g)")
    cli.add_argument("--processes", type=int, default=DEFAULT_PROCESSES,
                     help="aqnet's ingest.processes (default: one per core, %(default)s)")
    cli.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                     help="profile the daemon in an extra run: auto = when a goal is missed (env "
                          "AQNET_BENCH_PROFILE=1/0 overrides; default: %(default)s)")


def main(argv: Sequence[str] | None = None, *, options: argparse.Namespace | None = None) -> IngestBench:
    """Run the benchmark from command-line options, print its lines, and return the result."""
    if options is None:
        cli = argparse.ArgumentParser(prog="python -m bench ingest-e2e", description=__doc__.splitlines()[0])
        add_options(cli)
        options = cli.parse_args(argv)
    try:
        result = run(readings=options.readings, publishers=options.publishers, naive_readings=options.naive_readings,
                     latency_s=options.latency_s, rate=options.rate, profile=options.profile,
                     processes=options.processes)
    except ValueError as exc:
        raise SystemExit(f"python -m bench ingest-e2e: {exc}") from None
    for line in report(result):
        print(line)
    return result
