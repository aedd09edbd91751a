"""`aqnet simulate`: run the simulated network (Modbus station servers and MQTT microsensors) for a config."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime

from aqnet.config import Settings
from sensors.network import bundled_network
from simulators.microsensor import MicrosensorFleet
from simulators.signals import CitySignals
from simulators.station import StationServer

__all__ = ["run_simulators"]

log = logging.getLogger(__name__)


async def _simulate(settings: Settings, *, seed: int, publish_interval_s: float) -> None:
    # the simulators serve the stations reached over Modbus TCP (RTU buses are simulated in the tests)
    endpoints = {code: (e.host, e.port) for code, e in settings.network.stations.items()
                 if e.protocol == "modbus-tcp" and e.host and e.port}
    network = bundled_network(endpoints)
    signals = CitySignals(seed)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    servers = [StationServer(s, signals.value, clock, host=endpoints[s.id][0], port=endpoints[s.id][1])
               for s in network if s.kind == "station" and s.id in endpoints]
    for server in servers:
        await server.start()
    fleet = MicrosensorFleet(settings.mqtt.url, network, signals, interval_s=publish_interval_s, clock=clock)
    fleet_task = asyncio.create_task(fleet.run())
    log.info("simulating %d stations over Modbus TCP and %d microsensors over MQTT", len(servers),
             sum(1 for s in network if s.kind == "microsensor"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        fleet_task.cancel()
        await asyncio.gather(fleet_task, return_exceptions=True)
        for server in servers:
            await server.stop()


def run_simulators(settings: Settings, *, seed: int = 1, publish_interval_s: float = 5.0) -> int:
    """Run until SIGTERM/SIGINT; return the exit code."""
    asyncio.run(_simulate(settings, seed=seed, publish_interval_s=publish_interval_s))
    return 0
