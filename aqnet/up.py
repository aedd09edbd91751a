"""`aqnet up`: the local stack — TimescaleDB and Mosquitto under ./var, the simulators and the daemon as child
processes — with a live status line, stopped cleanly by Ctrl-C, SIGTERM or `--duration`.

Ports are kept in `var/ports.json` and reused, so a Grafana or Prometheus pointed at the stack keeps working.
`var/state.json` tells `aqnet status` and `aqnet db url` where things are while it runs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aqnet.config import (
    DatabaseSettings,
    Endpoint,
    HttpSettings,
    ModbusSettings,
    MqttSettings,
    NetworkSettings,
    SchedulerSettings,
    Settings,
    StorageSettings,
    settings_to_yaml,
)
from aqnet.localstack import MosquittoBroker, PortBook, TimescaleCluster
from sensors.network import bundled_network

__all__ = ["UpOptions", "read_state", "run_up"]

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


@dataclass(frozen=True)
class UpOptions:
    """What `aqnet up` was asked to do."""

    var_dir: Path
    duration_s: float | None = None
    poll_interval_s: float = 5.0
    publish_interval_s: float = 5.0
    seed: int = 1
    simulate: bool = True


def read_state(var_dir: Path) -> dict[str, Any]:
    """The running stack's `var/state.json`; raises FileNotFoundError when aqnet up is not running."""
    return json.loads((var_dir / STATE_FILE).read_text(encoding="utf-8"))


def _http_json(url: str, timeout_s: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return json.loads(resp.read())


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    out = log_path.open("ab")
    # own session: a Ctrl-C in the terminal reaches only `aqnet up`, which stops children in order
    return subprocess.Popen([sys.executable, "-m", "aqnet", *args], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _terminate(proc: subprocess.Popen[bytes] | None, name: str, timeout_s: float = 30.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.error("%s did not stop within %.0f s; killing it", name, timeout_s)
        proc.kill()
        proc.wait()


def run_up(opts: UpOptions) -> int:
    """Run the local stack until Ctrl-C, SIGTERM or the duration; return the exit code (0 on a clean stop)."""
    var = opts.var_dir.resolve()
    var.mkdir(parents=True, exist_ok=True)
    (var / "logs").mkdir(exist_ok=True)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    ports = PortBook(var / "ports.json")
    stations = [s for s in bundled_network() if s.kind == "station"]
    cluster = TimescaleCluster(var / "pgdata", ports.port("postgres"))
    broker = MosquittoBroker(var / "mosquitto", ports.port("mqtt"))
    http_port = ports.port("http")
    station_ports = {s.id: ports.port(f"modbus-{s.id}") for s in stations}
    daemon = sim = None
    try:
        print(f"aqnet up: starting TimescaleDB in {var / 'pgdata'} …", flush=True)
        cluster.start()
        print("aqnet up: starting Mosquitto …", flush=True)
        broker.start()
        settings = Settings(
            database=DatabaseSettings(url=cluster.url),
            mqtt=MqttSettings(url=broker.url),
            network=NetworkSettings(stations={code: Endpoint(host="127.0.0.1", port=p)
                                              for code, p in station_ports.items()},
                                    microsensor_cadence_s=opts.publish_interval_s),
            modbus=ModbusSettings(poll_interval_s=opts.poll_interval_s),
            storage=StorageSettings(spool_dir=str(var / "spool")),
            http=HttpSettings(host="127.0.0.1", port=http_port),
            scheduler=SchedulerSettings(),
        )
        config_path = var / "aqnet.yaml"
        config_path.write_text(settings_to_yaml(settings), encoding="utf-8")
        metrics_url = f"http://127.0.0.1:{http_port}/metrics"
        state = {"pid": os.getpid(), "database_url": cluster.url, "mqtt_url": broker.url,
                 "metrics_url": metrics_url, "status_url": f"http://127.0.0.1:{http_port}/status",
                 "config": str(config_path), "logs": str(var / "logs")}
        (var / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
        if opts.simulate:
            sim = _spawn(["simulate", "--config", str(config_path), "--seed", str(opts.seed),
                          "--publish-interval", str(opts.publish_interval_s)], var / "logs" / "simulators.log")
        daemon = _spawn(["run", "--config", str(config_path)], var / "logs" / "daemon.log")
        print(f"  database  {cluster.url}\n  mqtt      {broker.url}\n  metrics   {metrics_url}\n"
              f"  config    {config_path}\n  logs      {var / 'logs'}\n"
              "Ctrl-C stops everything.", flush=True)
        _watch(opts, stop, state, daemon, sim)
        return 0 if daemon.poll() in (None, 0) else 1
    finally:
        _terminate(daemon, "daemon")
        _terminate(sim, "simulators")
        broker.stop()
        cluster.stop()
        (var / STATE_FILE).unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("aqnet up: stopped", flush=True)


def _watch(opts: UpOptions, stop: threading.Event, state: dict[str, Any], daemon: subprocess.Popen[bytes],
           sim: subprocess.Popen[bytes] | None) -> None:
    started = time.monotonic()
    last_total, last_t = None, started
    tty = sys.stdout.isatty()
    next_line = started
    while not stop.wait(1.0):
        now = time.monotonic()
        if opts.duration_s is not None and now - started >= opts.duration_s:
            return
        for proc, name in ((daemon, "daemon"), (sim, "simulators")):
            if proc is not None and proc.poll() is not None:
                print(f"\naqnet up: the {name} exited with code {proc.returncode}; see {state['logs']}", flush=True)
                return
        if now < next_line:
            continue
        next_line = now + (2.0 if tty else 10.0)
        try:
            doc = _http_json(state["status_url"])
        except OSError:
            line = "daemon starting …"
        else:
            total = doc.get("readings_total", 0)
            rate = 0.0 if last_total is None else (total - last_total) / max(now - last_t, 1e-9)
            last_total, last_t = total, now
            line = (f"sensors reporting {doc['sensors_reporting']}/{doc['sensors_configured']}  "
                    f"readings/s {rate:6.1f}  stored {total}")
        print(f"\r{line}   " if tty else line, end="" if tty else "\n", flush=True)
