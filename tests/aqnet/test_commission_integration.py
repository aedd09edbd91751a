"""`aqnet sensors test ID` against real TimescaleDB, a simulated Modbus station and Mosquitto.

The command runs as a child process (`python -m aqnet`), as a technician runs it, while the test's event loop
serves the simulated station; the library call (`check_sensor`) is exercised directly for the finer cases.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from aqnet.commission import MqttAccess, check_sensor
from aqnet.localstack import MosquittoBroker, free_port
from ingest.reading import QC
from sensors.mqtt.client import MqttPublisherClient
from sensors.network import bundled_network
from sensors.sensor import Sensor
from simulators.payloads import aqnet_json_payload
from simulators.signals import CitySignals
from simulators.station import StationServer
from storage.commission_store import sensor_of
from storage.registry import add_sensor, audit_log, calibrate, get_sensor, set_lifecycle, spec_from_sensor
from storage.registry.models import CalibrationSpec, SensorSpec

TZ = ZoneInfo("America/Bogota")


def now() -> datetime:
    return datetime.now(UTC)


def bundled(sensor_id: str) -> Sensor:
    return next(s for s in bundled_network() if s.id == sensor_id)


def at_port(spec: SensorSpec, port: int, lifecycle: str = "commissioning") -> SensorSpec:
    """The spec with every Modbus device behind 127.0.0.1:port."""
    devices = [d.model_copy(update={"host": "127.0.0.1", "port": port}) if d.protocol == "modbus-tcp" else d
               for d in spec.devices]
    return spec.model_copy(update={"devices": devices, "lifecycle": lifecycle})


async def register(url: str, spec: SensorSpec) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await add_sensor(conn, spec, actor="technician")


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


async def aqnet(*args: str, timeout_s: float = 120) -> Run:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "aqnet", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def station() -> AsyncIterator[StationServer]:
    """MOV (PM, CO and a weather station) served on a free port with the city signals of now."""
    server = StationServer(bundled("MOV"), CitySignals(3).value, now)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_healthy_station_passes_with_raw_and_normalised_values(database_url: str,
                                                                    station: StationServer) -> None:
    await register(database_url, at_port(spec_from_sensor(bundled("MOV")), station.port))
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await calibrate(conn, "MOV-co", CalibrationSpec(variable="co", kind="linear", coefficients=[2.0, 0.0],
                                                        unit="ppm", valid_from=now() - timedelta(days=1)),
                        actor="technician")
    run = await aqnet("sensors", "test", "MOV", "--url", database_url, "--json")
    assert run.code == 0, run.err
    doc = run.json()
    assert doc["verdict"] == "PASS", doc["findings"]
    assert doc["lifecycle"] == "commissioning"
    devices = {d["device_id"]: d for d in doc["devices"]}
    assert set(devices) == {"MOV-pm", "MOV-co", "MOV-met"}
    assert all(d["status"] == "ok" and not d["missing"] for d in devices.values())
    assert {r["variable"] for r in devices["MOV-met"]["readings"]} == set(bundled("MOV").devices[2].variables)
    co = devices["MOV-co"]["readings"][0]
    assert (co["raw_unit"], co["unit"]) == ("ppm", "µg/m³")
    assert "CALIBRATED" in co["flag_names"] and co["calibration_id"] is not None
    # 2 × the reported ppm, at the reference molar volume (CO 28.010 g/mol, 24.45 L/mol at 25 °C, 1 atm)
    assert co["value"] == pytest.approx(2 * co["raw_value"] * 1000 * 28.010 / 24.45, rel=2e-3)
    pm = next(r for r in devices["MOV-pm"]["readings"] if r["variable"] == "pm25")
    assert pm["raw_unit"] in ("ug/m3", "µg/m³") and pm["unit"] == "µg/m³"
    assert pm["conditions_source"] == "own"  # corrected with the station's own T and P, read in the same pass
    assert all("RECEIVE_TIME" in r["flag_names"] for d in devices.values() for r in d["readings"])
    # the table for people: every variable with raw and normalised values, and the verdict last
    table = await aqnet("sensors", "test", "MOV", "--url", database_url)
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[-1] == "verdict: PASS"
    assert any(line.split()[:2] == ["MOV-co", "co"] and "ppm" in line and "µg/m³" in line for line in lines)


async def test_unreachable_endpoint_fails_without_a_crash(database_url: str, station: StationServer) -> None:
    await register(database_url, at_port(spec_from_sensor(bundled("MOV")), free_port()))
    run = await aqnet("sensors", "test", "MOV", "--url", database_url, "--timeout", "1")
    assert run.code == 1
    assert "Traceback" not in run.err
    assert run.out.splitlines()[-1] == "verdict: FAIL"
    assert "FAIL  MOV-pm: unreachable: connection" in run.out
    doc = (await aqnet("sensors", "test", "MOV", "--url", database_url, "--timeout", "1", "--json")).json()
    assert {d["status"] for d in doc["devices"]} == {"unreachable"}


async def test_a_device_reporting_invalid_data_fails_and_one_in_maintenance_warns(
        database_url: str, station: StationServer) -> None:
    await register(database_url, at_port(spec_from_sensor(bundled("MOV")), station.port))
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        sensor = sensor_of(await get_sensor(conn, "MOV"))
    station.set_status("MOV-pm", ["maintenance"])
    report = await check_sensor(sensor, lifecycle="commissioning", clock=now)
    assert report.verdict == "WARN"
    assert {f.message.split(":")[-1].strip() for f in report.findings} == {"MAINTENANCE"}
    station.set_status("MOV-pm", ["device_invalid"])
    report = await check_sensor(sensor, lifecycle="commissioning", clock=now)
    assert report.verdict == "FAIL"
    pm = next(d for d in report.devices if d.device_id == "MOV-pm")
    assert pm.status == "ok" and all(r.flags & QC.DEVICE_INVALID for r in pm.readings)
    station.set_status("MOV-pm", [])
    station.set_fault("MOV-co", "exception")
    report = await check_sensor(sensor, lifecycle="commissioning", clock=now)
    co = next(d for d in report.devices if d.device_id == "MOV-co")
    assert (report.verdict, co.status) == ("FAIL", "failed")
    assert "exception_response" in co.detail


async def test_unknown_and_retired_sensors_are_refused(database_url: str) -> None:
    run = await aqnet("sensors", "test", "NOPE", "--url", database_url)
    assert run.code == 1 and "sensor NOPE: not in the registry" in run.err
    await register(database_url, spec_from_sensor(bundled("MS05")))
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await set_lifecycle(conn, "MS05", "retired", actor="technician", reason="stolen")
    run = await aqnet("sensors", "test", "MS05", "--url", database_url)
    assert run.code == 1 and "sensor MS05 is retired" in run.err and "Traceback" not in run.err


async def publish_until(stop: asyncio.Event, url: str, topic: str, payload: bytes) -> None:
    client = MqttPublisherClient(url, client_id=f"test-pub-{topic.replace('/', '-')}")
    client.start()
    try:
        while not stop.is_set():
            client.publish(topic, payload)
            await asyncio.sleep(0.3)
    finally:
        client.stop()


async def test_microsensor_message_passes(database_url: str, mosquitto: MosquittoBroker) -> None:
    ms = bundled("MS01")
    await register(database_url, spec_from_sensor(ms).model_copy(update={"lifecycle": "commissioning"}))
    payload = aqnet_json_payload(now(), {"pm25": 14.2, "pm10": 22.5, "temperature": 16.0,
                                         "relativehumidity": 71.0}, TZ)
    stop = asyncio.Event()
    publisher = asyncio.create_task(publish_until(stop, mosquitto.url, "aqnet/MS01/readings", payload))
    try:
        run = await aqnet("sensors", "test", "MS01", "--url", database_url, "--mqtt-url", mosquitto.url,
                          "--wait", "20", "--json")
    finally:
        stop.set()
        await publisher
    assert run.code == 0, run.err
    doc = run.json()
    assert doc["verdict"] == "PASS", doc["findings"]
    (device,) = doc["devices"]
    assert device["endpoint"] == f"{mosquitto.url} topic aqnet/MS01/readings"
    values = {r["variable"]: (r["raw_value"], r["value"]) for r in device["readings"]}
    assert values["temperature"] == (16.0, 16.0)
    assert values["pm25"][0] == 14.2 and values["pm25"][1] != 14.2  # corrected to the reference conditions


async def test_silent_microsensor_and_malformed_message_fail(database_url: str, mosquitto: MosquittoBroker) -> None:
    ms = bundled("MS02")
    await register(database_url, spec_from_sensor(ms))
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        sensor = sensor_of(await get_sensor(conn, "MS02"))
    report = await check_sensor(sensor, lifecycle="active", clock=now, mqtt=MqttAccess(mosquitto.url), wait_s=1.0)
    assert (report.verdict, report.devices[0].status) == ("FAIL", "no_message")
    stop = asyncio.Event()
    publisher = asyncio.create_task(publish_until(stop, mosquitto.url, "aqnet/MS02/readings", b"{not json"))
    try:
        report = await check_sensor(sensor, lifecycle="active", clock=now, mqtt=MqttAccess(mosquitto.url),
                                    wait_s=2.0)
    finally:
        stop.set()
        await publisher
    assert (report.verdict, report.devices[0].status) == ("FAIL", "rejected")
    assert report.devices[0].rejected[0].reason == "not_json"
    # a broker that cannot be reached is reported as such
    report = await check_sensor(sensor, lifecycle="active", clock=now,
                                mqtt=MqttAccess(f"mqtt://127.0.0.1:{free_port()}"), wait_s=1.5)
    assert (report.verdict, report.devices[0].status) == ("FAIL", "unreachable")
    assert "MQTT broker mqtt://127.0.0.1:" in report.devices[0].detail


async def test_the_check_changes_nothing_in_the_registry(database_url: str, station: StationServer) -> None:
    await register(database_url, at_port(spec_from_sensor(bundled("MOV")), station.port))
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        before = await audit_log(conn)
        count = (await (await conn.execute("SELECT count(*) FROM measurements")).fetchone())[0]  # type: ignore[index]
    run = await aqnet("sensors", "test", "MOV", "--url", database_url)
    assert run.code == 0, run.out + run.err
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        assert await audit_log(conn) == before
        assert (await (await conn.execute("SELECT count(*) FROM measurements")).fetchone())[0] == count  # type: ignore[index]
