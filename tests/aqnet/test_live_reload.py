"""The running daemon follows the registry without a restart, against real TimescaleDB, Mosquitto and a simulated
station: a station registered while it runs is polled within seconds and stops being polled once retired; a
swapped device takes over; a new calibration applies to the next readings; an MQTT microsensor registered while
it runs is decoded (its messages were dead letters before); readings inside a maintenance window, and of a
sensor in the maintenance state, are stored with QC.MAINTENANCE."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from paho.mqtt import publish
from prometheus_client import CollectorRegistry

from aqnet.config import settings_from_dict
from aqnet.daemon import Daemon
from aqnet.localstack import MosquittoBroker, free_port
from ingest.reading import QC
from sensors.sensor import Device, Sensor
from simulators.station import StationServer
from storage.registry import (
    add_maintenance,
    add_sensor,
    calibrate,
    set_lifecycle,
    spec_from_sensor,
    swap_device,
)
from storage.registry.models import CalibrationSpec, DeviceSpec, Location, MaintenanceSpec, SensorSpec
from tests.fixtures.listeners import alert_keys_in, http_listeners

REFRESH_S = 0.3
POLL_S = 0.5
#: "within seconds": a registry change must be running within this (refresh + one poll + one batch, with margin)
WITHIN_S = 5.0
ACTOR = "test-technician"


def _station(port: int, sensor_id: str = "LIVE1") -> Sensor:
    devices = (Device(f"{sensor_id}-nox", sensor_id, "modbus-tcp", "sim-nox", ("no", "no2", "nox"),
                      host="127.0.0.1", port=port, unit_id=2, primary=("no", "no2", "nox")),
               Device(f"{sensor_id}-o3", sensor_id, "modbus-tcp", "sim-o3", ("o3",),
                      host="127.0.0.1", port=port, unit_id=3, primary=("o3",)))
    return Sensor(sensor_id, "Live reload test station", "station", 4.65, -74.08, "Teusaquillo", devices)


def _values(sensor_id: str, variable: str, t: datetime) -> float:
    return {"no": 5.0, "no2": 20.0, "nox": 25.0, "o3": 30.0}[variable]


async def _eventually(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = WITHIN_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.1)


class Harness:
    def __init__(self, daemon: Daemon, url: str, conn: psycopg.AsyncConnection, broker: MosquittoBroker) -> None:
        self.daemon = daemon
        self.url = url
        self.conn = conn
        self.mqtt_port = int(broker.url.rsplit(":", 1)[1])

    async def rows(self, where: str = "true", params: tuple = ()) -> list[dict[str, Any]]:
        async with await psycopg.AsyncConnection.connect(self.url) as conn, conn.cursor(
                row_factory=psycopg.rows.dict_row) as cur:
            await cur.execute(f"SELECT * FROM measurements WHERE {where} ORDER BY time", params)
            return await cur.fetchall()

    async def applied(self, since: int) -> int:
        """Wait until the daemon runs a registry version newer than `since`; return it."""
        async def newer() -> int | None:
            v = self.daemon.follower.version if self.daemon.follower else None
            return v if v is not None and v > since else None
        return await _eventually(newer, f"registry version > {since} applied")

    @property
    def version(self) -> int:
        assert self.daemon.follower is not None and self.daemon.follower.version is not None
        return self.daemon.follower.version

    def publish(self, sensor_id: str, values: dict[str, float], at: datetime) -> None:
        body = json.dumps({"time": at.isoformat(), "values": values})
        publish.single(f"aqnet/{sensor_id}/readings", body, qos=1, hostname="127.0.0.1", port=self.mqtt_port)


@pytest.fixture
async def live(tmp_path: Path, database_url: str, mosquitto: MosquittoBroker) -> AsyncIterator[Harness]:
    settings = settings_from_dict({
        "database": {"url": database_url},
        "mqtt": {"url": mosquitto.url, "client_id": f"aqnet-{tmp_path.name}"},
        "network": {"bundled": False},
        "modbus": {"poll_interval_s": POLL_S, "timeout_s": 0.5},
        "ingest": {"batch_max_age_s": 0.2},
        "http": http_listeners(),
        "storage": {"spool_dir": str(tmp_path / "spool")},
        "alerts": alert_keys_in(tmp_path),
        "registry": {"refresh_s": REFRESH_S},
    })
    daemon = Daemon(settings, registry=CollectorRegistry())
    task = asyncio.create_task(daemon.run(), name="daemon")
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    try:
        await _eventually(lambda: asyncio.sleep(0, daemon.follower is not None
                                                and daemon.mqtt_status().get("state") == "connected"),
                          "the daemon running and subscribed", 30)
        await asyncio.sleep(0.5)  # the subscription is acknowledged just after the connection
        assert daemon.network == []  # nothing configured, nothing registered yet
        yield Harness(daemon, database_url, conn, mosquitto)
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 30)
        await conn.close()


@pytest.fixture
async def station() -> AsyncIterator[StationServer]:
    port = free_port()
    server = StationServer(_station(port), _values, lambda: datetime.now(UTC), port=port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_station_registered_while_running_is_polled_and_stops_once_retired(
        live: Harness, station: StationServer) -> None:
    await asyncio.sleep(2 * REFRESH_S)
    assert sum(station.requests.values()) == 0
    await add_sensor(live.conn, spec_from_sensor(station.sensor), actor=ACTOR)
    started = time.monotonic()
    rows = await _eventually(lambda: live.rows("sensor_id = 'LIVE1'"), "rows of the new station")
    assert time.monotonic() - started < WITHIN_S
    assert {r["device_id"] for r in await _eventually(
        lambda: _both_devices(live), "both devices")} == {"LIVE1-nox", "LIVE1-o3"}
    assert rows[0]["unit"] == "µg/m³" and rows[0]["raw_unit"] == "ppb"
    assert station.requests[2] > 0 and station.requests[3] > 0
    assert [s.id for s in live.daemon.network] == ["LIVE1"]

    version = live.version
    await set_lifecycle(live.conn, "LIVE1", "retired", actor=ACTOR, reason="decommissioned")
    await live.applied(version)
    await asyncio.sleep(POLL_S)  # a read in progress when it was retired may still finish
    station.clear_requests()
    count = len(await live.rows("sensor_id = 'LIVE1'"))
    await asyncio.sleep(4 * POLL_S)
    assert sum(station.requests.values()) == 0, "a retired station is still polled"
    await asyncio.sleep(0.5)  # the last batch, if any, is written
    assert len(await live.rows("sensor_id = 'LIVE1'")) <= count + 4  # at most the read in flight
    assert live.daemon.network == [] and live.daemon.status()["sensors_configured"] == 0


async def _both_devices(live: Harness) -> list[dict[str, Any]]:
    rows = await live.rows("sensor_id = 'LIVE1'")
    return rows if {r["device_id"] for r in rows} == {"LIVE1-nox", "LIVE1-o3"} else []


async def test_swapped_device_takes_over_polling(live: Harness, station: StationServer) -> None:
    await add_sensor(live.conn, spec_from_sensor(station.sensor), actor=ACTOR)
    await _eventually(lambda: _both_devices(live), "rows of both devices")
    version = live.version
    swap_at = datetime.now(UTC)
    new = DeviceSpec(id="LIVE1-o3-sn2041", profile="sim-o3", protocol="modbus-tcp", variables=["o3"],
                     host="127.0.0.1", port=station.port, unit_id=3)
    await swap_device(live.conn, "LIVE1", "LIVE1-o3", new, actor=ACTOR, at=swap_at)
    await live.applied(version)
    await _eventually(lambda: live.rows("device_id = 'LIVE1-o3-sn2041'"), "rows of the new device")
    await asyncio.sleep(POLL_S)
    after = datetime.now(UTC)
    await asyncio.sleep(3 * POLL_S)
    assert await live.rows("device_id = 'LIVE1-o3' AND received_at > %s", (after,)) == []
    assert await live.rows("device_id = 'LIVE1-o3-sn2041' AND received_at > %s", (after,))
    # one series: the sensor's o3 continues under the same sensor id
    o3 = await live.rows("sensor_id = 'LIVE1' AND variable = 'o3'")
    assert {r["device_id"] for r in o3} == {"LIVE1-o3", "LIVE1-o3-sn2041"}


async def test_new_calibration_applies_to_the_next_readings(live: Harness, station: StationServer) -> None:
    await add_sensor(live.conn, spec_from_sensor(station.sensor), actor=ACTOR)
    await _eventually(lambda: live.rows("device_id = 'LIVE1-nox' AND variable = 'no2'"), "no2 rows")
    version = live.version
    valid_from = datetime.now(UTC)
    cal_id = await calibrate(live.conn, "LIVE1-nox", CalibrationSpec(
        variable="no2", kind="linear", coefficients=[2.0, 0.0], unit="ppb", valid_from=valid_from,
        source="zero/span check, test"), actor=ACTOR)
    await live.applied(version)

    async def calibrated() -> list[dict[str, Any]]:
        return await live.rows("device_id = 'LIVE1-nox' AND variable = 'no2' AND calibration_id = %s", (cal_id,))
    rows = await _eventually(calibrated, "a calibrated no2 reading", timeout_s=WITHIN_S)
    before = await live.rows("device_id = 'LIVE1-nox' AND variable = 'no2' AND time < %s", (valid_from,))
    assert before and all(not r["flags"] & QC.CALIBRATED and r["calibration_id"] is None for r in before)
    assert all(r["flags"] & QC.CALIBRATED for r in rows)
    # ppb → µg/m³ is a fixed factor: a gain of 2 on the reported ppb doubles the stored value
    assert rows[0]["raw_value"] == before[0]["raw_value"] == 20.0
    assert rows[0]["value"] == pytest.approx(2 * before[0]["value"])
    uncalibrated = await live.rows("device_id = 'LIVE1-nox' AND variable = 'no' AND time > %s", (valid_from,))
    assert uncalibrated and not any(r["flags"] & QC.CALIBRATED for r in uncalibrated)


def _microsensor_spec(sensor_id: str) -> SensorSpec:
    return SensorSpec(id=sensor_id, name="Live reload test microsensor", kind="microsensor",
                      location=Location(lat=4.61, lon=-74.07, locality="Santa Fe"), lifecycle="active",
                      devices=[DeviceSpec(id=sensor_id, profile="aqnet-json", protocol="mqtt",
                                          variables=["pm25", "pm10"], topic=f"aqnet/{sensor_id}/readings")])


async def test_mqtt_microsensor_registered_while_running_is_decoded(live: Harness) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    live.publish("MSLIVE", {"pm25": 12.0}, t0)  # not registered yet: a dead letter, not a guess

    async def letters() -> list[tuple[str, str]]:
        async with await psycopg.AsyncConnection.connect(live.url) as conn:
            cur = await conn.execute("SELECT reason, sensor_id FROM dead_letters WHERE source = 'mqtt'")
            return await cur.fetchall()
    assert await _eventually(letters, "the unregistered sensor's dead letter") == [("unknown_sensor", "MSLIVE")]

    version = live.version
    await add_sensor(live.conn, _microsensor_spec("MSLIVE"), actor=ACTOR)
    await live.applied(version)
    live.publish("MSLIVE", {"pm25": 12.0, "pm10": 20.0}, t0 + timedelta(seconds=1))
    rows = await _eventually(lambda: live.rows("sensor_id = 'MSLIVE'"), "rows of the new microsensor")
    assert {(r["device_id"], r["variable"], r["raw_value"]) for r in rows} == {("MSLIVE", "pm25", 12.0),
                                                                              ("MSLIVE", "pm10", 20.0)}
    assert len(await letters()) == 1


async def test_readings_in_a_maintenance_window_are_stored_flagged(live: Harness, station: StationServer) -> None:
    await add_sensor(live.conn, spec_from_sensor(station.sensor), actor=ACTOR)
    await add_sensor(live.conn, _microsensor_spec("MSLIVE"), actor=ACTOR)
    await _eventually(lambda: _both_devices(live), "rows of both devices")
    version = live.version
    now = datetime.now(UTC)
    # the ozone analyser is serviced from now for an hour; the microsensor for a past quarter of an hour only
    await add_maintenance(live.conn, "LIVE1", MaintenanceSpec(
        starts_at=now, ends_at=now + timedelta(hours=1), reason="o3 analyser: pump replaced",
        device_id="LIVE1-o3"), actor=ACTOR)
    await add_maintenance(live.conn, "MSLIVE", MaintenanceSpec(
        starts_at=now - timedelta(minutes=30), ends_at=now - timedelta(minutes=15), reason="cleaned the inlet",
        variable="pm25"), actor=ACTOR)
    await live.applied(version)
    await asyncio.sleep(POLL_S)
    since = datetime.now(UTC)

    async def o3_flagged() -> list[dict[str, Any]]:
        return await live.rows("device_id = 'LIVE1-o3' AND time > %s", (since,))
    o3 = await _eventually(o3_flagged, "o3 readings after the window began")
    assert all(r["flags"] & QC.MAINTENANCE for r in o3)
    nox = await live.rows("device_id = 'LIVE1-nox' AND time > %s", (since,))
    assert nox and not any(r["flags"] & QC.MAINTENANCE for r in nox)  # the other analyser is not in maintenance
    earlier = await live.rows("device_id = 'LIVE1-o3' AND time < %s", (now,))
    assert earlier and not any(r["flags"] & QC.MAINTENANCE for r in earlier)

    # a microsensor's readings timed inside its past window (sent late) are flagged, pm25 only
    live.publish("MSLIVE", {"pm25": 12.0, "pm10": 20.0}, now - timedelta(minutes=20))
    live.publish("MSLIVE", {"pm25": 13.0, "pm10": 21.0}, now - timedelta(minutes=10))
    rows = await _eventually(lambda: _len_at_least(live, "sensor_id = 'MSLIVE'", 4), "the microsensor's rows")
    flagged = {(r["variable"], r["raw_value"]): bool(r["flags"] & QC.MAINTENANCE) for r in rows}
    assert flagged == {("pm25", 12.0): True, ("pm10", 20.0): False, ("pm25", 13.0): False, ("pm10", 21.0): False}


async def _len_at_least(live: Harness, where: str, n: int) -> list[dict[str, Any]]:
    rows = await live.rows(where)
    return rows if len(rows) >= n else []


async def test_a_sensor_put_in_maintenance_state_is_flagged_until_active_again(
        live: Harness, station: StationServer) -> None:
    await add_sensor(live.conn, spec_from_sensor(station.sensor), actor=ACTOR)
    await _eventually(lambda: _both_devices(live), "rows of both devices")
    version = live.version
    await set_lifecycle(live.conn, "LIVE1", "maintenance", actor=ACTOR, reason="annual audit")
    version = await live.applied(version)
    await asyncio.sleep(POLL_S)
    since = datetime.now(UTC)
    rows = await _eventually(lambda: live.rows("sensor_id = 'LIVE1' AND time > %s", (since,)),
                             "readings during maintenance")
    assert all(r["flags"] & QC.MAINTENANCE for r in rows)  # still polled and stored, but excluded
    await set_lifecycle(live.conn, "LIVE1", "active", actor=ACTOR, reason="audit done")
    await live.applied(version)
    await asyncio.sleep(POLL_S)
    since = datetime.now(UTC)
    rows = await _eventually(lambda: live.rows("sensor_id = 'LIVE1' AND time > %s", (since,)),
                             "readings after maintenance")
    assert not any(r["flags"] & QC.MAINTENANCE for r in rows)

