"""The Modbus driver against a real simulated station: values within the type's precision, gaps not zeros."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.reading import QC
from sensors.modbus.link import ModbusLink, ModbusReadError
from sensors.modbus.plan import plan_requests
from sensors.modbus.poller import StationPoller, StatusEvent
from sensors.modbus.profile import Profile, VariableSpec, load_profile
from sensors.modbus.read import read_device, resolve_conditions
from sensors.network import ANALYSERS
from sensors.reading import Gap, RawReading
from sensors.sensor import Device, Sensor
from simulators.station import StationServer
from tests.fixtures.stations import simulated_station

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
#: one plausible value per variable, in the unit the sim profiles report
BASE = {"pm10": 48.7, "pm25": 21.3, "no": 12.5, "no2": 27.25, "nox": 39.75, "o3": 33.3, "so2": 3.1,
        "co": 0.84,
        "temperature": 14.6, "temperature_8m": 13.9, "temperature_20m": -2.3, "relativehumidity": 67.4,
        "pressure": 564.21, "wind_speed": 2.7, "wind_direction": 245.3, "precipitation": 0.2,
        "solar_radiation": 812.4, "bc": 2.345678, "bbp": 41.27, "co2": 431.19}


class Clock:
    """A settable aware-UTC clock."""

    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def value_source(sensor_id: str, variable: str, t: datetime) -> float:
    return BASE[variable] + (t - T0).total_seconds() / 600


def station(port: int = 1, code: str = "TST") -> Sensor:
    """A station with every simulated analyser, unit id = position + 1 (as sensors.network builds them)."""
    return simulated_station(code, name="Test station", port=port)


def at_port(sensor: Sensor, port: int) -> Sensor:
    return replace(sensor, devices=tuple(replace(d, port=port) for d in sensor.devices))


def tolerance(spec: VariableSpec, value: float) -> float:
    """Half a step of the device's encoding at `value`."""
    relative = {"float16": 2**-11, "float32": 2**-24, "float64": 2**-53}.get(spec.data_type)
    if relative is not None:
        return abs(value) * relative * 1.01 + 1e-12
    return abs(spec.scale) / 2 + 1e-9


def free_port() -> int:
    """aqnet.localstack's: under pytest-xdist, a port of this worker's own block (tests/conftest.py)."""
    from aqnet.localstack import free_port

    return free_port()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def server(clock: Clock) -> AsyncIterator[StationServer]:
    srv = StationServer(station(), value_source, clock)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def link(server: StationServer) -> AsyncIterator[ModbusLink]:
    lnk = ModbusLink("127.0.0.1", server.port, timeout_s=1.0, backoff_initial_s=0.0, backoff_max_s=0.0)
    try:
        yield lnk
    finally:
        await lnk.close()


def profiles() -> dict[str, Profile]:
    return {name: load_profile(name) for name in ANALYSERS}


@pytest.mark.integration
async def test_every_variable_reads_back_within_its_precision(server: StationServer, link: ModbusLink,
                                                              clock: Clock) -> None:
    sensor = at_port(station(), server.port)
    seen = set()
    for t in (T0, T0 + timedelta(minutes=7)):
        clock.t = t
        for device in sensor.devices:
            profile = load_profile(device.profile)
            result = await read_device(link, device, profile, clock)
            assert isinstance(result, list), result
            assert [r.variable for r in result] == list(device.variables)
            for reading in result:
                spec = profile.variable(reading.variable)
                expected = value_source(sensor.id, reading.variable, t)
                assert reading.value == pytest.approx(expected, abs=tolerance(spec, expected)), reading
                assert reading.unit == spec.unit
                assert reading.time == reading.received_at == t
                assert reading.time_source == "received"
                assert reading.device_status == 0
                assert (reading.sensor_id, reading.device_id) == (sensor.id, device.id)
                seen.add(reading.variable)
    assert seen == set(BASE)


@pytest.mark.integration
async def test_conditions_come_from_the_profile(server: StationServer, link: ModbusLink,
                                                clock: Clock) -> None:
    sensor = at_port(station(), server.port)
    pm = next(d for d in sensor.devices if d.profile == "sim-pm")
    readings = await read_device(link, pm, load_profile("sim-pm"), clock)
    assert isinstance(readings, list) and {r.conditions for r in readings} == {"local"}


@pytest.mark.integration
async def test_status_register_sets_device_status(server: StationServer, link: ModbusLink,
                                                  clock: Clock) -> None:
    sensor = at_port(station(), server.port)
    nox, o3 = sensor.devices[1], sensor.devices[2]
    server.set_status(nox.id, ["maintenance"])
    server.set_status(o3.id, ["device_invalid", "maintenance"])
    nox_readings = await read_device(link, nox, load_profile(nox.profile), clock)
    o3_readings = await read_device(link, o3, load_profile(o3.profile), clock)
    assert isinstance(nox_readings, list) and isinstance(o3_readings, list)
    assert {r.device_status for r in nox_readings} == {int(QC.MAINTENANCE)}
    assert {r.device_status for r in o3_readings} == {int(QC.DEVICE_INVALID | QC.MAINTENANCE)}
    server.set_status(nox.id)
    again = await read_device(link, nox, load_profile(nox.profile), clock)
    assert isinstance(again, list) and {r.device_status for r in again} == {0}


@pytest.mark.integration
async def test_gap_not_zero_when_nothing_listens(clock: Clock) -> None:
    port = free_port()
    now = [100.0]
    lnk = ModbusLink("127.0.0.1", port, timeout_s=1.0, backoff_initial_s=2.0, backoff_max_s=8.0,
                     monotonic=lambda: now[0])
    device = at_port(station(), port).devices[0]
    first = await read_device(lnk, device, load_profile("sim-pm"), clock)
    assert isinstance(first, Gap)
    assert (first.reason, first.sensor_id, first.device_id) == ("connection", "TST", device.id)
    assert first.time == T0
    assert "cannot connect" in first.detail and "next attempt in 2.0 s" in first.detail
    second = await read_device(lnk, device, load_profile("sim-pm"), clock)  # inside the backoff: no attempt
    assert isinstance(second, Gap) and "next connect attempt in 2.0 s" in second.detail
    now[0] += 2.0
    third = await read_device(lnk, device, load_profile("sim-pm"), clock)
    assert isinstance(third, Gap) and "next attempt in 4.0 s" in third.detail  # doubled
    await lnk.close()


@pytest.mark.integration
async def test_gap_when_the_station_stops_and_values_when_it_returns(clock: Clock) -> None:
    srv = StationServer(station(), value_source, clock)
    await srv.start()
    port = srv.port
    lnk = ModbusLink("127.0.0.1", port, timeout_s=1.0, backoff_initial_s=0.0, backoff_max_s=0.0)
    device = at_port(station(), port).devices[4]  # sim-co
    profile = load_profile("sim-co")
    try:
        assert isinstance(await read_device(lnk, device, profile, clock), list)
        await srv.stop()
        gap = await read_device(lnk, device, profile, clock)
        assert isinstance(gap, Gap) and gap.reason == "connection", gap
        srv = StationServer(station(), value_source, clock, port=port)
        await srv.start()
        back = await read_device(lnk, device, profile, clock)
        assert isinstance(back, list) and back[0].value == pytest.approx(BASE["co"], rel=1e-6)
    finally:
        await srv.stop()
        await lnk.close()


@pytest.mark.integration
async def test_gap_on_timeout_when_the_gateway_never_answers(clock: Clock) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)
        writer.close()

    gateway = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = gateway.sockets[0].getsockname()[1]
    lnk = ModbusLink("127.0.0.1", port, timeout_s=0.3)
    device = at_port(station(), port).devices[2]
    try:
        gap = await read_device(lnk, device, load_profile("sim-o3"), clock)
        assert isinstance(gap, Gap) and gap.reason == "timeout", gap
        assert "no response within 0.3 s" in gap.detail
    finally:
        await lnk.close()
        gateway.close()
        await gateway.wait_closed()


@pytest.mark.integration
async def test_exception_response_for_an_unknown_unit(server: StationServer, link: ModbusLink) -> None:
    with pytest.raises(ModbusReadError) as info:
        await link.read("input", 0, 2, unit_id=42)
    err = info.value
    assert err.reason == "exception_response" and err.exception_code == 4
    assert str(err).startswith(f"modbus 127.0.0.1:{server.port} unit 42: input 0×2: exception_response:")


@pytest.mark.integration
async def test_exception_response_for_an_unmapped_address(server: StationServer, link: ModbusLink) -> None:
    with pytest.raises(ModbusReadError) as info:
        await link.read("input", 500, 2, unit_id=1)
    assert (info.value.reason, info.value.exception_code) == ("exception_response", 2)
    assert "illegal data address" in str(info.value)


@pytest.mark.integration
async def test_value_the_device_cannot_encode_is_a_gap(clock: Clock) -> None:
    def broken(sensor_id: str, variable: str, t: datetime) -> float:
        return 5000.0 if variable == "temperature" else BASE[variable]  # beyond int16 at scale 0.1

    srv = StationServer(station(), broken, clock)
    await srv.start()
    lnk = ModbusLink("127.0.0.1", srv.port, timeout_s=1.0)
    try:
        met = at_port(station(), srv.port).devices[5]
        gap = await read_device(lnk, met, load_profile("sim-met"), clock)
        assert isinstance(gap, Gap) and gap.reason == "exception_response" and "device failure" in gap.detail
    finally:
        await lnk.close()
        await srv.stop()


@pytest.mark.integration
async def test_nan_values_give_no_reading(clock: Clock) -> None:
    def nan_no2(sensor_id: str, variable: str, t: datetime) -> float:
        return math.nan if variable in ("no2", "o3") else BASE[variable]

    srv = StationServer(station(), nan_no2, clock)
    await srv.start()
    lnk = ModbusLink("127.0.0.1", srv.port, timeout_s=1.0)
    try:
        sensor = at_port(station(), srv.port)
        nox = await read_device(lnk, sensor.devices[1], load_profile("sim-nox"), clock)
        assert isinstance(nox, list) and [r.variable for r in nox] == ["no", "nox"]
        o3 = await read_device(lnk, sensor.devices[2], load_profile("sim-o3"), clock)
        assert isinstance(o3, Gap) and o3.reason == "not_finite"
    finally:
        await lnk.close()
        await srv.stop()


@pytest.mark.integration
async def test_discrete_input_status_bits(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "bits-o3.yaml").write_text("""
model: T-BITS
manufacturer: test
firmware: "1"
source: test profile shaped like a T400 (discrete inputs 19-24)
address_base: 0
variables:
  o3: {table: input, address: 18, data_type: float32, unit: ppb, range: [-5, 10000]}
status:
  table: discrete_input
  address: 19
  bits:
    0: {name: invalid concentration, flag: device_invalid}
    1: {name: zero calibration, flag: maintenance}
    5: {name: system OK, flag: device_invalid, when: clear}
""", encoding="utf-8")
    device = Device(id="B-o3", sensor_id="B", protocol="modbus-tcp", profile="bits-o3", variables=("o3",),
                    host="127.0.0.1", port=1, unit_id=3)
    sensor = Sensor(id="B", name="bits", kind="station", lat=0, lon=0, devices=(device,))
    srv = StationServer(sensor, value_source, clock, profiles_dir=tmp_path)
    await srv.start()
    lnk = ModbusLink("127.0.0.1", srv.port, timeout_s=1.0)
    profile = load_profile("bits-o3", tmp_path)
    dev = replace(device, port=srv.port)
    try:
        assert await lnk.read("discrete_input", 19, 6, 3) == [False, False, False, False, False, True]
        ok = await read_device(lnk, dev, profile, clock)
        assert isinstance(ok, list) and ok[0].device_status == 0
        srv.set_status("B-o3", ["maintenance"])
        assert await lnk.read("discrete_input", 19, 6, 3) == [False, True, False, False, False, True]
        maint = await read_device(lnk, dev, profile, clock)
        assert isinstance(maint, list) and maint[0].device_status == int(QC.MAINTENANCE)
        srv.set_status("B-o3", ["device_invalid"])  # bit 0 set and "system OK" cleared
        assert await lnk.read("discrete_input", 19, 6, 3) == [True, False, False, False, False, False]
    finally:
        await lnk.close()
        await srv.stop()


@pytest.mark.integration
async def test_station_poller_polls_on_its_interval(server: StationServer, clock: Clock) -> None:
    sensor = at_port(station(), server.port)
    lnk = ModbusLink("127.0.0.1", server.port, timeout_s=1.0)
    batches: list[list[RawReading]] = []
    gaps: list[Gap] = []

    async def on_readings(readings: list[RawReading]) -> None:
        batches.append(readings)

    poller = StationPoller(sensor, lnk, profiles(), clock, interval_s=0.05, on_readings=on_readings,
                           on_gap=gaps.append)
    task = asyncio.create_task(poller.run())
    try:
        while len(batches) < 3 * len(sensor.devices):
            await asyncio.sleep(0.01)
    finally:
        await poller.stop()
        await lnk.close()
    assert task.done() and task.exception() is None
    assert not gaps
    assert {b[0].device_id for b in batches} == {d.id for d in sensor.devices}


@pytest.mark.integration
async def test_poller_logs_first_failure_error_repeats_debug_recovery_info(
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    sensor = at_port(station(), port)
    sensor = replace(sensor, devices=sensor.devices[:1])
    lnk = ModbusLink("127.0.0.1", port, timeout_s=1.0, backoff_initial_s=0.0, backoff_max_s=0.0)
    readings: list[list[RawReading]] = []
    gaps: list[Gap] = []
    poller = StationPoller(sensor, {("127.0.0.1", port): lnk}, profiles(), clock, interval_s=30,
                           on_readings=readings.append, on_gap=gaps.append)
    caplog.set_level(logging.DEBUG, logger="sensors.modbus.poller")
    await poller.poll_once()
    await poller.poll_once()
    srv = StationServer(sensor, value_source, clock, port=port)
    await srv.start()
    try:
        await poller.poll_once()
    finally:
        await srv.stop()
        await lnk.close()
    assert [g.reason for g in gaps] == ["connection", "connection"] and len(readings) == 1
    records = [(r.levelno, r.getMessage()) for r in caplog.records
               if r.name == "sensors.modbus.poller" and "backfilled" not in r.getMessage()]
    assert [level for level, _ in records] == [logging.ERROR, logging.DEBUG, logging.INFO]
    first = records[0][1]
    where = f"sensor TST device TST-pm (modbus 127.0.0.1:{port} unit 1)"
    assert first.startswith(f"{where}: connection: input 0×5:")
    assert re.search(r"gap recorded, retry in [0-9.]+ s$", first), first


@pytest.mark.integration
async def test_stop_ends_the_wait_for_the_next_tick_and_the_poller_runs_again(server: StationServer,
                                                                             clock: Clock) -> None:
    sensor = at_port(station(), server.port)
    lnk = ModbusLink("127.0.0.1", server.port, timeout_s=1.0)
    batches: list[list[RawReading]] = []
    poller = StationPoller(sensor, lnk, profiles(), clock, interval_s=3600, on_readings=batches.append,
                           on_gap=lambda g: None)
    try:
        for run in (1, 2):  # a stopped poller can run again, and stop() ends its hour-long wait each time
            task = asyncio.create_task(poller.run())
            while len(batches) < run * len(sensor.devices):
                await asyncio.sleep(0.01)
            await asyncio.wait_for(poller.stop(), timeout=30)
            assert task.done() and task.exception() is None
        assert len(batches) == 2 * len(sensor.devices)  # one poll per device per run, none after stop()
    finally:
        await lnk.close()


@pytest.mark.integration
async def test_poller_cancel_stops_cleanly(server: StationServer, clock: Clock) -> None:
    sensor = at_port(station(), server.port)
    lnk = ModbusLink("127.0.0.1", server.port, timeout_s=1.0)
    poller = StationPoller(sensor, lnk, profiles(), clock, interval_s=10, on_readings=lambda r: None,
                           on_gap=lambda g: None)
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await lnk.close()


def test_poller_refuses_an_incomplete_setup(clock: Clock) -> None:
    sensor = station(port=1502)
    other = ModbusLink("127.0.0.1", 1503)
    noop: Callable[[object], None] = lambda _: None  # noqa: E731
    with pytest.raises(ValueError, match=r"its link at 127\.0\.0\.1:1503"):
        StationPoller(sensor, other, profiles(), clock, interval_s=1, on_readings=noop, on_gap=noop)
    with pytest.raises(ValueError, match=r"TST-pm: profile 'sim-pm' not loaded"):
        StationPoller(sensor, ModbusLink("127.0.0.1", 1502), {}, clock, interval_s=1, on_readings=noop,
                      on_gap=noop)
    with pytest.raises(ValueError, match=r"no ModbusLink for 127\.0\.0\.1:1502"):
        StationPoller(sensor, {}, profiles(), clock, interval_s=1, on_readings=noop, on_gap=noop)


def test_required_conditions_need_the_technician() -> None:
    profile = replace(load_profile("sim-pm"), conditions="required")
    device = station().devices[0]
    with pytest.raises(ValueError, match="conditions: required: state local or reference"):
        resolve_conditions(device, profile)
    assert resolve_conditions(device, profile, "reference") == "reference"
    assert resolve_conditions(device, load_profile("sim-pm")) == "local"


# ---- coalescing, cadences, faults, status events, backfill -------------------------------------------------

#: requests one poll of each simulated analyser needs: contiguous registers of one table are one read
#: (sensors/profiles/sim-*.yaml: e.g. sim-nox reads input 0..5 and its status at holding 100, sim-co its value at
#: holding 2100 and its status at 2200, sim-pm its two floats and status at input 0..4)
MIN_REQUESTS = {"sim-pm": 1, "sim-nox": 2, "sim-o3": 1, "sim-so2": 2, "sim-co": 2, "sim-met": 2, "sim-aeth": 1,
                "sim-co2": 1}


@pytest.mark.integration
async def test_one_poll_sends_the_fewest_requests_the_plan_allows(server: StationServer, clock: Clock) -> None:
    sensor = at_port(station(), server.port)
    lnk = ModbusLink("127.0.0.1", server.port, timeout_s=1.0)
    poller = StationPoller(sensor, lnk, profiles(), clock, interval_s=10, on_readings=lambda r: None,
                           on_gap=lambda g: None)
    try:
        server.clear_requests()
        results = await poller.poll_once()
        assert all(isinstance(r, list) for r in results)
        seen = {d.profile: server.requests[d.unit_id or 0] for d in sensor.devices}
        assert seen == MIN_REQUESTS
        assert seen == {d.profile: len(plan_requests(load_profile(d.profile), d.variables)) for d in sensor.devices}
        server.clear_requests()
        await poller.poll_once()  # no outage: the history rings are never read
        assert sum(server.requests.values()) == sum(MIN_REQUESTS.values())
        assert not [r for r in server.recent_requests if r.address >= 5000]
    finally:
        await lnk.close()


@pytest.mark.integration
async def test_each_device_polls_on_its_own_interval(server: StationServer, clock: Clock) -> None:
    sensor = at_port(station(), server.port)
    pm, co = sensor.devices[0], sensor.devices[4]
    sensor = replace(sensor, devices=(pm, co))
    lnk = ModbusLink("127.0.0.1", server.port, timeout_s=1.0)
    poller = StationPoller(sensor, lnk, profiles(), clock, interval_s=0.3, intervals={pm.id: 0.1},
                           on_readings=lambda r: None, on_gap=lambda g: None)
    assert poller.intervals == {pm.id: 0.1, co.id: 0.3}
    server.clear_requests()
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(1.45)
    await poller.stop()
    await lnk.close()
    assert task.done() and task.exception() is None
    pm_polls = server.requests[pm.unit_id or 0] / MIN_REQUESTS["sim-pm"]
    co_polls = server.requests[co.unit_id or 0] / MIN_REQUESTS["sim-co"]
    assert 13 <= pm_polls <= 16 and 4 <= co_polls <= 6, (pm_polls, co_polls)


def test_intervals_must_name_devices_and_be_positive(clock: Clock) -> None:
    sensor = station(port=1502)
    lnk = ModbusLink("127.0.0.1", 1502)
    with pytest.raises(ValueError, match=r"intervals: no Modbus device NOPE in this sensor"):
        StationPoller(sensor, lnk, profiles(), clock, interval_s=1, intervals={"NOPE": 1},
                      on_readings=print, on_gap=print)
    with pytest.raises(ValueError, match=r"device TST-pm: interval: expected > 0, got 0"):
        StationPoller(sensor, lnk, profiles(), clock, interval_s=1, intervals={"TST-pm": 0},
                      on_readings=print, on_gap=print)
    with pytest.raises(ValueError, match=r"jitter: expected 0 <= jitter < 1, got 1.5"):
        StationPoller(sensor, lnk, profiles(), clock, interval_s=1, jitter=1.5, on_readings=print, on_gap=print)


@pytest.mark.integration
async def test_a_hung_device_never_delays_other_stations(clock: Clock) -> None:
    """Station A's NOx analyser hangs; station B (another link) keeps its 0.2 s cadence to within 60 ms."""
    interval = 0.2
    servers = [StationServer(station(code=c), value_source, clock) for c in ("AAA", "BBB")]
    links: list[ModbusLink] = []
    times: dict[str, list[float]] = {}
    events: list[StatusEvent] = []
    loop = asyncio.get_running_loop()

    def on_readings(readings: list[RawReading]) -> None:
        times.setdefault(readings[0].device_id, []).append(loop.time())

    pollers = []
    try:
        for srv in servers:
            await srv.start()
            sensor = at_port(station(code=srv.sensor.id), srv.port)
            sensor = replace(sensor, devices=sensor.devices[:3])  # pm, nox, o3
            lnk = ModbusLink("127.0.0.1", srv.port, timeout_s=0.5, backoff_initial_s=0.0, backoff_max_s=0.0)
            links.append(lnk)
            pollers.append(StationPoller(sensor, lnk, profiles(), clock, interval_s=interval,
                                         on_readings=on_readings, on_gap=lambda g: None, on_status=events.append,
                                         retry_initial_s=interval, rng=random.Random(4)))
        servers[0].set_fault("AAA-nox", "hang")
        tasks = [asyncio.create_task(p.run()) for p in pollers]
        await asyncio.sleep(2.5)
        for p in pollers:
            await p.stop()
        assert all(t.done() and t.exception() is None for t in tasks)
    finally:
        for lnk in links:
            await lnk.close()
        for srv in servers:
            await srv.stop()
    for device in ("BBB-pm", "BBB-nox", "BBB-o3"):
        stamps = times[device]
        steps = [b - a for a, b in itertools.pairwise(stamps)]
        assert len(stamps) >= 12, (device, len(stamps))
        assert all(abs(s - interval) < 0.06 for s in steps), (device, steps)
    assert "AAA-nox" not in times
    assert len(times["AAA-pm"]) >= 3  # the hung analyser's neighbours on its link pay a timeout, not a stall
    hung = [e for e in events if e.device_id == "AAA-nox"]
    assert hung and all(e.reason == "timeout" for e in hung)
    assert [e.first_failure for e in hung] == [True] + [False] * (len(hung) - 1)
    first = hung[0]
    # the plan reads the status (holding 100) before the values (input 0..5): the first request is the one that hangs
    assert (first.sensor_id, first.unit_id, first.table, first.address, first.count) == ("AAA", 2, "holding", 100, 1)
    assert (first.host, first.port) == ("127.0.0.1", servers[0].port) and not first.recovered
    assert not [e for e in events if e.sensor_id == "BBB"]


@pytest.mark.integration
async def test_status_events_for_each_failure_and_the_recovery(server: StationServer, clock: Clock,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    sensor = at_port(station(), server.port)
    sensor = replace(sensor, devices=(sensor.devices[5],))  # sim-met
    lnk = ModbusLink("127.0.0.1", server.port, timeout_s=1.0)
    events: list[StatusEvent] = []
    poller = StationPoller(sensor, lnk, profiles(), clock, interval_s=60, on_readings=lambda r: None,
                           on_gap=lambda g: None, on_status=events.append)
    caplog.set_level(logging.DEBUG, logger="sensors.modbus.poller")
    try:
        await poller.poll_once()
        server.set_fault("TST-met", "exception", code=4)
        await poller.poll_once()
        await poller.poll_once()
        server.set_fault("TST-met", None)
        await poller.poll_once()
    finally:
        await lnk.close()
    assert [(e.reason, e.first_failure, e.recovered) for e in events] == [
        ("exception_response", True, False), ("exception_response", False, False), ("recovered", False, True)]
    assert (events[0].table, events[0].address, events[0].count) == ("holding", 0, 1)  # status, read first
    assert "exception code 4" in events[0].detail and events[0].endpoint == f"127.0.0.1:{server.port}"
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "sensors.modbus.poller"
             and "backfilled" not in r.getMessage()]
    assert [level for level, _ in lines] == [logging.ERROR, logging.DEBUG, logging.INFO]
    assert lines[0][1].startswith(f"sensor TST device TST-met (modbus 127.0.0.1:{server.port} unit 6): "
                                  "exception_response: holding 0×1: exception code 4")


@pytest.mark.integration
async def test_retries_back_off_exponentially_with_jitter_within_the_interval(clock: Clock) -> None:
    port = free_port()  # nothing listens: every read fails at once
    sensor = replace(at_port(station(), port), devices=(at_port(station(), port).devices[0],))
    lnk = ModbusLink("127.0.0.1", port, timeout_s=0.5, backoff_initial_s=0.0, backoff_max_s=0.0)
    loop = asyncio.get_running_loop()
    stamps: list[float] = []
    poller = StationPoller(sensor, lnk, profiles(), clock, interval_s=0.8, on_readings=lambda r: None,
                           on_gap=lambda g: stamps.append(loop.time()), retry_initial_s=0.05, jitter=0.2,
                           rng=random.Random(7))
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(2.0)
    await poller.stop()
    await lnk.close()
    assert task.done()
    steps = [b - a for a, b in itertools.pairwise(stamps)]
    # 0.05, 0.1, 0.2, 0.4 (each ±20 %), then the retry is due after the next tick: the tick comes first
    for step, expected in zip(steps[:4], (0.05, 0.1, 0.2, 0.4), strict=True):
        assert expected * 0.8 - 0.01 <= step <= expected * 1.2 + 0.03, steps
    assert len({round(s / e, 3) for s, e in zip(steps[:4], (0.05, 0.1, 0.2, 0.4), strict=True)}) > 1  # jittered
    assert all(s <= 0.8 + 0.05 for s in steps), steps


@pytest.mark.integration
async def test_backfill_emits_what_the_outage_missed_once(clock: Clock) -> None:
    sensor = station()
    nox = replace(sensor.devices[1])
    srv = StationServer(replace(sensor, devices=(nox,)), value_source, clock, history_period_s=60)
    await srv.start()
    device = replace(nox, port=srv.port)
    lnk = ModbusLink("127.0.0.1", srv.port, timeout_s=0.5, backoff_initial_s=0.0, backoff_max_s=0.0)
    emitted: list[RawReading] = []
    poller = StationPoller(replace(sensor, devices=(device,)), lnk, profiles(), clock, interval_s=60,
                           on_readings=emitted.extend, on_gap=lambda g: None)
    up = {0, 1, 2, 6, 7, 9, 10}  # down at minutes 3-5 and 8
    try:
        for minute in range(11):
            clock.t = T0 + timedelta(minutes=minute)
            await srv.set_offline(minute not in up)
            if minute == 4:
                srv.set_status(device.id, ["maintenance"])
            if minute == 6:
                srv.set_status(device.id, [])
            await poller.poll_once()
    finally:
        await lnk.close()
        await srv.stop()
    keys = [(r.variable, r.time) for r in emitted]
    assert len(keys) == len(set(keys)), "a reading was emitted twice"
    for variable in ("no", "no2", "nox"):
        times = sorted(t for v, t in keys if v == variable)
        assert times == [T0 + timedelta(minutes=m) for m in range(11)], variable
    backfilled = {r.time: r for r in emitted if r.time_source == "device" and r.variable == "no2"}
    assert sorted(backfilled) == [T0 + timedelta(minutes=m) for m in (3, 4, 5, 8)]
    assert [backfilled[T0 + timedelta(minutes=m)].device_status for m in (3, 4, 5, 8)] == [
        0, int(QC.MAINTENANCE), int(QC.MAINTENANCE), 0]
    for r in backfilled.values():
        assert r.value == pytest.approx(value_source("TST", "no2", r.time), rel=1e-6)
        assert r.received_at > r.time and r.unit == "ppb"


@pytest.mark.integration
async def test_readings_refused_by_a_full_ingest_are_backfilled_once_it_accepts(clock: Clock) -> None:
    sensor = station()
    nox = replace(sensor.devices[1])
    srv = StationServer(replace(sensor, devices=(nox,)), value_source, clock, history_period_s=60)
    await srv.start()
    device = replace(nox, port=srv.port)
    lnk = ModbusLink("127.0.0.1", srv.port, timeout_s=0.5, backoff_initial_s=0.0, backoff_max_s=0.0)
    accepted: list[RawReading] = []
    full = {3, 4, 5}  # ingest refuses the readings of minutes 3-5 (spool full)

    def on_readings(readings: list[RawReading]) -> bool:
        if clock.t in {T0 + timedelta(minutes=m) for m in full} and readings[0].time_source == "received":
            return False
        accepted.extend(readings)
        return True

    poller = StationPoller(replace(sensor, devices=(device,)), lnk, profiles(), clock, interval_s=60,
                           on_readings=on_readings, on_gap=lambda g: None)
    try:
        for minute in range(8):
            clock.t = T0 + timedelta(minutes=minute)
            await poller.poll_once()
    finally:
        await lnk.close()
        await srv.stop()
    times = sorted(r.time for r in accepted if r.variable == "no2")
    assert times == [T0 + timedelta(minutes=m) for m in range(8)]  # no gap, no duplicate
    assert sorted(r.time for r in accepted if r.variable == "no2" and r.time_source == "device") == [
        T0 + timedelta(minutes=m) for m in (3, 4, 5)]


@pytest.mark.integration
async def test_backfill_is_skipped_when_disabled_or_without_history(clock: Clock, tmp_path: Path) -> None:
    sensor = station()
    nox = sensor.devices[1]
    srv = StationServer(replace(sensor, devices=(nox,)), value_source, clock)
    await srv.start()
    device = replace(nox, port=srv.port)
    lnk = ModbusLink("127.0.0.1", srv.port, timeout_s=0.5, backoff_initial_s=0.0, backoff_max_s=0.0)
    emitted: list[RawReading] = []
    poller = StationPoller(replace(sensor, devices=(device,)), lnk, profiles(), clock, interval_s=60,
                           on_readings=emitted.extend, on_gap=lambda g: None, backfill=False)
    try:
        for minute, online in enumerate((True, False, False, True)):
            clock.t = T0 + timedelta(minutes=minute)
            await srv.set_offline(not online)
            await poller.poll_once()
    finally:
        await lnk.close()
        await srv.stop()
    assert sorted({r.time for r in emitted}) == [T0, T0 + timedelta(minutes=3)]


def test_links_may_come_from_a_callable(clock: Clock) -> None:
    sensor = station(port=1502)
    lnk = ModbusLink("127.0.0.1", 1502)
    asked: list[str] = []

    def link_for(device: Device) -> ModbusLink:
        asked.append(device.id)
        return lnk

    poller = StationPoller(sensor, link_for, profiles(), clock, interval_s=10, on_readings=print, on_gap=print)
    assert asked == [d.id for d in sensor.devices]
    assert poller.intervals == {d.id: 10 for d in sensor.devices}


@pytest.mark.integration
async def test_the_purge_after_a_status_bit_check_keeps_readings_in_maintenance(server: StationServer,
                                                                                 clock: Clock) -> None:
    """Issue 24: a purge time after each check during which readings are still excluded — for an analyser that
    reports its check with a status bit, the `zero_span.status_purge_min` of its device after the bit clears."""
    from sensors.modbus.decode import DEVICE_STATUS_BITS
    from sensors.zero_span import StatusPurge

    sensor = at_port(station(), server.port)
    nox = sensor.devices[1]
    got: list[list[RawReading]] = []
    lnk = ModbusLink("127.0.0.1", server.port, timeout_s=1.0)
    poller = StationPoller(sensor, lnk, profiles(), clock, interval_s=60, on_readings=got.append,
                           on_gap=lambda g: None,
                           status_purge=StatusPurge({nox.id: 600}, DEVICE_STATUS_BITS["maintenance"]))

    async def nox_status_at(t: datetime) -> int:
        clock.t = t
        got.clear()
        await poller.poll_once()
        (readings,) = [r for r in got if r and r[0].device_id == nox.id]
        others = [r for r in got if r and r[0].device_id != nox.id]
        assert all(x.device_status == 0 for batch in others for x in batch)  # no purge configured for them
        (status,) = {x.device_status for x in readings}
        return status

    try:
        server.set_status(nox.id, ["maintenance"])  # the analyser runs its check
        assert await nox_status_at(T0) == int(QC.MAINTENANCE)
        server.set_status(nox.id)  # the bit clears at T0 + 1 min: the purge runs 10 min from there
        assert await nox_status_at(T0 + timedelta(minutes=1)) == int(QC.MAINTENANCE)
        assert await nox_status_at(T0 + timedelta(minutes=10, seconds=59)) == int(QC.MAINTENANCE)
        assert await nox_status_at(T0 + timedelta(minutes=11)) == 0
    finally:
        await lnk.close()
