"""storage/registry/models.py: what the edge models refuse, and how their errors read. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from storage.registry.models import (
    DeviceSpec,
    Location,
    MaintenanceSpec,
    SensorRecord,
    SensorSpec,
    error_from_validation,
)

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def sensor(**kw: object) -> dict[str, object]:
    return {"id": "MS07", "name": "Microsensor 7", "kind": "microsensor", "location": {"lat": 4.6, "lon": -74.1},
            **kw}


def mqtt(**kw: object) -> dict[str, object]:
    return {"id": "MS07", "profile": "aqnet-json", "protocol": "mqtt", "variables": ["pm25"],
            "topic": "aqnet/MS07/readings", **kw}


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_latitude_outside_minus_90_to_90_is_out_of_range(lat: float) -> None:
    if -90 <= lat <= 90:
        assert Location(lat=lat, lon=0).lat == lat
        return
    with pytest.raises(ValidationError) as err:
        SensorSpec.model_validate(sensor(location={"lat": lat, "lon": 0}))
    e = error_from_validation(err.value, "sensor MS07")
    assert (e.code, e.field) == ("out_of_range", "location.lat")
    assert e.message.startswith("sensor MS07: location.lat: Input should be")


def test_longitude_out_of_range_names_the_value() -> None:
    with pytest.raises(ValidationError) as err:
        SensorSpec.model_validate(sensor(location={"lat": 4.6, "lon": -274.1}))
    e = error_from_validation(err.value, "sensor MS07")
    assert e.code == "out_of_range" and e.message.endswith("got -274.1")


@pytest.mark.parametrize(("device", "message"), [
    (mqtt(topic=None), "mqtt needs a topic"),
    (mqtt(protocol="modbus-tcp", topic=None, host="10.0.0.1"), "modbus-tcp needs port, unit_id"),
    (mqtt(protocol="modbus-rtu", topic=None, serial_port="/dev/ttyUSB0", unit_id=0),
     "unit_id: expected 1..247 on a serial line"),
    (mqtt(baudrate=9600), "serial line settings apply to modbus-rtu only"),
    (mqtt(variables=["pm2.5"]), "pm2.5"),
    (mqtt(variables=["pm25", "pm25"]), "duplicate variable"),
    (mqtt(port=70000, protocol="modbus-tcp", host="h", unit_id=1), "less than or equal to 65535"),
    (mqtt(id="MS 07"), "expected 1–64 letters"),
    (mqtt(colour="green"), "Extra inputs are not permitted"),
])
def test_device_rules(device: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SensorSpec.model_validate(sensor(devices=[device]))


def test_hardware_serial_is_stored_lower_case() -> None:
    assert DeviceSpec.model_validate(mqtt(hardware_serial=" 84:F3:EB:00:11:22 ")).hardware_serial == \
        "84:f3:eb:00:11:22"


@pytest.mark.parametrize(("raw", "stored"), [
    ("84:F3:EB:9:1:A", "84:f3:eb:09:01:0a"), ("2-0-0-0-ab-c9", "02:00:00:00:ab:c9"), ("12331981", "12331981")])
def test_a_mac_hardware_serial_is_stored_zero_padded(raw: str, stored: str) -> None:
    """Issue 24: PurpleAir MACs without zero padding: "Accept one or two digits per octet and normalise to the
    zero-padded form, in decoding and in registry matching." (An airrohr chip id is no MAC and stays as it is.)"""
    assert DeviceSpec.model_validate(mqtt(hardware_serial=raw)).hardware_serial == stored


def test_two_devices_same_id_or_two_primaries_are_refused() -> None:
    with pytest.raises(ValidationError, match="device id MS07 appears twice"):
        SensorSpec.model_validate(sensor(devices=[mqtt(), mqtt()]))
    with pytest.raises(ValidationError, match="variable pm25 has two primary devices, MS07 and MS07-b"):
        SensorSpec.model_validate(sensor(devices=[mqtt(), mqtt(id="MS07-b")]))
    ok = SensorSpec.model_validate(sensor(devices=[mqtt(), mqtt(id="MS07-b", primary=False)]))
    assert [d.primary for d in ok.devices] == [True, False]


def test_maintenance_period_reason_and_variable() -> None:
    with pytest.raises(ValidationError, match="must be after starts_at"):
        MaintenanceSpec(starts_at=T0, ends_at=T0, reason="x")
    with pytest.raises(ValidationError, match="timezone-aware"):
        MaintenanceSpec(starts_at=T0.replace(tzinfo=None), ends_at=T0 + timedelta(hours=1), reason="x")
    with pytest.raises(ValidationError, match="non-empty reason"):
        MaintenanceSpec(starts_at=T0, ends_at=T0 + timedelta(hours=1), reason="  ")
    with pytest.raises(ValidationError, match="pm2.5"):
        MaintenanceSpec(starts_at=T0, ends_at=T0 + timedelta(hours=1), reason="x", variable="pm2.5")


def test_models_are_frozen_and_a_record_gives_back_its_spec() -> None:
    spec = SensorSpec.model_validate(sensor(devices=[mqtt()]))
    with pytest.raises(ValidationError):
        spec.name = "other"  # type: ignore[misc]
    record = SensorRecord.model_validate({**spec.model_dump(), "created_at": T0, "updated_at": T0})
    assert record.spec() == spec


def test_error_counts_further_problems() -> None:
    with pytest.raises(ValidationError) as err:
        SensorSpec.model_validate({"id": "X", "location": {"lat": 100, "lon": 0}})
    e = error_from_validation(err.value, "sensor X")
    assert e.code == "invalid" and "more problems" in e.message
    assert e.as_dict() == {"code": "invalid", "field": e.field, "message": e.message}
