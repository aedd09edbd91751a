"""storage/registry/ (its edits, checks, read, rows, network import and seed parts) and migration 0004 against a
real TimescaleDB."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from sensors.network import bundled_network
from storage import registry
from storage.registry import RegistryError
from storage.registry.checks import transaction
from storage.registry.models import (
    CalibrationSpec,
    DeviceSpec,
    Location,
    MaintenanceSpec,
    SensorPatch,
    SensorSpec,
)

T0 = datetime(2026, 5, 1, 8, tzinfo=UTC)
TECH = "ana"


def microsensor(sid: str = "MS90", topic: str | None = None, serial: str | None = None, **kw: Any) -> SensorSpec:
    dev = DeviceSpec(id=f"{sid}-a", profile="aqnet-json", protocol="mqtt", variables=["pm25", "pm10"],
                     topic=topic or f"aqnet/{sid}/readings", hardware_serial=serial, firmware="NRZ-2024-135")
    return SensorSpec(id=sid, name=f"Microsensor {sid}", kind="microsensor",
                      location=Location(lat=4.65, lon=-74.1, address="Cra 7 # 40-62", locality="Chapinero"),
                      devices=[dev], **kw)


def station(sid: str = "ST90") -> SensorSpec:
    devices = [DeviceSpec(id=f"{sid}-pm", profile="sim-pm", protocol="modbus-tcp", variables=["pm10", "pm25"],
                          host="10.0.0.5", port=1502, unit_id=1),
               DeviceSpec(id=f"{sid}-nox", profile="sim-nox", protocol="modbus-tcp", variables=["no", "no2"],
                          host="10.0.0.5", port=1502, unit_id=2)]
    return SensorSpec(id=sid, name=f"Station {sid}", kind="station", location=Location(lat=4.6, lon=-74.08),
                      devices=devices)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
        yield c


async def count(conn: psycopg.AsyncConnection[Any], query: str, *params: Any) -> int:
    row = await (await conn.execute(query, params)).fetchone()
    assert row is not None
    return int(row[0])


# ------------------------------------------------------------------------------------------ acceptance flow

async def test_lifecycle_flow_with_audit_trail(conn: psycopg.AsyncConnection[Any]) -> None:
    """add → commission → active → recalibrate → swap → maintenance → retire, every step in the audit log."""
    assert await registry.registry_version(conn) == 0
    rec = await registry.add_sensor(conn, microsensor(), actor=TECH)
    assert rec.lifecycle == "planned" and [d.id for d in rec.devices] == ["MS90-a"] and rec.devices[0].primary
    assert await registry.load_network(conn) == []  # planned sensors are not run by the daemon
    await registry.set_lifecycle(conn, "MS90", "commissioning", actor=TECH)
    [running] = await registry.load_network(conn)
    assert running.devices[0].topic == "aqnet/MS90/readings" and running.devices[0].primary == ("pm25", "pm10")
    await registry.set_lifecycle(conn, "MS90", "active", actor=TECH, reason="commissioning check PASS")
    v1 = await registry.registry_version(conn)

    cal = CalibrationSpec(variable="pm25", kind="linear", coefficients=[0.8, 1.5], unit="ug/m3", valid_from=T0,
                          source="co-location with USQ, April 2026")
    cal_id = await registry.calibrate(conn, "MS90-a", cal, actor=TECH)
    assert await registry.registry_version(conn) > v1
    assert await count(conn, "SELECT count(*) FROM calibrations WHERE id = %s AND created_by = %s", cal_id,
                       TECH) == 1

    swap_at = datetime.now(UTC)
    new = DeviceSpec(id="MS90-b", profile="aqnet-json", protocol="mqtt", variables=["pm25", "pm10"],
                     topic="aqnet/MS90/readings", firmware="NRZ-2025-001")
    rec = await registry.swap_device(conn, "MS90", "MS90-a", new, actor=TECH, at=swap_at)
    assert [(d.id, d.primary) for d in rec.devices] == [("MS90-b", True)]
    [running] = await registry.load_network(conn)
    assert [d.id for d in running.devices] == ["MS90-b"] and running.devices[0].primary == ("pm25", "pm10")
    history = await (await conn.execute("SELECT device_id, installed_at, removed_at, replaced_by FROM "
                                        "device_history WHERE sensor_id = 'MS90' ORDER BY installed_at")).fetchall()
    assert history[-1] == ("MS90-b", swap_at, None, None)
    assert history[0][0] == "MS90-a" and history[0][2:] == (swap_at, "MS90-b")

    window = await registry.add_maintenance(
        conn, "MS90", MaintenanceSpec(starts_at=T0 + timedelta(days=11), ends_at=T0 + timedelta(days=11, hours=4),
                                      reason="fan replaced", variable="pm25"), actor=TECH)
    assert window.sensor_id == "MS90" and window.created_by == TECH and window.variable == "pm25"
    assert (await registry.get_sensor(conn, "MS90")).maintenance == [window]

    rec = await registry.set_lifecycle(conn, "MS90", "retired", actor=TECH, reason="vandalised")
    assert rec.lifecycle == "retired" and rec.retired_at is not None
    assert [d.id for d in rec.devices] == ["MS90-b"]  # the devices it had when retired
    assert await registry.load_network(conn) == []
    assert await count(conn, "SELECT count(*) FROM devices WHERE sensor_id = 'MS90' AND active") == 0

    trail = await registry.audit_log(conn, sensor_id="MS90")
    assert [e.action for e in reversed(trail)] == [
        "sensor.add", "sensor.lifecycle", "sensor.lifecycle", "calibration.add", "device.swap", "maintenance.add",
        "sensor.lifecycle"]
    assert {e.actor for e in trail} == {TECH}
    lifecycle = [(e.before, e.after) for e in reversed(trail) if e.action == "sensor.lifecycle"]
    assert lifecycle == [({"lifecycle": "planned"}, {"lifecycle": "commissioning"}),
                         ({"lifecycle": "commissioning"},
                          {"lifecycle": "active", "reason": "commissioning check PASS"}),
                         ({"lifecycle": "active"}, {"lifecycle": "retired", "reason": "vandalised"})]
    swap = next(e for e in trail if e.action == "device.swap")
    assert swap.device_id == "MS90-a" and swap.before is not None and swap.after is not None
    assert swap.before["firmware"] == "NRZ-2024-135" and swap.after["id"] == "MS90-b"
    assert swap.after["at"] == swap_at.isoformat()
    cal_entry = next(e for e in trail if e.action == "calibration.add")
    assert cal_entry.after is not None and cal_entry.after["coefficients"] == [0.8, 1.5]
    assert cal_entry.after["id"] == cal_id


async def test_update_and_move_record_before_and_after(conn: psycopg.AsyncConnection[Any]) -> None:
    await registry.add_sensor(conn, microsensor(), actor=TECH)
    rec = await registry.update_sensor(conn, "MS90", SensorPatch(notes="key at the porter's lodge", mobile=True),
                                       actor="luis")
    assert rec.notes == "key at the porter's lodge" and rec.mobile and rec.name == "Microsensor MS90"
    version = await registry.registry_version(conn)
    await registry.update_sensor(conn, "MS90", SensorPatch(mobile=True), actor="luis")  # no change, no audit
    assert await registry.registry_version(conn) == version
    rec = await registry.move_sensor(conn, "MS90", Location(lat=4.7, lon=-74.05, elevation_m=2600,
                                                            locality="Usaquén"), actor="luis")
    assert rec.location == Location(lat=4.7, lon=-74.05, elevation_m=2600, locality="Usaquén")
    move, update = (await registry.audit_log(conn, sensor_id="MS90", limit=2))
    assert update.action == "sensor.update"
    assert (update.before, update.after) == ({"notes": "", "mobile": False},
                                             {"notes": "key at the porter's lodge", "mobile": True})
    assert move.action == "sensor.move" and move.actor == "luis"
    assert move.before == {"lat": 4.65, "lon": -74.1, "elevation_m": None, "address": "Cra 7 # 40-62",
                           "locality": "Chapinero"}
    assert move.after == {"lat": 4.7, "lon": -74.05, "elevation_m": 2600.0, "address": "", "locality": "Usaquén"}


async def test_station_devices_and_listing(conn: psycopg.AsyncConnection[Any]) -> None:
    await registry.add_sensor(conn, microsensor(), actor=TECH)
    await registry.add_sensor(conn, station(), actor=TECH)
    listed = await registry.list_sensors(conn)
    assert [r.id for r in listed] == ["ST90", "MS90"]  # stations first
    assert [r.id for r in await registry.list_sensors(conn, kind="microsensor")] == ["MS90"]
    assert await registry.list_sensors(conn, lifecycle="active") == []
    rec = await registry.add_device(conn, "ST90", DeviceSpec(id="ST90-o3", profile="sim-o3", protocol="modbus-tcp",
                                                             variables=["o3"], host="10.0.0.5", port=1502, unit_id=3),
                                    actor=TECH)
    assert [d.id for d in rec.devices] == ["ST90-pm", "ST90-nox", "ST90-o3"]
    assert [s.spec() for s in await registry.list_sensors(conn)] == await registry.export_network(conn)


# ---------------------------------------------------------------------------------------------- bad input

async def test_duplicate_sensor_and_device_ids(conn: psycopg.AsyncConnection[Any]) -> None:
    await registry.add_sensor(conn, microsensor(), actor=TECH)
    with pytest.raises(RegistryError, match="sensor MS90: already in the registry") as err:
        await registry.add_sensor(conn, microsensor(), actor=TECH)
    assert (err.value.code, err.value.field) == ("duplicate", "id")
    other = microsensor("MS91").model_copy(update={"devices": [microsensor().devices[0].model_copy(
        update={"topic": "aqnet/MS91/readings"})]})
    with pytest.raises(RegistryError, match="device id MS90-a is already used") as err:
        await registry.add_sensor(conn, other, actor=TECH)
    assert (err.value.code, err.value.field) == ("duplicate", "devices[0].id")
    assert await count(conn, "SELECT count(*) FROM sensors") == 1


async def test_unknown_profile_and_payload_format(conn: psycopg.AsyncConnection[Any]) -> None:
    bad = station().model_copy(update={"devices": [station().devices[0].model_copy(update={"profile": "t9999"})]})
    with pytest.raises(RegistryError, match=r"profile 't9999' is not a known device profile; expected one of") as e:
        await registry.add_sensor(conn, bad, actor=TECH)
    assert (e.value.code, e.value.field) == ("unknown_profile", "devices[0].profile")
    bad = microsensor().model_copy(update={"devices": [microsensor().devices[0].model_copy(
        update={"profile": "sensor-community"})]})
    with pytest.raises(RegistryError, match="payload format 'sensor-community' is unknown") as e:
        await registry.add_sensor(conn, bad, actor=TECH)
    assert e.value.code == "unknown_profile"
    bad = station().model_copy(update={"devices": [station().devices[0].model_copy(update={"variables": ["o3"]})]})
    with pytest.raises(RegistryError, match="profile sim-pm has no variable o3") as e:
        await registry.add_sensor(conn, bad, actor=TECH)
    assert await count(conn, "SELECT count(*) FROM sensors") == 0
    assert await registry.registry_version(conn) == 0


async def test_topic_or_hardware_serial_used_by_another_sensor(conn: psycopg.AsyncConnection[Any]) -> None:
    await registry.add_sensor(conn, microsensor("MS03", serial="AA:BB:CC:00:11:22"), actor=TECH)
    with pytest.raises(RegistryError) as err:
        await registry.add_sensor(conn, microsensor("MS07", topic="aqnet/MS03/readings"), actor=TECH)
    assert err.value.code == "conflict" and err.value.field == "devices[0].topic"
    assert str(err.value) == ("sensor MS07: topic aqnet/MS03/readings is already used by sensor MS03 "
                              "(device MS03-a)")
    with pytest.raises(RegistryError, match="hardware serial aa:bb:cc:00:11:22 is already used by sensor MS03"):
        await registry.add_sensor(conn, microsensor("MS07", serial="aa:bb:cc:00:11:22"), actor=TECH)
    # shared wildcard topics of self-identifying formats are not a conflict
    for sid, serial in (("PA1", "84f3eb000001"), ("PA2", "84f3eb000002")):
        spec = microsensor(sid, topic="purpleair/+/data", serial=serial)
        spec = spec.model_copy(update={"devices": [spec.devices[0].model_copy(update={"profile": "purpleair"})]})
        await registry.add_sensor(conn, spec, actor=TECH)
    # a retired sensor's topic is free again
    await registry.set_lifecycle(conn, "MS03", "retired", actor=TECH)
    await registry.add_sensor(conn, microsensor("MS07", topic="aqnet/MS03/readings"), actor=TECH)


async def test_database_refuses_a_topic_on_two_sensors(conn: psycopg.AsyncConnection[Any]) -> None:
    """The exclusion constraint is the last line behind the registry's own check."""
    await registry.add_sensor(conn, microsensor("MS03"), actor=TECH)
    await registry.add_sensor(conn, microsensor("MS07"), actor=TECH)
    with pytest.raises(psycopg.errors.ExclusionViolation):
        await conn.execute("UPDATE devices SET topic = 'aqnet/MS03/readings' WHERE id = 'MS07-a'")
    # a write racing past the registry's check is still refused with a RegistryError, and rolled back
    with pytest.raises(RegistryError, match="sensor MS07: devices_topic_one_sensor: ") as err:
        async with transaction(conn, "sensor MS07") as cur:
            await cur.execute("UPDATE sensors SET notes = 'x' WHERE id = 'MS07'")
            await cur.execute("UPDATE devices SET topic = 'aqnet/MS03/readings' WHERE id = 'MS07-a'")
    assert err.value.code == "conflict"
    assert (await registry.get_sensor(conn, "MS07")).notes == ""


async def test_invalid_calibration(conn: psycopg.AsyncConnection[Any]) -> None:
    await registry.add_sensor(conn, microsensor(), actor=TECH)
    version = await registry.registry_version(conn)
    cases = [
        (dict(kind="linear", coefficients=[0.0, 1.0]), "linear: expected coefficients"),
        (dict(kind="linear", coefficients=[1.0, 0.0], unit="ppb"), "unit 'ppb' is not a unit of pm25"),
        (dict(kind="humidity", coefficients=[-0.1]), "κ ≥ 0"),
        (dict(valid_to=T0 - timedelta(days=1)), "must be after valid_from"),
        (dict(variable="no2", unit="ppb"), "the device does not measure no2"),
    ]
    for change, message in cases:
        spec = CalibrationSpec.model_validate({"variable": "pm25", "kind": "linear", "coefficients": [1.0, 0.0],
                                               "unit": "ug/m3", "valid_from": T0, **change})
        with pytest.raises(RegistryError, match=message) as err:
            await registry.calibrate(conn, "MS90-a", spec, actor=TECH)
        assert err.value.code == "invalid_calibration"
        assert str(err.value).startswith("sensor MS90 device MS90-a calibration of")
    ok = CalibrationSpec(variable="pm25", kind="linear", coefficients=[1.1, 0.0], unit="ug/m3", valid_from=T0)
    await registry.calibrate(conn, "MS90-a", ok, actor=TECH)
    with pytest.raises(RegistryError, match="overlaps a calibration in force") as err:
        await registry.calibrate(conn, "MS90-a", ok, actor=TECH)
    assert err.value.code == "invalid_calibration"
    with pytest.raises(RegistryError, match="device NOPE: not in the registry") as err:
        await registry.calibrate(conn, "NOPE", ok, actor=TECH)
    assert err.value.code == "not_found"
    assert await registry.registry_version(conn) == version + 1  # only the good one
    assert await count(conn, "SELECT count(*) FROM calibrations") == 1


async def test_illegal_lifecycle_transitions(conn: psycopg.AsyncConnection[Any]) -> None:
    await registry.add_sensor(conn, microsensor(), actor=TECH)
    with pytest.raises(RegistryError, match="cannot go from planned to active: from planned it can go to "
                                            "commissioning or retired") as err:
        await registry.set_lifecycle(conn, "MS90", "active", actor=TECH)
    assert (err.value.code, err.value.field) == ("illegal_transition", "lifecycle")
    await registry.set_lifecycle(conn, "MS90", "retired", actor=TECH)
    with pytest.raises(RegistryError, match="cannot go from retired to retired: it is already retired since "
                                            r"\d{4}-\d\d-\d\d .*; retired is final") as err:
        await registry.set_lifecycle(conn, "MS90", "retired", actor=TECH)
    assert err.value.code == "illegal_transition"
    with pytest.raises(RegistryError, match="a retired sensor cannot be moved") as err:
        await registry.move_sensor(conn, "MS90", Location(lat=1, lon=1), actor=TECH)
    assert err.value.code == "conflict"
    with pytest.raises(RegistryError, match="sensor NOPE: not in the registry") as err:
        await registry.set_lifecycle(conn, "NOPE", "retired", actor=TECH)
    assert err.value.code == "not_found"
    assert [e.action for e in await registry.audit_log(conn)] == ["sensor.lifecycle", "sensor.add"]


async def test_swap_and_maintenance_errors(conn: psycopg.AsyncConnection[Any]) -> None:
    await registry.add_sensor(conn, station(), actor=TECH)
    new = DeviceSpec(id="ST90-pm2", profile="sim-pm", protocol="modbus-tcp", variables=["pm10", "pm25"],
                     host="10.0.0.5", port=1502, unit_id=7)
    with pytest.raises(RegistryError, match="has no device ST90-xx in service") as err:
        await registry.swap_device(conn, "ST90", "ST90-xx", new, actor=TECH, at=T0)
    assert err.value.code == "not_found"
    with pytest.raises(RegistryError, match="device id ST90-nox is already used"):
        await registry.swap_device(conn, "ST90", "ST90-pm", new.model_copy(update={"id": "ST90-nox"}), actor=TECH,
                                   at=T0)
    with pytest.raises(RegistryError, match="the sensor already has a primary device for no \\(device ST90-nox\\)"):
        await registry.add_device(conn, "ST90", DeviceSpec(
            id="ST90-nox2", profile="sim-nox", protocol="modbus-tcp", variables=["no"], host="h", port=1, unit_id=9),
            actor=TECH)
    spec = MaintenanceSpec(starts_at=T0, ends_at=T0 + timedelta(hours=1), reason="zero check", device_id="MS01")
    with pytest.raises(RegistryError, match="sensor ST90: has no device MS01"):
        await registry.add_maintenance(conn, "ST90", spec, actor=TECH)
    spec = MaintenanceSpec(starts_at=T0, ends_at=T0 + timedelta(hours=1), reason="zero check", variable="o3")
    with pytest.raises(RegistryError, match="does not measure o3") as err:
        await registry.add_maintenance(conn, "ST90", spec, actor=TECH)
    assert err.value.field == "variable"
    assert await count(conn, "SELECT count(*) FROM maintenance_windows") == 0


async def test_list_maintenance_overlapping(conn: psycopg.AsyncConnection[Any]) -> None:
    await registry.add_sensor(conn, station(), actor=TECH)
    await registry.add_sensor(conn, microsensor(), actor=TECH)
    a = await registry.add_maintenance(conn, "ST90", MaintenanceSpec(
        starts_at=T0, ends_at=T0 + timedelta(hours=2), reason="span check", device_id="ST90-nox"), actor=TECH)
    b = await registry.add_maintenance(conn, "MS90", MaintenanceSpec(
        starts_at=T0 + timedelta(hours=2), ends_at=T0 + timedelta(hours=3), reason="cleaning"), actor=TECH)
    assert await registry.list_maintenance(conn) == [a, b]
    assert await registry.list_maintenance(conn, sensor_id="MS90") == [b]
    assert await registry.list_maintenance(conn, overlapping=(T0 + timedelta(hours=1),
                                                              T0 + timedelta(hours=2))) == [a]
    assert await registry.list_maintenance(conn, overlapping=(T0 + timedelta(hours=3), T0 + timedelta(hours=4))) == []


# ------------------------------------------------------------------------------------------------- import

async def test_import_is_all_or_nothing(conn: psycopg.AsyncConnection[Any]) -> None:
    await registry.add_sensor(conn, microsensor("MS03"), actor=TECH)
    version = await registry.registry_version(conn)
    specs = [station("ST1"), microsensor("MS10"), microsensor("MS11", topic="aqnet/MS03/readings")]
    with pytest.raises(RegistryError, match="topic aqnet/MS03/readings is already used by sensor MS03") as err:
        await registry.import_network(conn, specs, actor=TECH, source="net.yaml")
    assert (err.value.index, err.value.field) == (2, "devices[0].topic")
    assert await count(conn, "SELECT count(*) FROM sensors") == 1
    assert await registry.registry_version(conn) == version
    with pytest.raises(RegistryError, match="sensor MS10: appears twice in net.yaml \\(entries 1 and 2\\)") as err:
        await registry.import_network(conn, [microsensor("MS10"), microsensor("MS10")], actor=TECH, source="net.yaml")
    assert err.value.index == 1


async def test_import_adds_updates_and_keeps_lifecycle(conn: psycopg.AsyncConnection[Any]) -> None:
    result = await registry.import_network(conn, [station("ST1"), microsensor("MS10")], actor=TECH, source="a.yaml")
    assert (result.added, result.updated, result.unchanged) == (2, 0, 0)
    await registry.set_lifecycle(conn, "MS10", "commissioning", actor=TECH)
    # the same file again: nothing changes (the file does not say lifecycle: the registry's stays)
    version = await registry.registry_version(conn)
    result = await registry.import_network(conn, [station("ST1"), microsensor("MS10")], actor=TECH, source="a.yaml")
    assert (result.added, result.updated, result.unchanged) == (0, 0, 2)
    assert await registry.registry_version(conn) == version
    # a new endpoint for one device, one device dropped, a new device, a new lifecycle
    st = station("ST1")
    moved = st.devices[0].model_copy(update={"host": "10.0.0.9"})
    o3 = DeviceSpec(id="ST1-o3", profile="sim-o3", protocol="modbus-tcp", variables=["o3"], host="10.0.0.9",
                    port=1502, unit_id=3)
    ms = microsensor("MS10", lifecycle="active")
    result = await registry.import_network(conn, [st.model_copy(update={"devices": [moved, o3]}), ms], actor=TECH,
                                           source="b.yaml")
    assert (result.added, result.updated, result.unchanged) == (0, 2, 0)
    rec = await registry.get_sensor(conn, "ST1")
    assert [(d.id, d.host) for d in rec.devices] == [("ST1-pm", "10.0.0.9"), ("ST1-o3", "10.0.0.9")]
    assert (await registry.get_sensor(conn, "MS10")).lifecycle == "active"
    assert await count(conn, "SELECT count(*) FROM devices WHERE id = 'ST1-nox' AND NOT active") == 1
    actions = [(e.action, e.sensor_id) for e in await registry.audit_log(conn, limit=3)]
    assert actions == [("network.import", None), ("sensor.lifecycle", "MS10"), ("sensor.import", "ST1")]
    # an illegal lifecycle in a file is refused, naming the sensor
    with pytest.raises(RegistryError, match="sensor MS10: cannot go from active to planned") as err:
        await registry.import_network(conn, [microsensor("MS10", lifecycle="planned")], actor=TECH, source="c")
    assert err.value.index == 0


async def test_bundled_network_imports_and_exports_round_trip(conn: psycopg.AsyncConnection[Any]) -> None:
    specs = [registry.spec_from_sensor(s) for s in bundled_network()]
    result = await registry.import_network(conn, specs, actor=TECH, source="bundled")
    assert result.added == 44
    exported = await registry.export_network(conn)
    assert sorted(exported, key=lambda s: s.id) == sorted(specs, key=lambda s: s.id)
    loaded = await registry.load_network(conn)
    assert sorted(loaded, key=lambda s: s.id) == sorted(bundled_network(), key=lambda s: s.id)


# ------------------------------------------------------------------------------------ seeding from config

async def test_config_seeding_respects_technicians(conn: psycopg.AsyncConnection[Any]) -> None:
    network = bundled_network()
    await registry.upsert_registry(conn, network)
    seeded = await registry.audit_log(conn, limit=1000)
    assert {e.actor for e in seeded} == {"config"} and len([e for e in seeded if e.action == "sensor.add"]) == 44
    version = await registry.registry_version(conn)
    await registry.upsert_registry(conn, network)
    assert await registry.registry_version(conn) == version  # nothing changed, nothing recorded

    await registry.move_sensor(conn, "USQ", Location(lat=4.72, lon=-74.03, locality="Usaquén"), actor=TECH)
    await registry.set_lifecycle(conn, "USQ", "maintenance", actor=TECH)
    new = DeviceSpec(id="USQ-pm-2", profile="sim-pm", protocol="modbus-tcp", variables=["pm10", "pm25"],
                     host="127.0.0.1", port=502, unit_id=1)
    await registry.swap_device(conn, "USQ", "USQ-pm", new, actor=TECH, at=T0)
    await registry.set_lifecycle(conn, "MS01", "retired", actor=TECH)
    version = await registry.registry_version(conn)

    await registry.upsert_registry(conn, network)  # the daemon restarts with the same configuration
    assert await registry.registry_version(conn) == version
    usq = await registry.get_sensor(conn, "USQ")
    assert (usq.location.lat, usq.lifecycle) == (4.72, "maintenance")
    assert "USQ-pm" not in [d.id for d in usq.devices] and "USQ-pm-2" in [d.id for d in usq.devices]
    assert next(d for d in usq.devices if d.id == "USQ-pm-2").primary
    assert (await registry.get_sensor(conn, "MS01")).lifecycle == "retired"
    assert "MS01" not in [s.id for s in await registry.load_network(conn)]

    # a configured endpoint change is applied and audited as the configuration's
    usq_cfg = next(s for s in network if s.id == "USQ")
    nox = next(d for d in usq_cfg.devices if d.id == "USQ-nox")
    changed = dataclasses.replace(usq_cfg, devices=tuple(dataclasses.replace(d, port=1502) if d is nox else d
                                                         for d in usq_cfg.devices))
    await registry.upsert_registry(conn, [changed if s.id == "USQ" else s for s in network])
    [entry] = await registry.audit_log(conn, limit=1)
    assert (entry.actor, entry.action, entry.device_id) == ("config", "device.config", "USQ-nox")
    assert (entry.before, entry.after) == ({"port": 502}, {"port": 1502})


async def test_two_seeders_at_once_both_succeed_and_add_each_sensor_once(database_url: str) -> None:
    # `aqnet simulate` seeds its posting microsensors while the daemon seeds the configured network: both saw a
    # sensor missing and the second INSERT failed the daemon's start (UniqueViolation on sensors_pkey)
    network = bundled_network()
    for _ in range(3):
        conns = [await psycopg.AsyncConnection.connect(database_url) for _ in range(4)]
        try:
            results = await asyncio.gather(*(registry.upsert_registry(c, network) for c in conns))
        finally:
            for c in conns:
                await c.close()
        assert all(r.sensors == 44 for r in results)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        added = [e for e in await registry.audit_log(conn, limit=1000) if e.action == "sensor.add"]
    assert len(added) == 44
