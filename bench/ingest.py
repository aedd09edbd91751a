"""`python -m bench ingest-e2e`: microsensors → Mosquitto → aqnet → TimescaleDB, against baselines of the same run.

One run starts its own TimescaleDB and Mosquitto (`aqnet.localstack`, free ports, a temporary directory) and
measures, with the same database settings and a freshly migrated database each:

- aqnet: `python -m aqnet run` (bundled network; stations pointed at a port where nothing listens; the averages
  job held off; `mqtt.*` and `ingest.*` at their defaults, printed). `publishers` processes
  (`bench.ingest_peers`) publish `readings / 4` aqnet JSON messages (pm25, pm10, temperature, relativehumidity)
  with QoS 1 as fast as they can; every message has its own reading time, so every reading is a distinct row.
  Sustained readings/s = rows committed / (first publish → last commit). A paced phase then offers `pace` × that
  rate for `latency_s` and measures publish → commit latency (under saturation latency measures only the
  backlog). CPU and peak RSS come from /proc, commit times from polling the database (`bench.ingest_probes`
  says how), and the daemon's /metrics say where its time went.
- ceiling: `psql \\copy` of the rows aqnet stored (exported as CSV) into an empty `measurements` hypertable.
- copy subscriber: a minimal hand-written paho subscriber (QoS 1, acks after commit, aqnet's default Receive
  Maximum, batch size and age) that binary-COPYs each batch straight into the hypertable.
- naive peer: the same subscriber doing one autocommitted INSERT per reading (`naive_readings` of them).

Where aqnet misses a goal (≥ 50 % of the ceiling, ≥ 20× the naive peer), or with `--profile always` or
`AQNET_BENCH_PROFILE=1`, one more aqnet run goes under py-spy (when installed; cProfile otherwise) and its
hottest functions are printed; that run's figures are not reported. No figure here is asserted by a test.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import sql

from aqnet.config import settings_from_dict
from aqnet.localstack import MosquittoBroker, TimescaleCluster, free_port
from bench.ingest_peers import SENSORS, VALUES, Publishers, reading_time, sensor_of, subscriber
from bench.ingest_probes import CommitObserver, CpuMeter, hottest, peak_rss_kib, py_spy, scrape, with_children
from sensors.network import bundled_network
from storage.migrate import migrate

__all__ = ["IngestBench", "Phase", "add_options", "main", "report", "run"]

STATIONS = tuple(s.id for s in bundled_network({}) if s.kind == "station")
GOAL_OF_CEILING, GOAL_OVER_NAIVE = 0.5, 20.0  #: issue 6's goals on 2 cores (reported, not a gate)
PROFILE_MESSAGES = 5_000  #: messages of the profiled run (its figures are not reported)


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
    offered_per_s: float = math.nan  #: paced phases: readings/s the publishers offered

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
    def over_naive(self) -> float:
        """aqnet's sustained rate ÷ the naive peer's."""
        return self.aqnet.per_s / self.naive.per_s

    @property
    def short(self) -> bool:
        """True when aqnet misses a goal."""
        return not (self.of_ceiling >= GOAL_OF_CEILING and self.over_naive >= GOAL_OVER_NAIVE)


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
        """CPU meter groups: the consumer, postgres (postmaster and backends) and mosquitto."""
        assert self.cluster.pid is not None
        assert self.broker.pid is not None
        pg, mq = self.cluster.pid, self.broker.pid
        return {"consumer": consumer, "postgres": lambda: with_children(pg), "mosquitto": lambda: [mq]}

    def phase(self, name: str, url: str, prefix: str, indices: range, consumer_pid: int | None, *,
              rate: float | None = None, on_poll: Callable[[], None] | None = None) -> Phase:
        """Publish `indices` (at `rate` messages/s, or flat out) and wait until the consumer stored them all."""
        last: dict[str, datetime] = {}
        for i in indices[-len(SENSORS):]:
            last[sensor_of(i)] = reading_time(self.t0, i)
        pubs = Publishers(self.publishers, self.broker.port, prefix, self.t0, indices, rate)
        try:
            meter = CpuMeter(self.groups(lambda: [consumer_pid] if consumer_pid else []))
            meter.start()
            observer = CommitObserver(url, last, on_poll)
            observer.start()
            pubs.go()
            observer.join()
            cpu = meter.stop()
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
        return Phase(name, int(rows[0]) if rows else 0, len(indices) * len(VALUES), end - first, latencies, cpu,
                     peak_rss_kib(consumer_pid) if consumer_pid else 0,
                     rate * len(VALUES) if rate else math.nan)


#: `python -c` wrapper of the daemon for cProfile: SIGUSR1 starts profiling its main thread, SIGUSR2 stops and
#: writes the stats, so start-up and shutdown stay out of the profile (aqnet itself has no profiling code)
_CPROFILED = """
import cProfile, signal, sys
profile, out = cProfile.Profile(), sys.argv.pop(1)
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
signal.signal(signal.SIGUSR2, lambda *_: (profile.disable(), profile.dump_stats(out)))
from aqnet.cli import main
main()
"""


class _Daemon:
    """`python -m aqnet run` on the bench's stack; `profiler` ("py-spy" or "cprofile") records between
    `profile_start()` and `profile_stop()`."""

    def __init__(self, tmp: Path, url: str, broker: MosquittoBroker, profiler: str | None = None) -> None:
        self.http_port, self.profiler = free_port(), profiler
        dead = free_port()  # nothing listens there: every station poll fails fast, as with a cut link
        config = {"database": {"url": url}, "mqtt": {"url": broker.url, "client_id": "aqnet-bench"},
                  "network": {"stations": {c: {"host": "127.0.0.1", "port": dead} for c in STATIONS},
                              # every microsensor an aqnet JSON board (the bundled mix has airrohr and PurpleAir)
                              "microsensors": {sid: {} for sid in SENSORS}},
                  "http": {"internal": {"port": self.http_port}, "intake": {"port": free_port()},
                           "api": {"port": free_port()}},
                  "scheduler": {"averages_every_s": 86_400},
                  "storage": {"spool_dir": str(tmp / "spool")}}
        self.settings = settings_from_dict(config, "bench")
        (tmp / "aqnet.yaml").write_text(yaml.safe_dump(config))
        self.out = tmp / f"profile-{profiler}.out"
        python = [sys.executable, "-c", _CPROFILED, str(self.out)] if profiler == "cprofile" else [
            sys.executable, "-m", "aqnet"]
        argv = [*python, "--log-level", "WARNING", "run", "--config", str(tmp / "aqnet.yaml")]
        self.log = tmp / "aqnet.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.spy: subprocess.Popen[bytes] | None = None
        deadline = time.monotonic() + 60
        while self.metric("aqnet_mqtt_connected") != 1:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"bench: aqnet did not connect to the broker; log {self.log}:\n"
                                   + "\n".join(self.log.read_text(errors="replace").splitlines()[-20:]))
            time.sleep(0.1)

    def metric(self, name: str) -> float:
        """One unlabelled sample of the daemon's /metrics (NaN when absent or unreachable)."""
        try:
            return scrape(self.http_port).get(name, math.nan)
        except OSError:
            return math.nan

    def profile_start(self) -> None:
        if self.profiler == "cprofile":
            self.proc.send_signal(signal.SIGUSR1)
        elif self.profiler == "py-spy":
            self.spy = subprocess.Popen([py_spy() or "py-spy", "record", "--pid", str(self.proc.pid), "--format",
                                         "raw", "--rate", "200", "--nonblocking", "-o", str(self.out)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def profile_stop(self) -> None:
        """Stop recording and wait (up to 30 s) for the profile to be written."""
        if self.profiler == "cprofile":
            self.proc.send_signal(signal.SIGUSR2)
        elif self.spy is not None:
            self.spy.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.spy.wait(30)
        deadline = time.monotonic() + 30
        while not self.out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)  # let the writer finish the file

    def stop(self) -> None:
        """SIGTERM (the daemon flushes) and wait; kill after 30 s."""
        for proc in (self.spy, self.proc):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


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


def run(*, readings: int = 100_000, publishers: int = 3, naive_readings: int = 5_000, latency_s: float = 10.0,
        pace: float = 0.5, profile: str = "auto") -> IngestBench:
    """Start the stack, measure aqnet (flat out, then paced) and the three baselines; profile aqnet if asked."""
    if min(readings, naive_readings) < len(VALUES) * len(SENSORS) or publishers < 1 or not 0 < pace <= 1:
        raise ValueError(f"expected readings and naive readings >= {len(VALUES) * len(SENSORS)}, publishers >= 1 "
                         f"and 0 < pace <= 1, got {readings}, {naive_readings}, {publishers}, {pace}")
    messages = math.ceil(readings / len(VALUES))
    with tempfile.TemporaryDirectory(prefix="aqnet-bench-") as tmp_name:
        tmp = Path(tmp_name)
        cluster = TimescaleCluster(tmp / "pgdata", free_port(), persistent=False)
        broker = MosquittoBroker(tmp / "broker", free_port(), persistent=False, max_queued=max(200_000, 2 * messages))
        try:
            cluster.start()
            broker.start()
            t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
            stack = _Stack(cluster, broker, publishers, t0)
            url = stack.database("bench_aqnet")
            daemon = _Daemon(tmp, url, broker)
            s = daemon.settings
            settings = {"mqtt.receive_maximum": s.mqtt.receive_maximum, "ingest.batch_max": s.ingest.batch_max,
                        "ingest.batch_max_age_s": s.ingest.batch_max_age_s, "ingest.queue_max": s.ingest.queue_max,
                        "database.pool_max_size": s.database.pool_max_size, "publishers": publishers,
                        "messages": messages}
            queue = [0.0]
            sampled = [0.0]

            def sample_queue() -> None:
                if time.monotonic() - sampled[0] >= 0.25:
                    sampled[0] = time.monotonic()
                    queue[0] = max(queue[0], daemon.metric("aqnet_ingest_queue_length"))

            try:
                aqnet = stack.phase("aqnet", url, "aqnet", range(messages), daemon.proc.pid, on_poll=sample_queue)
                metrics = {**scrape(daemon.http_port), "queue_length_max": queue[0]}
                rate = pace * aqnet.per_s / len(VALUES)
                paced = stack.phase("aqnet paced", url, "aqnet", range(messages, messages + max(
                    len(SENSORS), round(rate * latency_s))), daemon.proc.pid, rate=rate)
            finally:
                daemon.stop()
            ceiling = _ceiling(stack, url, tmp)
            copy = _peer_phase(stack, "copy", readings, settings)
            naive = _peer_phase(stack, "insert", naive_readings, settings)
            result = IngestBench(aqnet, paced, ceiling, copy, naive, settings, metrics)
            profiler = _profiler(profile, result.short)
            if profiler:
                purl, ptmp = stack.database("bench_profile"), tmp / "profile"
                ptmp.mkdir()
                daemon = _Daemon(ptmp, purl, broker, profiler)
                try:
                    daemon.profile_start()
                    stack.phase("profile", purl, "aqnet", range(min(messages, PROFILE_MESSAGES)), daemon.proc.pid)
                    daemon.profile_stop()
                finally:
                    daemon.stop()
                result = IngestBench(*[getattr(result, f) for f in ("aqnet", "paced", "ceiling", "copy", "naive",
                                                                    "settings", "metrics")],
                                     profile=(profiler, *hottest(profiler, daemon.out)))
        finally:
            broker.discard()
            cluster.discard()
    return result


def _profiler(choice: str, short: bool) -> str | None:
    """py-spy or cprofile when a profile is due (`always`, or `auto` and aqnet missed a goal), else None."""
    env = os.environ.get("AQNET_BENCH_PROFILE", "").lower()
    choice = {"1": "always", "true": "always", "0": "never", "false": "never"}.get(env, env or choice)
    if choice == "never" or (choice == "auto" and not short):
        return None
    return "py-spy" if py_spy() else "cprofile"


# ------------------------------------------------------------------------------------------ report


def report(r: IngestBench) -> list[str]:
    """The aligned lines `main` prints, each figure with its unit."""
    s, m, a, p = r.settings, r.metrics, r.aqnet, r.paced

    def rate(ph: Phase, extra: str = "") -> str:
        lost = f", {ph.expected - ph.rows:,d} MISSING" if ph.rows != ph.expected else ""
        return f"{ph.per_s:12,.0f} readings/s  ({ph.rows:,d} rows in {ph.wall_s:.2f} s{lost}{extra})"

    def usage(ph: Phase) -> str:
        return f", CPU {ph.cpu_s.get('consumer', 0) / ph.wall_s:.0%} of a core, peak RSS {ph.rss_kib / 1024:.0f} MiB"

    batches = m.get("aqnet_storage_batch_write_seconds_count", 0.0)
    written = m.get("aqnet_storage_batch_write_seconds_sum", 0.0)
    rows_written = m.get('aqnet_storage_rows_total{result="insert"}', float(a.rows))
    per_batch, ms_each = (rows_written / batches, written / batches * 1e3) if batches else (math.nan, math.nan)
    cpu = ", ".join(f"{'daemon' if k == 'consumer' else k} {v:.1f} s" for k, v in a.cpu_s.items())
    lines = [
        (f"aqnet settings             mqtt.receive_maximum {s['mqtt.receive_maximum']}, ingest.batch_max "
        f"{s['ingest.batch_max']} messages, batch_max_age_s {s['ingest.batch_max_age_s']:g}, queue_max "
        f"{s['ingest.queue_max']:,d}, pool_max_size {s['database.pool_max_size']} (defaults)"),
        (f"workload                   {a.expected:,d} readings: {s['messages']:,d} aqnet JSON messages × {len(VALUES)} "
        f"from {len(SENSORS)} microsensors, {s['publishers']} publisher processes, QoS 1"),
        f"ceiling (psql \\copy)       {rate(r.ceiling)}",
        f"copy subscriber            {rate(r.copy, usage(r.copy))}",
        f"naive peer (INSERT each)   {rate(r.naive, usage(r.naive))}",
        f"aqnet                      {rate(a, usage(a))}",
        (f"aqnet publish→commit       p50 {p.latency_s(0.5) * 1e3:,.0f} ms, p99 {p.latency_s(0.99) * 1e3:,.0f} ms  "
        f"({p.offered_per_s:,.0f} readings/s offered for {p.wall_s:.1f} s; {p.per_s:,.0f} stored/s)"),
        (f"ratios                     aqnet/ceiling {r.of_ceiling:.1%} (goal ≥ {GOAL_OF_CEILING:.0%}), aqnet/copy "
        f"subscriber {a.per_s / r.copy.per_s:.1%}, aqnet/naive {r.over_naive:.1f}x (goal ≥ {GOAL_OVER_NAIVE:g}x)"),
        f"CPU during aqnet           {cpu} (wall {a.wall_s:.1f} s × {os.cpu_count()} cores)",
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
    cli.add_argument("--latency-s", type=float, default=10.0,
                     help="length of the paced phase that measures latency, in s (default: %(default)s)")
    cli.add_argument("--pace", type=float, default=0.5,
                     help="paced phase's offered rate as a fraction of aqnet's sustained rate (default: %(default)s)")
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
                     latency_s=options.latency_s, pace=options.pace, profile=options.profile)
    except ValueError as exc:
        raise SystemExit(f"python -m bench ingest-e2e: {exc}") from None
    for line in report(result):
        print(line)
    return result
