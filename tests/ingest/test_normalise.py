"""ingest.normalise: conversion, reference-condition correction, flags, and the ConditionsBook."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.normalise import (
    ConditionsBook,
    NormaliseError,
    SiteConditions,
    normalise,
    site_default_conditions,
)
from ingest.reading import QC, Reading
from ingest.units import UnitError
from sensors.domain import load
from sensors.network import bundled_network
from sensors.reading import RawReading
from sensors.sensor import Sensor
from sensors.variables import UnknownVariableError

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NO_FLAGS = QC(0)
BOGOTA_752_14 = SiteConditions(14.0, 752.0, "own")


def raw(variable: str, value: float, unit: str, **kw: object) -> RawReading:
    fields: dict[str, object] = {"sensor_id": "USQ", "device_id": "USQ-pm", "variable": variable,
                                 "value": value, "unit": unit, "time": T0,
                                 "received_at": T0 + timedelta(seconds=5)}
    fields.update(kw)
    return RawReading(**fields)  # type: ignore[arg-type]


def test_pm25_local_corrected_to_reference() -> None:
    r = normalise(raw("pm25", 30.0, "ug/m3", conditions="local"), BOGOTA_752_14)
    assert r.value == pytest.approx(38.93, abs=5e-3)
    assert r.unit == "µg/m³"
    assert (r.raw_value, r.raw_unit) == (30.0, "ug/m3")
    assert r.flags == QC(0)


def test_pm_reference_is_not_corrected_twice() -> None:
    r = normalise(raw("pm10", 30.0, "µg/m³", conditions="reference"), BOGOTA_752_14)
    assert r.value == 30.0
    # and no site conditions are needed for it
    assert normalise(raw("pm10", 30.0, "µg/m³", conditions="reference"), None).value == 30.0


def test_pm_mg_local_rescaled_then_corrected() -> None:
    r = normalise(raw("pm25", 0.030, "mg/m3", conditions="local"), BOGOTA_752_14)
    assert r.value == pytest.approx(38.93, abs=5e-3)


def test_mass_without_declared_conditions_is_an_error() -> None:
    with pytest.raises(NormaliseError) as err:
        normalise(raw("pm25", 30.0, "µg/m³"), BOGOTA_752_14)
    assert err.value.reason == "no_conditions"
    assert "USQ" in str(err.value) and "pm25" in str(err.value)


def test_local_mass_without_site_is_an_error() -> None:
    with pytest.raises(NormaliseError) as err:
        normalise(raw("pm25", 30.0, "µg/m³", conditions="local"), None)
    assert err.value.reason == "no_site_conditions"


@pytest.mark.parametrize("conditions", ["local", "reference", None])
def test_gas_mixing_ratio_never_uses_site_conditions(conditions: str | None) -> None:
    for site in (BOGOTA_752_14, SiteConditions(25.0, 1013.25, "x"), None):
        r = normalise(raw("no2", 40.0, "ppb", conditions=conditions), site)
        assert r.value == pytest.approx(75.2646, abs=1e-4)


def test_co_ppm_to_ugm3() -> None:
    r = normalise(raw("co", 1.0, "ppm"), BOGOTA_752_14)
    assert r.value == pytest.approx(1145.6, abs=0.05)
    assert r.unit == "µg/m³"


def test_gas_reported_as_local_mass_is_corrected() -> None:
    # EX068: 40 ppb NO2 is 57.962 µg/m³ per actual m³ at 752 hPa, 14 °C; corrected it is 75.217
    r = normalise(raw("no2", 57.962, "µg/m³", conditions="local"), BOGOTA_752_14)
    assert r.value == pytest.approx(75.217, abs=2e-3)
    with pytest.raises(NormaliseError):
        normalise(raw("no2", 57.962, "µg/m³"), BOGOTA_752_14)


@pytest.mark.parametrize(("variable", "value", "unit", "expected", "canonical"), [
    ("pressure", 564.0, "mmHg", 751.938, "hPa"),
    ("temperature", 57.2, "°F", 14.0, "°C"),
    ("relativehumidity", 71.0, "%", 71.0, "%"),
    ("wind_direction", 270.0, "degrees", 270.0, "°"),
    ("solar_radiation", 800.0, "W/m2", 800.0, "W/m²"),
    ("bc", 2500.0, "ng/m3", 2.5, "µg/m³"),
])
def test_met_and_other_converted_to_canonical(variable: str, value: float, unit: str, expected: float,
                                              canonical: str) -> None:
    r = normalise(raw(variable, value, unit), None)
    assert r.value == pytest.approx(expected, abs=1e-3)
    assert r.unit == canonical


def test_bc_is_not_corrected_even_if_local() -> None:
    assert normalise(raw("bc", 2.0, "µg/m³", conditions="local"), BOGOTA_752_14).value == 2.0


def test_unknown_unit_and_variable_raise() -> None:
    with pytest.raises(UnitError):
        normalise(raw("pm25", 1.0, "hPa", conditions="local"), BOGOTA_752_14)
    with pytest.raises(UnknownVariableError):
        normalise(raw("h2s", 1.0, "ppb"), BOGOTA_752_14)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_value_raises(value: float) -> None:
    with pytest.raises(NormaliseError) as err:
        normalise(raw("no2", value, "ppb"), None)
    assert err.value.reason == "not_finite"


def test_negative_flag() -> None:
    assert normalise(raw("no2", -0.5, "ppb"), None).flags == QC.NEGATIVE
    assert normalise(raw("pm25", -1.0, "µg/m³", conditions="local"), BOGOTA_752_14).flags == QC.NEGATIVE
    # a temperature below zero is weather, not a fault
    assert normalise(raw("temperature", -2.0, "°C"), None).flags == QC(0)
    assert normalise(raw("temperature", 20.0, "°F"), None).flags == QC(0)


def test_out_of_range_applies_to_raw_value_in_reported_unit() -> None:
    # range in ppb; the canonical value (µg/m³) would be above 500
    assert normalise(raw("no2", 400.0, "ppb"), None, range_=(0, 500)).flags == QC(0)
    assert normalise(raw("no2", 600.0, "ppb"), None, range_=(0, 500)).flags == QC.OUT_OF_RANGE
    assert normalise(raw("no2", 500.0, "ppb"), None, range_=(0, 500)).flags == QC(0)
    both = normalise(raw("no2", -10.0, "ppb"), None, range_=(-5, 500)).flags
    assert both == QC.NEGATIVE | QC.OUT_OF_RANGE
    assert not normalise(raw("no2", 600.0, "ppb"), None, range_=(0, 500)).valid


def test_device_status_and_receive_time_flags_carried() -> None:
    status = int(QC.DEVICE_INVALID | QC.MAINTENANCE)
    r = normalise(raw("no2", 10.0, "ppb", device_status=status, time_source="received"), None)
    assert r.flags == QC.DEVICE_INVALID | QC.MAINTENANCE | QC.RECEIVE_TIME
    assert not r.valid


@given(value=st.floats(min_value=0, max_value=1e4), temp_c=st.floats(min_value=-20, max_value=45),
       pressure_hpa=st.floats(min_value=600, max_value=1050))
def test_local_correction_matches_formula(value: float, temp_c: float, pressure_hpa: float) -> None:
    site = SiteConditions(temp_c, pressure_hpa, "own")
    r = normalise(raw("pm10", value, "µg/m³", conditions="local"), site)
    expected = value * (1013.25 / pressure_hpa) * ((temp_c + 273.15) / 298.15)
    assert r.value == pytest.approx(expected, rel=1e-12)


def test_site_conditions_validated() -> None:
    with pytest.raises(ValueError, match="pressure"):
        SiteConditions(14.0, 0.0, "own")
    with pytest.raises(ValueError, match="temperature"):
        SiteConditions(-300.0, 750.0, "own")
    with pytest.raises(dataclasses.FrozenInstanceError):
        BOGOTA_752_14.temp_c = 1.0  # type: ignore[misc]


def test_site_defaults_from_reference_json() -> None:
    site = load("reference")["site"]
    d = site_default_conditions()
    assert (d.temp_c, d.pressure_hpa, d.source) == (13.1, 750.0, "site-default")
    assert (site["mean_temperature_C"], site["typical_station_pressure_hPa"]) == (13.1, 750)


# -- ConditionsBook ------------------------------------------------------------------------------------------

def _station(sid: str, lat: float, lon: float, kind: str = "station") -> Sensor:
    return Sensor(id=sid, name=sid, kind=kind, lat=lat, lon=lon)  # type: ignore[arg-type]


def _reading(sensor_id: str, variable: str, value: float, time: datetime, flags: QC = NO_FLAGS) -> Reading:
    unit = {"temperature": "°C", "pressure": "hPa"}.get(variable, "µg/m³")
    return Reading(sensor_id, f"{sensor_id}-met", variable, time, value, unit, flags, value, unit, time)


NETWORK = [
    _station("A", 4.60, -74.10),
    _station("B", 4.61, -74.10),  # ~1.1 km north of A
    _station("C", 4.70, -74.10),  # ~11 km north of A
    _station("M", 4.6001, -74.1001, kind="microsensor"),  # next to A, but not a station
]


def test_book_defaults_when_nothing_observed() -> None:
    book = ConditionsBook(NETWORK)
    assert book.for_sensor("A", T0) == SiteConditions(13.1, 750.0, "site-default")
    custom = ConditionsBook(NETWORK, defaults=SiteConditions(10.0, 700.0, "site-default"))
    assert custom.for_sensor("A", T0).pressure_hpa == 700.0


def test_book_uses_own_recent_values() -> None:
    book = ConditionsBook(NETWORK)
    book.observe(_reading("A", "temperature", 14.0, T0))
    book.observe(_reading("A", "pressure", 752.0, T0))
    got = book.for_sensor("A", T0 + timedelta(minutes=30))
    assert got == SiteConditions(14.0, 752.0, "own")


def test_book_falls_back_to_nearest_station_then_default() -> None:
    book = ConditionsBook(NETWORK)
    book.observe(_reading("B", "pressure", 751.0, T0))
    book.observe(_reading("C", "pressure", 748.0, T0))
    book.observe(_reading("C", "temperature", 12.0, T0))
    got = book.for_sensor("A", T0)
    assert (got.temp_c, got.pressure_hpa) == (12.0, 751.0)
    assert got.source == "temperature:nearest:C;pressure:nearest:B"
    # the microsensor next to A uses the stations too
    assert book.for_sensor("M", T0).source == "temperature:nearest:C;pressure:nearest:B"


def test_book_ignores_microsensors_as_neighbours_but_uses_their_own() -> None:
    book = ConditionsBook(NETWORK)
    book.observe(_reading("M", "temperature", 18.0, T0))
    assert book.for_sensor("A", T0).source == "site-default"
    assert book.for_sensor("M", T0).temp_c == 18.0
    assert book.for_sensor("M", T0).source == "temperature:own;pressure:site-default"


def test_book_values_expire_after_max_age() -> None:
    book = ConditionsBook(NETWORK, max_age=timedelta(hours=2))
    book.observe(_reading("A", "temperature", 14.0, T0))
    book.observe(_reading("B", "temperature", 15.0, T0 + timedelta(hours=1)))
    assert book.for_sensor("A", T0 + timedelta(hours=2)).source.startswith("temperature:own")
    later = book.for_sensor("A", T0 + timedelta(hours=2, minutes=1))
    assert later.temp_c == 15.0
    assert later.source.startswith("temperature:nearest:B")
    assert book.for_sensor("A", T0 + timedelta(hours=3, minutes=1)).source == "site-default"


def test_book_keeps_newest_and_skips_invalid_and_other_variables() -> None:
    book = ConditionsBook(NETWORK)
    book.observe(_reading("A", "temperature", 14.0, T0))
    book.observe(_reading("A", "temperature", 99.0, T0 - timedelta(minutes=5)))  # older: ignored
    book.observe(_reading("A", "temperature", 50.0, T0 + timedelta(minutes=1), QC.OUT_OF_RANGE))  # invalid
    book.observe(_reading("A", "temperature_8m", 40.0, T0 + timedelta(minutes=1)))  # not ground temperature
    book.observe(_reading("A", "pm25", 30.0, T0))
    assert book.for_sensor("A", T0 + timedelta(minutes=2)).temp_c == 14.0
    # suspect but not excluded values are used
    book.observe(_reading("A", "temperature", 15.0, T0 + timedelta(minutes=2), QC.SPIKE))
    assert book.for_sensor("A", T0 + timedelta(minutes=2)).temp_c == 15.0


def test_book_unknown_sensor_gets_own_or_default() -> None:
    book = ConditionsBook(NETWORK)
    book.observe(_reading("B", "temperature", 15.0, T0))
    assert book.for_sensor("ZZ", T0).source == "site-default"


def test_book_on_bundled_network_uses_great_circle_nearest() -> None:
    network = bundled_network()
    book = ConditionsBook(network)
    by_id = {s.id: s for s in network}
    stations = [s for s in network if s.kind == "station"]
    for s in stations:
        book.observe(_reading(s.id, "pressure", 700.0 + stations.index(s), T0))
    target = by_id["MS21"]
    nearest = min(stations, key=lambda s: (s.lat - target.lat) ** 2
                  + ((s.lon - target.lon) * math.cos(math.radians(4.6))) ** 2)
    got = book.for_sensor("MS21", T0)
    assert got.source == f"temperature:site-default;pressure:nearest:{nearest.id}"


def test_book_flows_into_normalise() -> None:
    book = ConditionsBook(NETWORK)
    for r in (normalise(raw("temperature", 57.2, "°F", sensor_id="A"), None),
              normalise(raw("pressure", 564.05, "mmHg", sensor_id="A"), None)):
        book.observe(r)
    site = book.for_sensor("A", T0)
    assert site.source == "own"
    pm = normalise(raw("pm25", 30.0, "µg/m³", sensor_id="A", conditions="local"), site)
    assert pm.value == pytest.approx(38.93, abs=5e-3)
