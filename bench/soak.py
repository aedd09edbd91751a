"""`python -m bench soak [--minutes 30]` (`make soak`): the daemon under the simulated network plus synthetic load at
the 10,000-sensor rate for half an hour, sampled every few seconds; writes a table and a plot, and says whether the
daemon's memory held steady and the p99 publish → commit latency (issue 19).

The stack, in a temporary directory with free ports (`aqnet.localstack`, as `bench.ingest`):
- TimescaleDB with `track_commit_timestamp = on`, so each row's commit time is known to the database;
- Mosquitto; `python -m aqnet run` (`bench.ingest_daemon.Daemon`) configured as `aqnet up` configures it in real
  time (the 19 bundled stations at simulated servers, polls and messages every 5 s, the scheduler every 60 s);
- the simulated network: `python -m aqnet simulate --scenario normal` (the 19 stations over Modbus TCP, the 25
  microsensors over MQTT and HTTP), as `aqnet up` starts it;
- synthetic load: `--load-sensors` microsensors (SYN-M0001…, aqnet JSON, registered before the daemon starts) whose
  8-value messages `--publishers` processes publish at `--rate` readings/s in all (default 8,000: 10,000 sensors
  × 8 values every 10 s), each stamped with its publish time (`bench.ingest_peers.stream`).

Every `--sample-s` seconds: readings/s committed (the daemon's `aqnet_storage_rows_total` counter, simulated
network included), the daemon's RSS with its child processes and its CPU seconds per wall second. After the load
stops and the daemon drained: publish → commit per synthetic message = the row's commit timestamp − its reading
time (pm25 rows), p50/p99 per interval and over everything after warm-up. Writes `soak.csv`, `soak.md` and
`soak.png` into `--out` (default ./var/soak/<UTC time>); `bench.soak_report` defines warm-up and the RSS band.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml

from aqnet.localstack import MosquittoBroker, TimescaleCluster, free_port
from bench.ingest import SENSOR_RATE
from bench.ingest_daemon import DEFAULT_PROCESSES, STATIONS, Daemon
from bench.ingest_peers import WIDE, stream
from bench.soak_report import Sample, SoakResult, plot, verdict_lines, warmup_s, write_csv, write_markdown
from bench.spy import TreeCpu, tree_rss_kib
from simulators.network_sim import synthetic_network
from storage.migrate import migrate
from storage.registry import import_network, spec_from_sensor

__all__ = ["add_options", "main", "run"]

INTERVAL_S = 5.0  #: the simulated network's poll and publish interval, as `aqnet up` in real time (DEMO_INTERVAL_S)
ROWS = 'aqnet_storage_rows_total{result="inserted"}'
_LATENCY = """
SELECT floor(extract(epoch FROM time - %(start)s) / %(step)s)::int AS k, count(*),
       percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM pg_xact_commit_timestamp(xmin) - time)),
       percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM pg_xact_commit_timestamp(xmin) - time))
FROM measurements
WHERE variable = 'pm25' AND sensor_id LIKE 'SYN-M%%' AND time >= %(start)s AND time < %(end)s
GROUP BY 1 ORDER BY 1
"""
_OVERALL = """
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM pg_xact_commit_timestamp(xmin) - time)),
       percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM pg_xact_commit_timestamp(xmin) - time))
FROM measurements
WHERE variable = 'pm25' AND sensor_id LIKE 'SYN-M%%' AND time >= %(start)s AND time < %(end)s
"""


def _cluster(tmp: Path) -> TimescaleCluster:
    """A cluster that records commit timestamps (a server setting: set, then restart)."""
    cluster = TimescaleCluster(tmp / "pgdata", free_port(), persistent=False)
    cluster.start()
    with psycopg.connect(cluster.url_for("postgres"), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
    cluster.stop()
    cluster.start()
    return cluster


def _register(url: str, load_sensors: int) -> None:
    """The synthetic load's microsensors in the registry the daemon loads its network from (`aqnet up`'s scale
    mode does the same)."""
    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await import_network(conn, [spec_from_sensor(s) for s in synthetic_network(0, load_sensors)],
                                 actor="bench soak", source="bench soak synthetic load")
    asyncio.run(go())


def _config(tmp: Path, url: str, broker: MosquittoBroker, processes: int = DEFAULT_PROCESSES) -> dict[str, Any]:
    """The daemon's (and the simulators') configuration, as `aqnet up` writes it in real time, with `processes`
    intake processes."""
    return {"database": {"url": url}, "mqtt": {"url": broker.url, "client_id": "aqnet-soak"},
            "network": {"stations": {c: {"host": "127.0.0.1", "port": free_port()} for c in STATIONS},
                        "microsensor_cadence_s": INTERVAL_S},
            "modbus": {"poll_interval_s": INTERVAL_S},
            "http": {"internal": {"port": free_port()}, "intake": {"port": free_port()}, "api": {"port": free_port()}},
            "scheduler": {"averages_every_s": 60.0},
            "ingest": {"processes": processes},
            "storage": {"spool_dir": str(tmp / "spool")},
            "alerts": {"signing_key_file": str(tmp / "alert-signing.key"),
                       "link_key_file": str(tmp / "alert-link.key")}}


class _Load:
    """`n` stream publisher processes, each with every n-th synthetic sensor and its share of the rate."""

    def __init__(self, n: int, port: int, sensors: list[str], rate_msgs: float, seconds: float) -> None:
        ctx = mp.get_context("spawn")
        self.pipes, self.procs = [], []
        for p in range(n):
            mine, theirs = ctx.Pipe()
            part = sensors[p::n]
            proc = ctx.Process(target=stream, args=(port, "aqnet", part, rate_msgs * len(part) / len(sensors),
                                                    seconds, WIDE, theirs), daemon=True)
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)
        for pipe in self.pipes:
            if not pipe.poll(60) or pipe.recv() != "ready":
                self.close()
                raise RuntimeError("soak: a publisher process did not connect to the broker within 60 s")

    def go(self) -> float:
        start_at = time.time() + 0.2
        for pipe in self.pipes:
            pipe.send(start_at)
        return start_at

    def join(self, timeout_s: float) -> tuple[int, float]:
        """Messages published in all and the worst lag behind schedule, s."""
        total, lag = 0, 0.0
        for pipe in self.pipes:
            if pipe.poll(timeout_s):
                k, _cpu, worst = pipe.recv()
                total, lag = total + k, max(lag, worst)
        return total, lag

    def close(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
            proc.join(10)


def _latencies(url: str, start: datetime, end: datetime, step: float, warmup: float
               ) -> tuple[dict[int, tuple[int, float, float]], float, float]:
    """Per interval k of reading time: (messages, p50, p99) in s; then p50 and p99 over everything after warm-up."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(_LATENCY, {"start": start, "end": end, "step": step}).fetchall()
        overall = conn.execute(_OVERALL, {"start": start + timedelta(seconds=warmup), "end": end}).fetchone()
    per = {int(k): (int(n), float(p50), float(p99)) for k, n, p50, p99 in rows}
    p50, p99 = overall if overall and overall[0] is not None else (math.nan, math.nan)
    return per, float(p50), float(p99)


def run(*, minutes: float = 30.0, rate: float = SENSOR_RATE, load_sensors: int = 1_000, publishers: int = 3,
        sample_s: float = 5.0, out: Path, progress: Callable[[str], None] = print,
        processes: int = DEFAULT_PROCESSES) -> SoakResult:
    """Run the soak; write soak.csv, soak.md and soak.png into `out`; return the result."""
    if not (minutes > 0 and rate > 0 and sample_s > 0 and 1 <= load_sensors <= 9_999 and publishers >= 1):
        raise ValueError(f"expected minutes, rate, sample_s > 0, 1 <= load_sensors <= 9999 and publishers >= 1, got "
                         f"{minutes}, {rate}, {sample_s}, {load_sensors}, {publishers}")
    duration = minutes * 60
    out.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="aqnet-soak-") as tmp_name:
        tmp = Path(tmp_name)
        cluster = _cluster(tmp)
        broker = MosquittoBroker(tmp / "broker", free_port(), persistent=False,
                                 max_queued=max(200_000, round(rate / len(WIDE) * 120)))
        sim: subprocess.Popen[bytes] | None = None
        daemon: Daemon | None = None
        load: _Load | None = None
        try:
            broker.start()
            url = cluster.url
            with psycopg.connect(url) as conn:
                migrate(conn)
            _register(url, load_sensors)
            config = _config(tmp, url, broker, processes)
            (tmp / "simulators.yaml").write_text(yaml.safe_dump(config))
            with (out / "simulators.log").open("ab") as log:
                sim = subprocess.Popen([sys.executable, "-m", "aqnet", "simulate", "--config",
                                        str(tmp / "simulators.yaml"), "--scenario", "normal", "--publish-interval",
                                        str(INTERVAL_S)], stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
            _wait_listening(config, sim)
            daemon = Daemon(tmp, config)
            sensors = [s.id for s in synthetic_network(0, load_sensors)]
            load = _Load(publishers, broker.port, sensors, rate / len(WIDE), duration)
            # the messages' times are cut to the millisecond: the first may be stamped just before the start
            started = datetime.fromtimestamp(math.floor(load.go() * 1000) / 1000, UTC)
            progress(f"soak: {rate:,.0f} readings/s from {load_sensors:,d} synthetic sensors for {minutes:g} min "
                     f"plus the simulated network; sampling every {sample_s:g} s into {out}")
            t0 = time.monotonic()
            last_rows, last_t = _rows(daemon), t0
            tree = TreeCpu(daemon.proc.pid)
            tree.start()
            next_print = t0
            while (now := time.monotonic()) < t0 + duration:
                time.sleep(max(0.0, min(sample_s, t0 + duration - now)))
                if daemon.proc.poll() is not None or sim.poll() is not None:
                    raise RuntimeError(f"soak: the {'daemon' if daemon.proc.poll() is not None else 'simulators'} "
                                       f"exited; logs in {tmp} and {out}")
                t, rows = time.monotonic(), _rows(daemon)
                if rows < last_rows:
                    # an intake process did not answer this scrape in time (its families are left out of
                    # /metrics, aqnet.daemon.workers): skip the sample; the next one spans both intervals
                    continue
                cpu = tree.stop()
                tree.start()
                samples.append(Sample(t - t0, (rows - last_rows) / (t - last_t), tree_rss_kib(daemon.proc.pid) / 1024,
                                      cpu.cores))
                last_rows, last_t = rows, t
                if t >= next_print:
                    s = samples[-1]
                    progress(f"  {s.t_s / 60:5.1f} min  {s.readings_per_s:8,.0f} readings/s  RSS {s.rss_mib:6,.0f} MiB"
                             f"  daemon {s.cores:.2f} CPU s/s")
                    next_print = t + max(sample_s, 30.0)
            published, lag = load.join(120)
            stored = _drain(url, started, published)
            per, p50, p99 = _latencies(url, started, started + timedelta(seconds=duration), sample_s,
                                       warmup_s(duration))
        finally:
            if load is not None:
                load.close()
            for proc in (daemon.proc if daemon else None, sim):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(30)
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
            if (tmp / "aqnet.log").exists():
                (out / "aqnet.log").write_bytes((tmp / "aqnet.log").read_bytes())
            broker.discard()
            cluster.discard()
    samples = [_with_latency(s, per, sample_s) for s in samples]
    result = SoakResult(tuple(samples), duration, rate, published * len(WIDE) / duration, p50, p99,
                        {"rate": f"{rate:,.0f} readings/s asked ({len(WIDE)}-value messages)",
                         "synthetic sensors": f"{load_sensors:,d}", "publishers": str(publishers),
                         "worst publisher lag": f"{lag:.2f} s", "minutes": f"{minutes:g}",
                         "synthetic messages": f"{published:,d} published, {stored:,d} stored",
                         "sample interval": f"{sample_s:g} s", "started": started.isoformat(timespec="seconds"),
                         "simulated network": f"scenario normal, polls and messages every {INTERVAL_S:g} s"})
    write_csv(result, out / "soak.csv")
    write_markdown(result, out / "soak.md")
    plot(result, out / "soak.png")
    return result


def _with_latency(s: Sample, per: dict[int, tuple[int, float, float]], step: float) -> Sample:
    """`s` with the latency of the messages published in its interval (reading times in [t − step, t))."""
    n, p50, p99 = per.get(round(s.t_s / step) - 1, (0, math.nan, math.nan))
    return Sample(s.t_s, s.readings_per_s, s.rss_mib, s.cores, p50, p99, n)


def _wait_listening(config: dict[str, Any], sim: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Wait until the simulated stations accept connections (so the daemon's first polls find them)."""
    ports = [e["port"] for e in config["network"]["stations"].values()]
    deadline = time.monotonic() + timeout_s
    for port in ports:
        while time.monotonic() < deadline and sim.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            time.sleep(0.1)


def _rows(daemon: Daemon) -> float:
    """Rows the daemon inserted so far (0 before its first write creates the counter's series)."""
    n = daemon.metric(ROWS)
    return 0.0 if math.isnan(n) else n


def _drain(url: str, start: datetime, published: int, stall_s: float = 10.0) -> int:
    """Wait until every synthetic message published since `start` is stored (its pm25 row), or nothing more was
    stored for `stall_s`; the number stored."""
    last, moved = -1, time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM measurements WHERE variable = 'pm25' AND sensor_id LIKE "
                               "'SYN-M%%' AND time >= %s", (start,)).fetchone()
            n = int(row[0]) if row else 0
            if n >= published or time.monotonic() - moved > stall_s:
                return n
            if n != last:
                last, moved = n, time.monotonic()
            time.sleep(0.5)


def add_options(cli: argparse._ActionsContainer, *, shared: bool = True) -> None:
    """The soak's options; `shared`: also `--rate`, `--publishers` and `--processes` (which `python -m bench`
    already has)."""
    cli.add_argument("--minutes", type=float, default=30.0, help="length of the load, in min (default: %(default)s)")
    cli.add_argument("--load-sensors", type=int, default=1_000,
                     help="synthetic microsensors the load is spread over (default: %(default)s)")
    cli.add_argument("--sample-s", type=float, default=5.0, help="sampling interval, in s (default: %(default)s)")
    cli.add_argument("--out", type=Path, default=None,
                     help="output directory (default: ./var/soak/<UTC date and time>)")
    if shared:
        cli.add_argument("--processes", type=int, default=DEFAULT_PROCESSES,
                         help="aqnet's ingest.processes (default: one per core, %(default)s)")
        cli.add_argument("--rate", type=float, default=SENSOR_RATE,
                         help="readings/s of the synthetic load (default: the 10,000-sensor rate, %(default)g)")
        cli.add_argument("--publishers", type=int, default=3, help="publisher processes (default: %(default)s)")


def main(argv: Sequence[str] | None = None, *, options: argparse.Namespace | None = None) -> SoakResult:
    """Run the soak from command-line options, print its verdicts and where the files are; return the result."""
    if options is None:
        cli = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.splitlines()[0])
        add_options(cli)
        options = cli.parse_args(argv)
    out = options.out or Path("var") / "soak" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        result = run(minutes=options.minutes, rate=options.rate, load_sensors=options.load_sensors,
                     publishers=options.publishers, sample_s=options.sample_s, out=out,
                     processes=getattr(options, "processes", DEFAULT_PROCESSES))
    except ValueError as exc:
        raise SystemExit(f"python -m bench soak: {exc}") from None
    for line in verdict_lines(result):
        print(line)
    print(f"written       {out / 'soak.csv'}, {out / 'soak.md'}, {out / 'soak.png'}")
    return result
