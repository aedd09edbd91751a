"""`aqnet simulate`: run the simulated network of a scenario (Modbus station servers, RTU bus, microsensors, faults)
for a configuration, on the configuration's clock. Shell; I/O (servers, MQTT).

The stations are served where the configuration's `network.stations` says the daemon will find them (synthetic
SYN-S… stations included), the microsensors publish to its broker and POST to its HTTP intake. Simulated time is
the configuration's `clock.*` (what `aqnet up --speed X` writes for both processes); a `--speed` given here
without one in the configuration starts its own clock, `scenario.duration` before now, for a simulator run on
its own. The scenario's times are relative to the start of simulated time (`clock.sim_origin`, else now).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from aqnet.config import Settings
from sensors.clock import Clock, SimClock, realtime
from sensors.redact import redact
from sensors.sensor import Sensor
from simulators.microsensor import MicrosensorFleet
from simulators.network_sim import SimulatedNetwork, synthetic_network
from simulators.rtu import PtyPair
from simulators.scenario import Scenario, load_scenario
from simulators.signals import CitySignals
from storage import device_credentials
from storage.registry import upsert_registry

__all__ = ["SimulateOptions", "run_simulators", "scenario_for", "simulated_network"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulateOptions:
    """What `aqnet simulate` was asked to do (None: the scenario's value)."""

    scenario: str = "normal"
    speed: float | None = None
    seed: int | None = None
    stations: int | None = None
    microsensors: int | None = None
    publish_interval_s: float | None = None  #: simulated seconds between a microsensor's messages
    #: serve the scenario's `rtu_station` over RTU on a pseudo-terminal pair and write {station: client end}
    #: here (what `aqnet up` hands the daemon)
    rtu_link_file: Path | None = None


def scenario_for(opts: SimulateOptions) -> Scenario:
    """The scenario with the command line's overrides."""
    return load_scenario(opts.scenario).with_overrides(seed=opts.seed, speed=opts.speed, stations=opts.stations,
                                                       microsensors=opts.microsensors)


def simulated_network(settings: Settings, scenario: Scenario) -> list[Sensor]:
    """The sensors to simulate: the configured (bundled) network plus the scenario's synthetic ones, at the
    endpoints of the configuration (as the daemon builds it); stations without an endpoint there are left out."""
    network = settings.network.configured_sensors()
    n_stations, n_microsensors = scenario.scale
    ports = {code: e.port for code, e in settings.network.stations.items() if e.port}
    network += synthetic_network(n_stations, n_microsensors, ports=ports, seed=scenario.seed)
    # a station is served only where the configuration says the daemon will look for it
    return [s for s in network if s.kind != "station" or s.id in settings.network.stations]


def _clock(settings: Settings, scenario: Scenario) -> tuple[Clock, datetime]:
    """The shared clock and the start of the scenario's simulated time."""
    c = settings.clock
    if c.speed > 1 or c.sim_origin is not None:
        clock = c.clock()
        assert c.sim_origin is not None
        return clock, c.sim_origin
    if scenario.speed > 1:  # running alone: start one scenario duration ago, catch up with now
        wall = time.time()
        origin = datetime.fromtimestamp(wall, UTC) - timedelta(seconds=scenario.duration_s)
        return SimClock(origin, wall, scenario.speed), origin
    return realtime, realtime()


async def _http_credentials(settings: Settings, network: Sequence[Sensor]) -> dict[str, str]:
    """HTTP basic credentials for the simulated airrohr kits that POST (the daemon's intake requires them): the
    simulator is their owner, so it puts them in the registry and issues them new credentials (replacing any),
    as a technician would with `aqnet sensors add` and `aqnet sensors credentials ID --http`."""
    posting = [x for x in network if x.kind == "microsensor" and any(d.protocol == "http" for d in x.devices)]
    if not posting:
        return {}
    try:
        async with await psycopg.AsyncConnection.connect(settings.database.url, autocommit=True) as conn:
            await upsert_registry(conn, posting)
            return {x.id: await device_credentials.issue(conn, x.id, created_by="aqnet simulate") for x in posting}
    except psycopg.Error as exc:  # the airrohr kits then POST without credentials (and are refused: 401)
        log.warning("simulated airrohr kits get no HTTP credentials (database: %s); their POSTs will be refused",
                    redact(str(exc)))
        return {}


async def _simulate(settings: Settings, opts: SimulateOptions, network: Sequence[Sensor], scenario: Scenario
                    ) -> None:
    clock, start = _clock(settings, scenario)
    real_seconds = getattr(clock, "real_seconds", None)
    plan = scenario.fault_plan(start)
    signals = CitySignals(scenario.seed, episodes=scenario.episodes(start), sensors=network)
    publish_s = opts.publish_interval_s or scenario.publish_interval_s
    intake = settings.http.intake
    http_url = f"{'https' if intake.tls_cert_file else 'http'}://{intake.host}:{intake.port}"
    links = settings.network.microsensor_links()

    credentials = await _http_credentials(settings, network)

    def fleet(microsensors: Sequence[Sensor]) -> MicrosensorFleet:
        return MicrosensorFleet(settings.mqtt.url, microsensors, signals, interval_s=publish_s, clock=clock,
                                real_seconds=real_seconds, faults=plan, links=links, http_url=http_url,
                                seed=scenario.seed, http_credentials=credentials)

    pty: PtyPair | None = None
    rtu_ports: dict[str, str] = {}
    if opts.rtu_link_file is not None and scenario.rtu_station is not None:
        pty = PtyPair()
        await pty.start()
        rtu_ports[scenario.rtu_station] = pty.server_end
        tmp = opts.rtu_link_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({scenario.rtu_station: pty.client_end}), encoding="utf-8")
        tmp.replace(opts.rtu_link_file)  # whoever waits for the file sees it whole
    sim = SimulatedNetwork(network, signals, clock, plan=plan, real_seconds=real_seconds, rtu_ports=rtu_ports,
                           fleet=fleet)
    log.info("scenario %s (seed %d, speed %g): simulated time starts at %s", scenario.name, scenario.seed,
             getattr(clock, "speed", 1.0), start.isoformat())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(sim.run(), name="simulated-network")
    try:
        await asyncio.wait([task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if pty is not None:
            await pty.stop()
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


def run_simulators(settings: Settings, opts: SimulateOptions | None = None) -> int:
    """Run until SIGTERM/SIGINT; return the exit code."""
    opts = opts or SimulateOptions()
    scenario = scenario_for(opts)
    network = simulated_network(settings, scenario)
    scenario.check(network)
    asyncio.run(_simulate(settings, opts, network, scenario))
    return 0
