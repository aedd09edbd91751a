"""The whole simulated network of a scenario, on one injected clock: station servers, RTU buses, microsensors,
faults. I/O.

`SimulatedNetwork` serves every station of a network over Modbus TCP at its devices' host:port (a
`simulators.station.StationServer` each), or over Modbus RTU on a serial port for the stations given in
`rtu_ports` (a `simulators.rtu.RtuStationServer`, in tests and `aqnet up` the server end of a
`simulators.rtu.PtyPair`), and runs the microsensor fleet (`simulators.microsensor`). Values come from
`simulators.signals.CitySignals` through the scenario's `FaultPlan` (`value`: flatline, spike, negative, a
variable's dropout as a NaN the driver skips), at the shared clock's simulated time. A fault task applies the
station faults in force (`FaultPlan.station`): a station's dropout takes it offline, `modbus_hang` and
`modbus_exception` make one analyser hang or answer an exception, `word_order` serves its 32-bit values with
swapped words; it wakes at each fault's start and end (in simulated time) and at least every `fault_check_s`.

`synthetic_network(n_stations, n_microsensors)` builds the scale mode's SYN-S0001… stations (every analyser of
`sensors.network.ANALYSERS`) and SYN-M0001… microsensors (aqnet JSON), placed deterministically over the city.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sensors.clock import Clock
from sensors.modbus.profile import load_profile
from sensors.network import ANALYSERS, topic_for
from sensors.sensor import MODBUS_PROTOCOLS, Device, Sensor
from simulators.analyser_checks import DriftingAnalyser
from simulators.faults import FaultPlan, StationFaults
from simulators.rtu import RtuStationServer
from simulators.signals import CitySignals
from simulators.station import StationServer

__all__ = ["SimulatedNetwork", "synthetic_network"]

log = logging.getLogger(__name__)

#: the synthetic sensors are placed in this box (the urban part of Bogotá: reference.json's stations span it)
_LAT = (4.53, 4.78)
_LON = (-74.17, -74.03)
#: what a synthetic microsensor measures (the variables of reference.json's microsensors)
_MICROSENSOR_VARIABLES = ("pm25", "pm10", "temperature", "relativehumidity")


def synthetic_network(n_stations: int, n_microsensors: int, *, host: str = "127.0.0.1",
                      ports: Mapping[str, int] | None = None, seed: int = 1) -> list[Sensor]:
    """N synthetic stations (SYN-S0001…, every simulated analyser behind one Modbus TCP gateway each, at
    host:`ports[id]`, 502 when not given) and M microsensors (SYN-M0001…, aqnet JSON on `aqnet/<id>/readings`)."""
    if n_stations < 0 or n_microsensors < 0:
        raise ValueError(f"synthetic_network: expected counts >= 0, got {n_stations}, {n_microsensors}")
    if n_stations > 9999 or n_microsensors > 9999:
        raise ValueError("synthetic_network: at most 9999 stations and 9999 microsensors (4-digit ids)")
    rng = random.Random(f"aqnet-synthetic|{seed}")
    ports = ports or {}
    out: list[Sensor] = []
    for i in range(1, n_stations + 1):
        sid = f"SYN-S{i:04d}"
        port = ports.get(sid, 502)
        devices = tuple(Device(id=f"{sid}-{profile.removeprefix('sim-')}", sensor_id=sid, protocol="modbus-tcp",
                               profile=profile, variables=variables, host=host, port=port, unit_id=unit_id,
                               primary=variables)
                        for unit_id, (profile, variables) in enumerate(ANALYSERS.items(), start=1))
        out.append(Sensor(id=sid, name=f"Synthetic station {i}", kind="station", lat=round(rng.uniform(*_LAT), 6),
                          lon=round(rng.uniform(*_LON), 6), locality="Synthetic", devices=devices))
    for i in range(1, n_microsensors + 1):
        sid = f"SYN-M{i:04d}"
        device = Device(id=sid, sensor_id=sid, protocol="mqtt", profile="aqnet-json",
                        variables=_MICROSENSOR_VARIABLES, topic=topic_for(sid), primary=_MICROSENSOR_VARIABLES)
        out.append(Sensor(id=sid, name=f"Synthetic microsensor {i}", kind="microsensor",
                          lat=round(rng.uniform(*_LAT), 6), lon=round(rng.uniform(*_LON), 6), locality="Synthetic",
                          devices=(device,)))
    return out


class SimulatedNetwork:
    """Every station and microsensor of `network`, simulated on `clock`.

    Args:
        network: the sensors to simulate (stations are served at their devices' host:port).
        signals: the city's values (with the scenario's episodes).
        clock: the shared injected clock (`sensors.clock.SimClock` under acceleration).
        plan: the scenario's faults, in simulated time.
        real_seconds: simulated seconds → real seconds to sleep (`SimClock.real_seconds`); None: the same.
        rtu_ports: station id → serial port to serve that station on, over Modbus RTU (instead of TCP).
        fleet: a factory (microsensors, value source) → the microsensor fleet to run, or None for no fleet
            (the fleet is NET's `simulators.microsensor.MicrosensorFleet`; `aqnet.simulate` builds it).
        history_period_s: the simulated loggers' logging period, in simulated seconds.
        analysers: analysers that run scheduled zero/span checks and drift
            (`simulators.analyser_checks.DriftingAnalyser`; each schedule's unit must be its profile's unit).
        fault_check_s: the fault task wakes at least this often (real seconds).
    """

    def __init__(self, network: Sequence[Sensor], signals: CitySignals, clock: Clock, *,
                 plan: FaultPlan | None = None, real_seconds: Callable[[float], float] | None = None,
                 rtu_ports: Mapping[str, str] | None = None,
                 fleet: Callable[[Sequence[Sensor]], Any] | None = None,
                 history_period_s: float = 60.0, fault_check_s: float = 1.0,
                 analysers: Sequence[DriftingAnalyser] = ()) -> None:
        self.network = list(network)
        self.signals = signals
        self.clock = clock
        self.plan = plan or FaultPlan()
        self._real_seconds = real_seconds or (lambda s: s)
        self.fault_check_s = fault_check_s
        self._analysers = {(a.schedule.sensor_id, a.schedule.variable): a for a in analysers}
        self.stations: dict[str, StationServer] = {}
        self.rtu: dict[str, RtuStationServer] = {}
        rtu_ports = dict(rtu_ports or {})
        profiles = {name: load_profile(name) for name in sorted({d.profile for s in self.network for d in s.devices
                                                                   if d.protocol in MODBUS_PROTOCOLS})}
        for sensor in self.network:
            modbus = [d for d in sensor.devices if d.protocol in MODBUS_PROTOCOLS]
            if sensor.kind != "station" or not modbus:
                continue
            if sensor.id in rtu_ports:
                self.rtu[sensor.id] = RtuStationServer(sensor, self.value, clock, serial_port=rtu_ports.pop(sensor.id))
                continue
            host, port = modbus[0].host or "127.0.0.1", modbus[0].port or 0
            self.stations[sensor.id] = StationServer(sensor, self.value, clock, host=host, port=port,
                                                     history_period_s=history_period_s, profiles=profiles)
        if rtu_ports:
            raise ValueError(f"rtu_ports: no station {', '.join(sorted(rtu_ports))} in the network")
        self.microsensors = [s for s in self.network if s.kind == "microsensor"]
        self.fleet = fleet(self.microsensors) if fleet is not None and self.microsensors else None
        self._applied: dict[str, StationFaults] = {}
        self._tasks: list[asyncio.Task[Any]] = []

    def value(self, sensor_id: str, variable: str, t: datetime) -> float:
        """The value a station's analyser reports at `t`, in its profile's unit, with the value faults in force
        (NaN: no value, which the driver skips)."""
        analyser = self._analysers.get((sensor_id, variable))

        def reported(at: datetime) -> float:
            ambient = self.signals.value(sensor_id, variable, at)
            return ambient if analyser is None else analyser.reading(ambient, at)  # its checks and drift

        value = self.plan.value(sensor_id, variable, t, reported, station=True)
        return math.nan if value is None else value

    async def apply_faults(self, now: datetime | None = None) -> None:
        """Put every station server in the fault state the plan says for `now` (default: the clock's now)."""
        now = now or self.clock()
        for sid, server in self.stations.items():
            state = self.plan.station(sid, server.device_ids, now)
            if self._applied.get(sid) == state:
                continue
            if state.offline != server.offline:
                await server.set_offline(state.offline)
                log.info("fault: station %s %s at %s", sid, "offline" if state.offline else "back online",
                         now.isoformat())
            for device in server.device_ids:
                if device in state.hang:
                    server.set_fault(device, "hang")
                elif device in state.exception:
                    server.set_fault(device, "exception", code=state.exception[device])
                else:
                    server.set_fault(device, None)
                server.set_word_order(device, device in state.swapped)
            self._applied[sid] = state
        for sid, rtu in self.rtu.items():
            state = self.plan.station(sid, rtu.device_ids, now)
            if self._applied.get(sid) == state:
                continue
            for device in rtu.device_ids:
                # on a bus, an offline station and a hung analyser are the same: nobody answers
                rtu.set_silent(device, state.offline or device in state.hang)
                rtu.set_fault(device, "exception" if device in state.exception else None,
                              code=state.exception.get(device, 4))
                rtu.set_word_order(device, device in state.swapped)
            self._applied[sid] = state

    async def start(self) -> None:
        """Start every server, then apply the faults in force now."""
        for server in self.stations.values():
            await server.start()
        for rtu in self.rtu.values():
            await rtu.start()
        await self.apply_faults()
        log.info("simulated network: %d Modbus TCP station(s), %d RTU station(s), %d microsensor(s)",
                 len(self.stations), len(self.rtu), len(self.microsensors))

    async def run(self) -> None:
        """Start, then run the faults and the fleet until cancelled; stop everything on the way out."""
        try:
            await self.start()
            self._tasks = [asyncio.create_task(self._fault_loop(), name="sim-faults")]
            if self.fleet is not None:
                self._tasks.append(asyncio.create_task(self.fleet.run(), name="sim-fleet"))
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def _fault_loop(self) -> None:
        while True:
            now = self.clock()
            await self.apply_faults(now)
            wait = self.fault_check_s
            change = self.plan.next_change(now)
            if change is not None:
                wait = min(wait, self._real_seconds((change - now).total_seconds()))
            await asyncio.sleep(max(0.005, wait))

    async def stop(self) -> None:
        """Stop the fault task, the fleet and every server."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for server in self.stations.values():
            with contextlib.suppress(Exception):
                await server.stop()
        for rtu in self.rtu.values():
            with contextlib.suppress(Exception):
                await rtu.stop()
