"""`aqnet up`: the local stack — TimescaleDB and Mosquitto under ./var, the simulators and the daemon as child
processes — with a live status line, stopped cleanly by Ctrl-C, SIGTERM or `--duration`. Shell; I/O (processes).

Ports are kept in `var/ports.json` and reused, so a Grafana or Prometheus pointed at the stack keeps working.
`var/state.json` tells `aqnet status` and `aqnet db url` where things are while it runs.

A scenario (`simulators/scenarios/<name>.yaml`, default `normal`) says what the simulators do. With a speed above
1 (`--speed X`, or the scenario's) the run is accelerated: the simulators and the daemon share one simulated
clock (`clock.*` in the generated config: origin and speed), devices are polled and publish at their cadence in
simulated seconds, and the data go to their own database (`aqnet_sim`, recreated each run) and spool. With
`--duration D` simulated time starts D×X before the end of the run, so it ends at now; without, it starts the
scenario's `duration` before now, catches up with the wall clock and then runs in real time. Simulated time
starts `startup_s` after launch, once both processes are up; the clock never runs past the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from alerts.settings import AlertsSettings, MqttChannel, SchedulerSettings
from aqnet.config import (
    ApiListener,
    HttpSettings,
    IntakeListener,
    InternalListener,
    PublicListener,
    Settings,
    settings_to_yaml,
)
from aqnet.localstack.mosquitto import MosquittoBroker
from aqnet.localstack.ports import PortBook
from aqnet.localstack.timescale import GRAFANA_LOGIN, TimescaleCluster
from sensors.clock import Clock
from sensors.mqtt.broker import DAEMON_USER, SIMULATOR_USER
from sensors.network import bundled_network
from sensors.sensor import Sensor
from sensors.settings import ClockSettings, Endpoint, ModbusSettings, MqttSettings, NetworkSettings
from simulators.network_sim import synthetic_network
from simulators.scenario import load_scenario
from storage.migrate import migrate
from storage.settings import DatabaseSettings, StorageSettings

__all__ = ["UpOptions", "averages_every_s", "grafana_login", "read_state", "run_up",
           "sim_clock_origin"]

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
#: the read-only login Grafana uses (member of aqnet_readonly, created by migration 0001); its password is kept in
#: var/GRAFANA_PASSWORD_FILE, generated on the first `aqnet up`
GRAFANA_PASSWORD_FILE = "grafana-password"  # noqa: S105 - a file name, not a password


@dataclass(frozen=True)
class UpOptions:
    """What `aqnet up` was asked to do (None: the scenario's value, or the real-time demo's)."""

    var_dir: Path
    duration_s: float | None = None  #: real seconds; accelerated, simulated time then ends at now
    poll_interval_s: float | None = None  #: simulated seconds (real-time demo default: 5 s)
    publish_interval_s: float | None = None  #: simulated seconds (real-time demo default: 5 s)
    seed: int | None = None
    simulate: bool = True
    speed: float | None = None  #: simulated seconds per real second (> 1: an accelerated run)
    scenario: str = "normal"
    stations: int | None = None  #: synthetic stations (scale mode)
    microsensors: int | None = None  #: synthetic microsensors (scale mode)
    #: real seconds allowed for the daemon and the simulators to start before simulated time begins
    startup_s: float = 6.0
    #: the broker with authentication and per-sensor ACLs (`aqnet sensors credentials`)
    secure: bool = False


#: the database an accelerated run writes to, recreated each run (never mixed with real-time data)
SIM_DATABASE = "aqnet_sim"
#: real-time demo cadence (seconds) when neither an interval nor an accelerated scenario says otherwise
DEMO_INTERVAL_S = 5.0


def sim_clock_origin(*, wall_origin: float, speed: float, duration_s: float | None, span_s: float) -> datetime:
    """Simulated time at `wall_origin` for an accelerated run: with a real `duration_s`, such that simulated
    time reaches the wall clock exactly when the run ends; without, `span_s` (the scenario's simulated
    duration) before the wall clock, so it catches up with now and then runs in real time."""
    origin = datetime.fromtimestamp(wall_origin, UTC)
    if duration_s is not None:
        return origin + timedelta(seconds=duration_s - duration_s * speed)
    return origin - timedelta(seconds=span_s)


def averages_every_s(speed: float) -> float:
    """How often (real seconds) the averages job runs: every 15 simulated minutes, between 2 s and 60 s."""
    return max(2.0, min(60.0, 900.0 / speed))


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (configurations may carry broker passwords)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def grafana_login(admin_url: str, var: Path) -> str:
    """Create (or re-password) the read-only login role Grafana uses; return its password, generated once and kept
    in var/grafana-password (mode 600). Roles are cluster-wide: one login serves `aqnet` and `aqnet_sim`.

    The local cluster's pg_hba.conf asks this role (only) for its password, checked with SCRAM-SHA-256."""
    path = var / GRAFANA_PASSWORD_FILE
    if path.exists():
        password = path.read_text(encoding="utf-8").strip()
    else:
        password = secrets.token_urlsafe(24)
        _write_private(path, password + "\n")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # the group role of migration 0001, created here when the daemon has not migrated yet (0001 then keeps it)
        conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aqnet_readonly') THEN "
                     "CREATE ROLE aqnet_readonly NOLOGIN; END IF; END $$")
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (GRAFANA_LOGIN,)).fetchone()
        conn.execute(sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {}").format(
            sql.SQL("ALTER" if exists else "CREATE"), sql.Identifier(GRAFANA_LOGIN), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT aqnet_readonly TO {}").format(sql.Identifier(GRAFANA_LOGIN)))
        # belt and braces: even a grant added by mistake later cannot make Grafana write
        conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
            sql.Identifier(GRAFANA_LOGIN)))
    return password


def read_state(var_dir: Path) -> dict[str, Any]:
    """The running stack's `var/state.json`; raises FileNotFoundError when aqnet up is not running."""
    return json.loads((var_dir / STATE_FILE).read_text(encoding="utf-8"))


def _http_json(url: str, timeout_s: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - a URL the stack itself wrote
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


def _register_synthetic(url: str, sensors: list[Sensor]) -> None:
    """Put the scale mode's synthetic sensors in the registry the daemon loads its network from."""
    from storage.registry import import_network, spec_from_sensor

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await import_network(conn, [spec_from_sensor(x) for x in sensors], actor="aqnet up",
                                 source="aqnet up scale mode")

    asyncio.run(main())


def _wait_rtu_links(path: Path, sim: subprocess.Popen[bytes], timeout_s: float = 15.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            return dict(json.loads(path.read_text(encoding="utf-8")))
        if sim.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"the simulators wrote no RTU link file {path} within {timeout_s:.0f} s")


def run_up(opts: UpOptions) -> int:
    """Run the local stack until Ctrl-C, SIGTERM or the duration; return the exit code (0 on a clean stop)."""
    var = opts.var_dir.resolve()
    var.mkdir(parents=True, exist_ok=True)
    (var / "logs").mkdir(exist_ok=True)
    scenario = load_scenario(opts.scenario).with_overrides(seed=opts.seed, speed=opts.speed,
                                                           stations=opts.stations, microsensors=opts.microsensors)
    accelerated = scenario.speed > 1
    poll_s = opts.poll_interval_s or (scenario.poll_interval_s if accelerated else DEMO_INTERVAL_S)
    publish_s = opts.publish_interval_s or (scenario.publish_interval_s if accelerated else DEMO_INTERVAL_S)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    ports = PortBook(var / "ports.json")
    synthetic = synthetic_network(*scenario.scale, seed=scenario.seed)
    stations = [s for s in (*bundled_network(), *synthetic) if s.kind == "station"]
    cluster = TimescaleCluster(var / "pgdata", ports.port("postgres"))
    service_users = (DAEMON_USER, SIMULATOR_USER) if opts.simulate else (DAEMON_USER,)
    broker = MosquittoBroker(var / "mosquitto", ports.port("mqtt"), secure=opts.secure, service_users=service_users)
    http_port = ports.port("http")
    station_ports = {s.id: ports.port(f"modbus-{s.id}") for s in stations}
    synthetic = synthetic_network(*scenario.scale, ports=station_ports, seed=scenario.seed)
    daemon = sim = None
    rtu_file = var / "rtu.json"
    rtu_file.unlink(missing_ok=True)
    try:
        print(f"aqnet up: starting TimescaleDB in {var / 'pgdata'} …", flush=True)
        cluster.start()
        print("aqnet up: starting Mosquitto …", flush=True)
        broker.start()
        if accelerated:  # its own database, recreated each run; its own spool, so nothing mixes with real time
            database_url = cluster.recreate_database(SIM_DATABASE)
            spool_dir = var / "sim" / "spool"
            shutil.rmtree(spool_dir, ignore_errors=True)
        else:
            database_url, spool_dir = cluster.url, var / "spool"
        # the schema before anything starts: the simulators register their HTTP airrohr kits and issue their
        # credentials (aqnet.simulate) while the daemon is still starting
        with psycopg.connect(database_url, autocommit=False) as conn:
            migrate(conn)
        if synthetic:
            _register_synthetic(database_url, synthetic)
        grafana_password = grafana_login(cluster.url_for("postgres"), var)
        clock = ClockSettings()
        wall_origin = time.time() + opts.startup_s
        if accelerated:
            sim_origin = sim_clock_origin(wall_origin=wall_origin, speed=scenario.speed, duration_s=opts.duration_s,
                                          span_s=scenario.duration_s)
            clock = ClockSettings(speed=scenario.speed, sim_origin=sim_origin, wall_origin=wall_origin)
        settings = Settings(
            database=DatabaseSettings(url=database_url),
            mqtt=MqttSettings(url=broker.url_for(DAEMON_USER) if opts.secure else broker.url),
            network=NetworkSettings(stations={code: Endpoint(host="127.0.0.1", port=p)
                                              for code, p in station_ports.items()},
                                    microsensor_cadence_s=publish_s),
            modbus=ModbusSettings(poll_interval_s=poll_s),
            storage=StorageSettings(spool_dir=str(spool_dir)),
            http=HttpSettings(internal=InternalListener(port=http_port),
                              intake=IntakeListener(port=ports.port("http-intake")),
                              api=ApiListener(port=ports.port("http-api")),
                              public=PublicListener(port=ports.port("http-public"))),
            scheduler=SchedulerSettings(averages_every_s=averages_every_s(scenario.speed)),
            clock=clock,
            # alerts are evaluated and kept in the database; their state is published, retained, on the local
            # broker (aqnet/alerts/<id>); acknowledgement links point at this daemon
            alerts=AlertsSettings(signing_key_file=str(var / "alert-signing.key"),
                                  link_key_file=str(var / "alert-link.key"),
                                  public_url=f"http://127.0.0.1:{ports.port('http-api')}",
                                  channels=[MqttChannel(type="mqtt", name="local-state",
                                                        audience=["officers", "technicians"])]),
        )
        config_path = var / "aqnet.yaml"
        _write_private(config_path, settings_to_yaml(settings))  # secure: it holds the daemon's broker password
        sim_config = config_path
        if opts.secure:  # the simulators publish with their own, write-only login, not the daemon's
            sim_config = var / "simulators.yaml"
            _write_private(sim_config, settings_to_yaml(settings.model_copy(update={"mqtt": settings.mqtt.model_copy(
                update={"url": broker.url_for(SIMULATOR_USER)})})))
        metrics_url = f"http://127.0.0.1:{http_port}/metrics"
        state = {"pid": os.getpid(), "database_url": database_url, "mqtt_url": broker.url,
                 "metrics_url": metrics_url, "status_url": f"http://127.0.0.1:{http_port}/status",
                 "config": str(config_path), "logs": str(var / "logs"), "scenario": scenario.name,
                 "seed": scenario.seed, "speed": scenario.speed,
                 "sim_origin": clock.sim_origin.isoformat() if clock.sim_origin else None,
                 "wall_origin": clock.wall_origin}
        if opts.simulate:
            args = ["simulate", "--config", str(sim_config), "--scenario", opts.scenario,
                    "--seed", str(scenario.seed), "--speed", repr(scenario.speed),
                    "--publish-interval", str(publish_s),
                    "--stations", str(scenario.scale[0]), "--microsensors", str(scenario.scale[1])]
            if scenario.rtu_station is not None:
                args += ["--rtu-link-file", str(rtu_file)]
            sim = _spawn(args, var / "logs" / "simulators.log")
            if scenario.rtu_station is not None:  # the daemon reads that station on the pseudo-terminal
                serial = _wait_rtu_links(rtu_file, sim)
                stations_cfg = dict(settings.network.stations)
                stations_cfg.update({code: Endpoint(protocol="modbus-rtu", serial_port=path)
                                     for code, path in serial.items()})
                settings = settings.model_copy(update={"network": settings.network.model_copy(
                    update={"stations": stations_cfg})})
                config_path = var / "aqnet-daemon.yaml"
                _write_private(config_path, settings_to_yaml(settings))
                state["config"] = str(config_path)
        (var / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
        daemon = _spawn(["run", "--config", str(config_path)], var / "logs" / "daemon.log")
        speed_line = ""
        if accelerated:
            speed_line = (f"  speed     {scenario.speed:g}× (scenario {scenario.name}, seed {scenario.seed}), "
                          f"simulated time from {clock.sim_origin:%Y-%m-%d %H:%M} UTC\n")
        grafana_line = (f"  grafana   host 127.0.0.1:{cluster.port}  database {database_url.rsplit('/', 1)[-1]}  "
                        f'user {GRAFANA_LOGIN}  password {grafana_password}  (read-only; README "Grafana")\n')
        alerts_line = ("  alerts    `aqnet alerts list`; each alert's state is retained on the mqtt topic "
                       "aqnet/alerts/<id>\n")
        open_data_line = (f"  air now   http://127.0.0.1:{settings.http.public.port}/  (the public page)\n"
                          f"  open data http://127.0.0.1:{settings.http.public.port}/v1/about  (no login)\n")
        console_line = (f"  console   http://127.0.0.1:{ports.port('http-api')}/console/  (people sign in: "
                        "`aqnet users add NAME --role officer`)\n")
        print(f"  database  {database_url}\n  mqtt      {broker.url}\n  metrics   {metrics_url}\n{alerts_line}"
              f"{console_line}{open_data_line}"
              f"  config    {config_path}\n  logs      {var / 'logs'}\n{grafana_line}{speed_line}"
              "Ctrl-C stops everything.", flush=True)
        deadline = None if opts.duration_s is None else (wall_origin if accelerated else time.time()) + opts.duration_s
        _watch(deadline, stop, state, daemon, sim, clock.clock())
        return 0 if daemon.poll() in (None, 0) else 1
    finally:
        _terminate(daemon, "daemon")
        _terminate(sim, "simulators")
        broker.stop()
        cluster.stop()
        (var / STATE_FILE).unlink(missing_ok=True)
        rtu_file.unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("aqnet up: stopped", flush=True)


def _watch(deadline: float | None, stop: threading.Event, state: dict[str, Any], daemon: subprocess.Popen[bytes],
           sim: subprocess.Popen[bytes] | None, clock: Clock) -> None:
    started = time.monotonic()
    last_total, last_t = None, started
    tty = sys.stdout.isatty()
    next_line = started
    while not stop.wait(min(1.0, max(0.0, deadline - time.time())) if deadline is not None else 1.0):
        now = time.monotonic()
        if deadline is not None and time.time() >= deadline:
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
            if state.get("speed", 1) > 1:
                line += f"  simulated {clock():%Y-%m-%d %H:%M}"
        print(f"\r{line}   " if tty else line, end="" if tty else "\n", flush=True)
