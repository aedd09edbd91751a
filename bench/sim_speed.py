"""`python -m bench sim-speed`: the fastest simulated-time speed this machine sustains under `aqnet up --speed X`.

For each speed (fastest last) it runs the whole local stack — TimescaleDB, Mosquitto, `aqnet simulate` (19
stations over Modbus TCP, 25 microsensors over MQTT and HTTP) and the daemon — as `aqnet up --speed X
--duration D` in a fresh var directory, then counts what was stored in the run's own database. Devices are
polled and publish every 60 simulated seconds, so over a window of W simulated seconds each device variable
owes W / 60 samples. A speed is *sustained* when every device variable (stations and microsensors alike) has at
least `--threshold` (default 90 %) of its samples in the window, the window being the run's simulated span
without its first 10 and last 5 simulated minutes (start-up and shutdown), and nothing was stored in the
future. The benchmark stops at the first speed that is not sustained and prints the highest one that was.

The figure depends on the machine and on what else runs on it (the load average is printed with each run):
measure on an otherwise idle machine. Each line also gives the CPU seconds the simulators and the daemon spent
per simulated hour, which do not depend on the load: 3600 / that figure is the speed one free core sustains
for that process. Options: `--speeds` (comma-separated, default 120,240,480,960), `--sim-duration` (real
seconds per run, default 40), `--threshold`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import yaml

from aqnet.localstack import TimescaleCluster
from aqnet.localstack.up import SIM_DATABASE

__all__ = ["SpeedResult", "add_options", "main", "measure"]

#: the scenario's cadence of polls and messages, in simulated seconds (simulators/scenarios/normal.yaml)
CADENCE_S = 60.0
_HEAD = timedelta(minutes=10)
_TAIL = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class SpeedResult:
    """What one accelerated run stored, against what the devices owed."""

    speed: float
    window_h: float  #: simulated hours counted
    station_min: float  #: lowest fraction of owed samples over station device variables
    station_median: float
    microsensor_min: float  #: the same over microsensor device variables
    microsensor_median: float
    future: bool  #: something was stored with a time after the run ended
    load: str  #: `uptime`'s load averages when the run ended
    cpu_s: dict[str, float]  #: CPU seconds used by the simulators ("simulate") and the daemon ("run")

    def sustained(self, threshold: float) -> bool:
        """Every device variable got at least `threshold` of its samples, nothing in the future."""
        return min(self.station_min, self.microsensor_min) >= threshold and not self.future


def add_options(group: argparse._ArgumentGroup) -> None:
    """The benchmark's command-line options."""
    group.add_argument("--speeds", default="120,240,480,960", help="speeds to try, slowest first")
    group.add_argument("--sim-duration", type=float, default=40.0, help="real seconds per run")
    group.add_argument("--threshold", type=float, default=0.9, help="fraction of owed samples to call it sustained")


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _children_cpu(parent: int, seen: dict[str, float]) -> None:
    """Record the CPU seconds (user + system) of `parent`'s `aqnet simulate` and `aqnet run` children."""
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) != parent:
                continue
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        for name in ("simulate", "run"):
            if name.encode() in argv[:5]:
                seen[name] = max(seen.get(name, 0.0), (int(fields[11]) + int(fields[12])) / tick)


def measure(speed: float, duration_s: float, var: Path) -> SpeedResult:
    """Run `aqnet up --speed speed --duration duration_s` in `var` and count what it stored."""
    proc = subprocess.Popen([sys.executable, "-m", "aqnet", "up", "--var", str(var), "--speed", str(speed),
                             "--duration", str(duration_s)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    cpu: dict[str, float] = {}
    deadline = time.monotonic() + duration_s + 180
    while proc.poll() is None and time.monotonic() < deadline:
        _children_cpu(proc.pid, cpu)
        time.sleep(0.5)
    out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    load = _load()
    ended = datetime.now(UTC)
    if proc.returncode != 0:
        raise RuntimeError(f"aqnet up --speed {speed} failed ({proc.returncode}):\n{out}")
    clock = yaml.safe_load((var / "aqnet.yaml").read_text(encoding="utf-8"))["clock"]
    origin = datetime.fromisoformat(clock["sim_origin"])
    start, end = origin + _HEAD, origin + timedelta(seconds=duration_s * speed) - _TAIL
    owed = (end - start).total_seconds() / CADENCE_S
    port = json.loads((var / "ports.json").read_text())["postgres"]
    cluster = TimescaleCluster(var / "pgdata", port)
    cluster.start()
    try:
        with psycopg.connect(cluster.url_for(SIM_DATABASE), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT s.kind, d.id, v.variable, count(m.time) FROM devices d JOIN sensors s ON s.id = d.sensor_id "
                "CROSS JOIN LATERAL unnest(d.variables) AS v(variable) "
                "LEFT JOIN measurements m ON m.device_id = d.id AND m.variable = v.variable "
                "  AND m.time >= %s AND m.time < %s "
                "WHERE d.active GROUP BY 1, 2, 3", (start, end)).fetchall()
            newest = conn.execute("SELECT max(time) FROM measurements").fetchone()[0]
    finally:
        cluster.stop()
    shares: dict[str, list[float]] = {"station": [], "microsensor": []}
    for kind, _device, _variable, n in rows:
        shares[kind].append(min(1.0, n / owed))
    st, ms = shares["station"] or [0.0], shares["microsensor"] or [0.0]
    return SpeedResult(speed, (end - start).total_seconds() / 3600, min(st), statistics.median(st), min(ms),
                       statistics.median(ms), newest is not None and newest > ended, load, cpu)


def main(options: argparse.Namespace | None = None) -> float | None:
    """Run the speeds in turn; print a line per speed and the highest sustained one (returned)."""
    if options is None:
        cli = argparse.ArgumentParser(prog="python -m bench sim-speed")
        add_options(cli.add_argument_group())
        options = cli.parse_args([])
    speeds = [float(x) for x in str(options.speeds).split(",") if x.strip()]
    best: float | None = None
    print(f"{'speed':>7} {'sim h':>6} {'stations min/med':>17} {'microsensors min/med':>21}  load   (threshold "
          f"{options.threshold:.0%} of owed samples, {options.sim_duration:g} s per run, {os.cpu_count()} CPUs)")
    for speed in speeds:
        var = Path(tempfile.mkdtemp(prefix="aqnet-sim-speed-"))
        try:
            r = measure(speed, options.sim_duration, var)
        finally:
            for link in var.iterdir():
                if link.is_symlink():
                    shutil.rmtree(link.resolve(), ignore_errors=True)
            shutil.rmtree(var, ignore_errors=True)
        ok = r.sustained(options.threshold)
        sim_h = options.sim_duration * speed / 3600
        per_h = "  ".join(f"{name} {cpu / sim_h:.1f} CPU s/sim h" for name, cpu in sorted(r.cpu_s.items()))
        print(f"{speed:6g}× {r.window_h:6.2f} {r.station_min:8.0%} {r.station_median:8.0%} "
              f"{r.microsensor_min:10.0%} {r.microsensor_median:10.0%}  {r.load}  "
              f"{'sustained' if ok else 'NOT sustained'}{'  (future timestamps!)' if r.future else ''}  {per_h}",
              flush=True)
        if not ok:
            break
        best = speed
        time.sleep(1)
    print(f"maximum sustained speed: {f'{best:g}×' if best else f'below {speeds[0]:g}×'}")
    return best
