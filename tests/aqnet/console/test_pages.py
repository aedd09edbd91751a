"""The web console's working pages against a real TimescaleDB through the real API app (in-process ASGI): a
technician's maintenance window and HTTP credentials land in the registry (audited as console:<name>) and the
credentials verify; the commissioning JSON judges the stored readings with `ingest.commission.judge`; a validation
decision taken on the series page is storage.validation's, via console; the page language follows the setting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from aqnet.api import api_router
from aqnet.console import console_router
from aqnet.http import create_api_app
from ingest.reading import QC
from storage import device_credentials
from tests.aqnet.console.test_access import csrf_of, make_users, sign_in

NOW = datetime.now(UTC).replace(microsecond=0)


async def _register(client: httpx.AsyncClient, sensor_id: str = "MSP1") -> None:
    page = await client.get("/console/sensors/new")
    done = await client.post("/console/sensors/new", data={
        "csrf": csrf_of(page.text), "sensor_id": sensor_id, "name": "Kit", "kind": "microsensor", "lat": "4.6",
        "lon": "-74.1", "locality": "Suba", "device_id": f"{sensor_id}-a", "protocol": "http", "profile": "airrohr",
        "variables": "pm25 pm10", "hardware_serial": "777"})
    assert done.status_code == 303, done.text


async def test_registration_refusal_names_the_field_and_stores_nothing(console: Any, database_url: str) -> None:
    assert (await sign_in(console, "ana-technician")).status_code == 303
    page = await console.get("/console/sensors/new")
    refused = await console.post("/console/sensors/new", data={
        "csrf": csrf_of(page.text), "sensor_id": "MSP9", "name": "Kit", "kind": "microsensor", "lat": "95",
        "lon": "-74.1", "device_id": "MSP9-a", "protocol": "http", "profile": "airrohr", "variables": "pm25"})
    assert refused.status_code == 422 and "lat" in refused.text and 'value="MSP9"' in refused.text
    async with await AsyncConnection.connect(database_url) as conn:
        assert await (await conn.execute("SELECT count(*) FROM sensors WHERE id = 'MSP9'")).fetchone() == (0,)


async def test_credentials_and_maintenance_from_the_sensor_page(console: Any, database_url: str) -> None:
    assert (await sign_in(console, "ana-technician")).status_code == 303
    await _register(console)
    page = await console.get("/console/sensors/MSP1")
    assert page.status_code == 200 and "commissioning" in page.text
    issued = await console.post("/console/sensors/MSP1/credentials", data={"csrf": csrf_of(page.text)})
    assert issued.status_code == 200
    password = issued.text.split('id="issued-password">')[1].split("<")[0]
    async with await AsyncConnection.connect(database_url) as conn:
        stored = await device_credentials.lookup(conn, "MSP1")
    assert stored is not None and device_credentials.verify_password(password, stored)
    window = await console.post("/console/sensors/MSP1/maintenance", data={
        "csrf": csrf_of(page.text), "starts_at": "2026-12-01T08:00", "ends_at": "2026-12-01T12:00",
        "reason": "filter change", "device_id": ""})
    assert window.status_code == 303, window.text
    backwards = await console.post("/console/sensors/MSP1/maintenance", data={
        "csrf": csrf_of(page.text), "starts_at": "2026-12-01T12:00", "ends_at": "2026-12-01T08:00",
        "reason": "oops"})
    assert backwards.status_code == 422 and "must be after" in backwards.text
    async with await AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute("SELECT starts_at, ends_at, reason, created_by FROM maintenance_windows "
                                        "WHERE sensor_id = 'MSP1'")).fetchone()
        actors = {r[0] for r in await (await conn.execute(
            "SELECT DISTINCT actor FROM audit_log WHERE sensor_id = 'MSP1'")).fetchall()}
    # the form's times are the network's local time (America/Bogota, UTC-5)
    assert row == (datetime(2026, 12, 1, 13, tzinfo=UTC), datetime(2026, 12, 1, 17, tzinfo=UTC), "filter change",
                   "console:ana-technician")
    assert actors == {"console:ana-technician"}


async def test_commissioning_json_judges_the_stored_readings(console: Any, database_url: str) -> None:
    assert (await sign_in(console, "ana-technician")).status_code == 303
    await _register(console)
    empty = (await console.get("/console/sensors/MSP1/commissioning.json")).json()
    assert empty["verdict"] == "FAIL" and empty["readings"] == []
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        for variable, flags in (("pm25", 0), ("pm10", 0)):
            await conn.execute("INSERT INTO measurements (time, sensor_id, variable, value, unit, flags, raw_value, "
                               "raw_unit, device_id, received_at) VALUES (%s, 'MSP1', %s, 12.5, 'µg/m³', %s, 12.0, "
                               "'µg/m³', 'MSP1-a', %s)", (NOW - timedelta(minutes=1), variable, flags, NOW))
    passed = (await console.get("/console/sensors/MSP1/commissioning.json")).json()
    assert passed["verdict"] == "PASS" and {r["variable"] for r in passed["readings"]} == {"pm25", "pm10"}
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO measurements (time, sensor_id, variable, value, unit, flags, raw_value, "
                           "raw_unit, device_id, received_at) VALUES (%s, 'MSP1', 'pm25', 9000, 'µg/m³', %s, 9000, "
                           "'µg/m³', 'MSP1-a', %s)", (NOW, int(QC.OUT_OF_RANGE), NOW))
    failed = (await console.get("/console/sensors/MSP1/commissioning.json")).json()
    assert failed["verdict"] == "FAIL"
    assert any("pm25" in f["message"] and "OUT_OF_RANGE" in f["message"] for f in failed["findings"])
    assert (await console.post("/console/logout", data={"csrf": csrf_of(
        (await console.get("/console/sensors")).text)})).status_code == 303
    assert (await console.get("/console/sensors/MSP1/commissioning.json")).status_code == 401


async def test_a_validation_decision_from_the_series_page_is_recorded_via_console(console: Any,
                                                                                  database_url: str) -> None:
    assert (await sign_in(console, "ana-officer")).status_code == 303
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO sensors (id, name, kind, lat, lon) VALUES ('KEN', 'Kennedy', 'station', "
                           "4.6, -74.1)")
        for minutes in range(0, 120, 10):
            await conn.execute("INSERT INTO measurements (time, sensor_id, variable, value, unit, raw_value, "
                               "raw_unit, device_id, received_at) VALUES (%s, 'KEN', 'pm25', 30, 'µg/m³', 30, "
                               "'µg/m³', 'KEN-pm', %s)", (datetime(2026, 3, 10, 12, tzinfo=UTC) +
                                                          timedelta(minutes=minutes), NOW))
    page = await console.get("/console/series?sensor=KEN&variable=pm25&since=2026-03-10T06:00"
                             "&until=2026-03-10T10:00")
    assert page.status_code == 200 and page.text.count('<circle class="point"') == 12
    decided = await console.post("/console/series", data={
        "csrf": csrf_of(page.text), "sensor": "KEN", "variable": "pm25", "since": "2026-03-10T06:00",
        "until": "2026-03-10T10:00", "starts_at": "2026-03-10T07:00", "ends_at": "2026-03-10T08:00",
        "action": "invalidate", "reason": "local_source", "text": "street works by the inlet"})
    assert decided.status_code == 200 and "Decision recorded" in decided.text
    async with await AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute("SELECT actor, actor_role, via, action, reason, time_from, time_to "
                                        "FROM validation_decisions")).fetchone()
    assert row == ("ana-officer", "officer", "console", "invalidate", "local_source",
                   datetime(2026, 3, 10, 12, tzinfo=UTC), datetime(2026, 3, 10, 13, tzinfo=UTC))
    other = await console.post("/console/series", data={
        "csrf": csrf_of(page.text), "sensor": "KEN", "variable": "pm25", "starts_at": "2026-03-10T07:00",
        "ends_at": "2026-03-10T08:00", "action": "invalidate", "reason": "other", "text": ""})
    assert other.status_code == 422  # reason other needs words (ingest.validation)


@pytest.fixture
async def spanish(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await make_users(database_url)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False)
    await pool.open(wait=True, timeout=30)
    app = create_api_app(api_router(pool), console_router(pool, database_url, language="es"))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://aqnet") as client:
            yield client
    finally:
        await pool.close()


async def test_the_pages_speak_the_configured_language(spanish: Any) -> None:
    page = await spanish.get("/console/login")
    assert '<html lang="es">' in page.text and "Contraseña" in page.text
    wrong = await sign_in(spanish, "ana-reader", "no es la contraseña")
    assert "Usuario o contraseña incorrectos" in wrong.text
