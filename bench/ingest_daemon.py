"""The aqnet daemon as the benchmarks run it (`bench.ingest`, `bench.soak`): `python -m aqnet run` on a given
configuration, its /metrics, an optional profiler and a clean stop. I/O (a child process).

`bench_config` is the end-to-end ingest benchmark's configuration: the bundled network with every station
pointed at a port where nothing listens (each poll fails fast, as with a cut link), every bundled microsensor an
aqnet JSON board, the averages job held off. Profilers: "py-spy" records the daemon, its subprocesses and every
thread (`bench.spy.Spy`); "cprofile" (when py-spy is missing) profiles the daemon's main thread only, started
and stopped by SIGUSR1 / SIGUSR2 so start-up and shutdown stay out of it (aqnet itself has no profiling code).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from aqnet.config import Settings, settings_from_dict
from aqnet.localstack import MosquittoBroker, free_port
from bench.ingest_peers import SENSORS
from bench.ingest_probes import hottest, scrape
from bench.spy import Spy, py_spy
from sensors.network import bundled_network

__all__ = ["DEFAULT_PROCESSES", "PROFILE_RATE", "STATIONS", "Daemon", "bench_config", "profiler_for"]

STATIONS = tuple(s.id for s in bundled_network({}) if s.kind == "station")

#: `python -c` wrapper of the daemon for cProfile: SIGUSR1 starts profiling its main thread, SIGUSR2 stops and
#: writes the stats
_CPROFILED = """
import cProfile, signal, sys
profile, out = cProfile.Profile(), sys.argv.pop(1)
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
signal.signal(signal.SIGUSR2, lambda *_: (profile.disable(), profile.dump_stats(out)))
from aqnet.cli import main
main()
"""


#: the daemon's processes in the benchmarks (`ingest.processes`): one per core
DEFAULT_PROCESSES = max(1, os.cpu_count() or 1)
PROFILE_RATE = 250  #: py-spy samples per second of the profiled run (100 left a thread of a 1-s run ~10 samples)


def bench_config(tmp: Path, url: str, broker: MosquittoBroker, processes: int = DEFAULT_PROCESSES
                 ) -> dict[str, Any]:
    """The ingest benchmark's daemon configuration (free ports, spool under `tmp`, `processes` intake
    processes)."""
    dead = free_port()  # nothing listens there: every station poll fails fast, as with a cut link
    return {"database": {"url": url}, "mqtt": {"url": broker.url, "client_id": "aqnet-bench"},
            "network": {"stations": {c: {"host": "127.0.0.1", "port": dead} for c in STATIONS},
                        # every microsensor an aqnet JSON board (the bundled mix has airrohr and PurpleAir)
                        "microsensors": {sid: {} for sid in SENSORS}},
            "http": {"internal": {"port": free_port()}, "intake": {"port": free_port()}, "api": {"port": free_port()}},
            "scheduler": {"averages_every_s": 86_400},
            "ingest": {"processes": processes},
            "storage": {"spool_dir": str(tmp / "spool")}}


def profiler_for(choice: str, short: bool) -> str | None:
    """py-spy or cprofile when a profile is due (`always`, or `auto` and a goal was missed), else None;
    AQNET_BENCH_PROFILE=1/0 overrides the choice."""
    env = os.environ.get("AQNET_BENCH_PROFILE", "").lower()
    choice = {"1": "always", "true": "always", "0": "never", "false": "never"}.get(env, env or choice)
    if choice == "never" or (choice == "auto" and not short):
        return None
    return "py-spy" if py_spy() else "cprofile"


class Daemon:
    """`python -m aqnet run` on `config` (written to `tmp`/aqnet.yaml), connected to its broker when constructed;
    `profiler` ("py-spy" or "cprofile") records between `profile_start()` and `profile_stop()`."""

    def __init__(self, tmp: Path, config: dict[str, Any], profiler: str | None = None, *,
                 log_level: str = "WARNING") -> None:
        self.profiler = profiler
        self.settings: Settings = settings_from_dict(config, "bench")
        self.http_port = self.settings.http.internal.port
        (tmp / "aqnet.yaml").write_text(yaml.safe_dump(config))
        self.out = tmp / f"profile-{profiler}.out"
        python = [sys.executable, "-c", _CPROFILED, str(self.out)] if profiler == "cprofile" else [
            sys.executable, "-m", "aqnet"]
        argv = [*python, "--log-level", log_level, "run", "--config", str(tmp / "aqnet.yaml")]
        self.log = tmp / "aqnet.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.spy: Spy | None = None
        deadline = time.monotonic() + 60
        while self.metric("aqnet_mqtt_connected") != self.settings.ingest.processes:  # summed over processes
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"bench: aqnet did not connect to the broker; log {self.log}:\n"
                                   + "\n".join(self.log.read_text(errors="replace").splitlines()[-20:]))
            time.sleep(0.1)

    def metric(self, name: str) -> float:
        """One sample of the daemon's /metrics, e.g. `name{label="value"}` (NaN when absent or unreachable)."""
        try:
            return scrape(self.http_port).get(name, math.nan)
        except OSError:
            return math.nan

    def profile_start(self) -> None:
        if self.profiler == "cprofile":
            self.proc.send_signal(signal.SIGUSR1)
        elif self.profiler == "py-spy":
            self.spy = Spy(self.proc.pid, self.out, rate=PROFILE_RATE)
            self.spy.start()

    def profile_stop(self) -> list[str]:
        """Stop recording; the profile's summary lines (per process and thread with py-spy)."""
        if self.spy is not None:
            self.spy.stop()
            return self.spy.lines()
        if self.profiler != "cprofile":
            return []
        self.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while not self.out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)  # let the writer finish the file
        return hottest("cprofile", self.out)

    def stop(self) -> None:
        """SIGTERM (the daemon flushes) and wait; kill after 30 s."""
        if self.spy is not None:
            self.spy.stop()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
