"""ingest.normalise: conversion, reference-condition correction, flags, and the ConditionsBook."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.calibration import Calibration, CalibrationBook
from ingest.normalise import (
    REPORTED_REFERENCE,
    ConditionsBook,
    NormaliseError,
    SiteConditions,
    normalise,
    renormalise,
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


# -- provenance and calibration ------------------------------------------------------------------------------

def _cal(id_: int = 5, *, kind: str = "linear", coefficients: tuple[float, ...] = (1.1, -2.0), unit: str = "ppb",
         device: str = "USQ-pm", variable: str = "no2", start: datetime = T0 - timedelta(days=1),
         end: datetime | None = None) -> Calibration:
    return Calibration(id_, device, variable, kind, coefficients, unit, start, end)  # type: ignore[arg-type]


NO2_G_MOL = 46.0055  # conversions.json molecular weight of NO2 (CRC)


def test_provenance_of_a_local_mass_concentration() -> None:
    r = normalise(raw("pm25", 30.0, "ug/m3", conditions="local"), BOGOTA_752_14)
    assert (r.conditions_temp_c, r.conditions_pressure_hpa, r.conditions_source) == (14.0, 752.0, "own")
    assert (r.calibration_id, r.calibration_rh_pct) == (None, None)


def test_provenance_of_reference_mass_gas_and_met() -> None:
    ref = normalise(raw("pm10", 30.0, "µg/m³", conditions="reference"), BOGOTA_752_14)
    assert (ref.conditions_temp_c, ref.conditions_pressure_hpa, ref.conditions_source) == \
        (None, None, REPORTED_REFERENCE)
    for r in (normalise(raw("no2", 40.0, "ppb", conditions="local"), BOGOTA_752_14),
              normalise(raw("temperature", 14.0, "°C"), BOGOTA_752_14)):
        assert (r.conditions_temp_c, r.conditions_pressure_hpa, r.conditions_source) == (None, None, None)


def test_calibration_applies_in_reported_unit_before_conversion() -> None:
    # 40 ppb · 1.1 − 2 = 42 ppb, then ppb → µg/m³ at 24.45 L/mol; the offset is in ppb, not µg/m³
    book = CalibrationBook([_cal()])
    r = normalise(raw("no2", 40.0, "ppb"), None, calibrations=book)
    assert r.value == pytest.approx(42.0 * NO2_G_MOL / 24.45, rel=1e-12)
    assert r.flags == QC.CALIBRATED and r.calibration_id == 5 and r.valid
    assert (r.raw_value, r.raw_unit) == (40.0, "ppb")  # raw kept as reported


def test_calibration_before_reference_correction_of_local_pm() -> None:
    book = CalibrationBook([_cal(kind="linear", coefficients=(0.5, 0.0), unit="µg/m³", variable="pm25")])
    r = normalise(raw("pm25", 60.0, "ug/m3", conditions="local"), BOGOTA_752_14, calibrations=book)
    uncalibrated = normalise(raw("pm25", 30.0, "ug/m3", conditions="local"), BOGOTA_752_14)
    assert r.value == pytest.approx(uncalibrated.value, rel=1e-12)  # 0.5 · 60 = 30, then corrected: 38.93
    assert r.conditions_source == "own" and r.calibration_id == 5


def test_calibration_outside_its_validity_or_of_another_device_not_applied() -> None:
    book = CalibrationBook([_cal(end=T0), _cal(6, device="KEN-nox", start=T0)])
    r = normalise(raw("no2", 40.0, "ppb"), None, calibrations=book)  # raw time T0: the first ended at T0
    assert r.flags == QC(0) and r.calibration_id is None


def test_calibration_in_another_unit_is_an_error() -> None:
    book = CalibrationBook([_cal(unit="ppm")])
    with pytest.raises(NormaliseError) as err:
        normalise(raw("no2", 40.0, "ppb"), None, calibrations=book)
    assert err.value.reason == "calibration_unit"
    assert "calibration 5" in str(err.value) and "ppm" in str(err.value)


def test_calibration_yielding_non_finite_is_an_error() -> None:
    book = CalibrationBook([_cal(kind="polynomial", coefficients=(0.0, 1.0, 1e300))])
    with pytest.raises(NormaliseError) as err:
        normalise(raw("no2", 1e10, "ppb"), None, calibrations=book)
    assert err.value.reason == "calibration_not_finite"


def test_range_is_judged_on_the_reported_value_before_calibration() -> None:
    book = CalibrationBook([_cal(coefficients=(10.0, 0.0))])
    r = normalise(raw("no2", 400.0, "ppb"), None, range_=(0, 500), calibrations=book)
    assert r.flags == QC.CALIBRATED


def test_negative_after_calibration_is_flagged() -> None:
    book = CalibrationBook([_cal(coefficients=(1.0, -5.0))])
    assert normalise(raw("no2", 2.0, "ppb"), None, calibrations=book).flags == QC.CALIBRATED | QC.NEGATIVE


def test_humidity_calibration_uses_the_sites_rh_and_records_it() -> None:
    book = CalibrationBook([_cal(kind="humidity", coefficients=(0.165,), unit="ug/m3", variable="pm25")])
    site = SiteConditions(14.0, 752.0, "own", rh_pct=50.0)
    r = normalise(raw("pm25", 33.0, "µg/m³", conditions="local"), site, calibrations=book)
    expected = normalise(raw("pm25", 30.0, "µg/m³", conditions="local"), site).value  # 33 / 1.1 = 30
    assert r.value == pytest.approx(expected, rel=1e-12)
    assert (r.calibration_id, r.calibration_rh_pct) == (5, 50.0) and QC.CALIBRATED in r.flags


@pytest.mark.parametrize("rh", [None, 100.0])
def test_humidity_calibration_without_usable_rh_leaves_the_reading_uncalibrated(rh: float | None) -> None:
    book = CalibrationBook([_cal(kind="humidity", coefficients=(0.165,), unit="ug/m3", variable="pm25")])
    site = SiteConditions(14.0, 752.0, "own", rh_pct=rh)
    r = normalise(raw("pm25", 33.0, "µg/m³", conditions="local"), site, calibrations=book)
    assert r.flags == QC(0) and r.calibration_id is None and r.calibration_rh_pct is None
    assert r.value == normalise(raw("pm25", 33.0, "µg/m³", conditions="local"), site).value


def test_book_tracks_own_relative_humidity_only() -> None:
    book = ConditionsBook(NETWORK)
    book.observe(dataclasses.replace(_reading("B", "relativehumidity", 80.0, T0), unit="%", raw_unit="%"))
    assert book.for_sensor("A", T0).rh_pct is None  # never a neighbour's
    book.observe(dataclasses.replace(_reading("A", "relativehumidity", 64.0, T0), unit="%", raw_unit="%"))
    assert book.for_sensor("A", T0).rh_pct == 64.0
    assert book.for_sensor("A", T0 + timedelta(hours=3)).rh_pct is None  # expired


# -- renormalise (aqnet reprocess) ---------------------------------------------------------------------------

def test_renormalise_applies_a_calibration_added_after_the_fact() -> None:
    stored = normalise(raw("pm25", 60.0, "ug/m3", conditions="local"), BOGOTA_752_14)
    book = CalibrationBook([_cal(kind="linear", coefficients=(0.5, 0.0), unit="µg/m³", variable="pm25")])
    again = renormalise(stored, book)
    assert again == normalise(raw("pm25", 60.0, "ug/m3", conditions="local"), BOGOTA_752_14, calibrations=book)
    # with the same T/P as recorded, whatever the conditions are now: never re-resolved, never corrected twice
    assert (again.conditions_temp_c, again.conditions_pressure_hpa, again.conditions_source) == (14.0, 752.0, "own")
    assert renormalise(again, book) == again
    # and removing the calibration (revoked) restores the uncalibrated value
    assert renormalise(again, CalibrationBook()) == stored


def test_renormalise_keeps_other_flags_and_rederives_negative() -> None:
    stored = normalise(raw("no2", 3.0, "ppb", time_source="received"), None, range_=(0, 2))
    stored = dataclasses.replace(stored, flags=stored.flags | QC.SPIKE | QC.STALE)
    again = renormalise(stored, CalibrationBook([_cal(coefficients=(1.0, -5.0))]))
    assert again.flags == QC.OUT_OF_RANGE | QC.RECEIVE_TIME | QC.SPIKE | QC.STALE | QC.CALIBRATED | QC.NEGATIVE


def test_renormalise_reference_pm_stays_uncorrected() -> None:
    stored = normalise(raw("pm10", 30.0, "µg/m³", conditions="reference"), BOGOTA_752_14)
    assert renormalise(stored, None) == stored


def test_renormalise_refuses_mass_without_recorded_conditions() -> None:
    legacy = dataclasses.replace(normalise(raw("pm25", 30.0, "ug/m3", conditions="local"), BOGOTA_752_14),
                                 conditions_temp_c=None, conditions_pressure_hpa=None, conditions_source=None)
    with pytest.raises(NormaliseError) as err:
        renormalise(legacy, None)
    assert err.value.reason == "no_provenance"
    nan_raw = dataclasses.replace(normalise(raw("no2", 3.0, "ppb"), None), raw_value=math.nan)
    with pytest.raises(NormaliseError) as err:
        renormalise(nan_raw, None)
    assert err.value.reason == "not_finite"


def test_renormalise_humidity_uses_recorded_rh_first() -> None:
    book = CalibrationBook([_cal(kind="humidity", coefficients=(0.165,), unit="ug/m3", variable="pm25")])
    site = SiteConditions(14.0, 752.0, "own", rh_pct=50.0)
    stored = normalise(raw("pm25", 33.0, "µg/m³", conditions="local"), site, calibrations=book)
    assert renormalise(stored, book, rh_pct=90.0) == stored
    uncorrected = normalise(raw("pm25", 33.0, "µg/m³", conditions="local"), SiteConditions(14.0, 752.0, "own"))
    assert renormalise(uncorrected, book, rh_pct=50.0) == stored


@given(value=st.floats(min_value=-50, max_value=5000), a=st.floats(min_value=0.2, max_value=3.0),
       b=st.floats(min_value=-20, max_value=20), temp_c=st.floats(min_value=-10, max_value=40),
       pressure_hpa=st.floats(min_value=600, max_value=1050),
       variable=st.sampled_from(["pm25", "no2"]), conditions=st.sampled_from(["local", "reference"]))
def test_renormalise_equals_normalising_with_the_calibration(value: float, a: float, b: float, temp_c: float,
                                                             pressure_hpa: float, variable: str,
                                                             conditions: str) -> None:
    unit = "ppb" if variable == "no2" else "ug/m3"
    site = SiteConditions(temp_c, pressure_hpa, "nearest:USQ")
    book = CalibrationBook([_cal(coefficients=(a, b), unit=unit, variable=variable)])
    r = raw(variable, value, unit, conditions=conditions)
    stored = normalise(r, site)
    assert renormalise(stored, book) == normalise(r, site, calibrations=book)
    assert renormalise(renormalise(stored, book), book) == renormalise(stored, book)


def test_a_changed_network_keeps_the_observed_conditions() -> None:
    from datetime import UTC, datetime

    from ingest.normalise import ConditionsBook
    from ingest.reading import QC, Reading
    from sensors.sensor import Sensor

    t = datetime(2026, 5, 1, 12, tzinfo=UTC)
    station = Sensor("ST1", "Station", "station", 4.60, -74.10)
    micro = Sensor("MS1", "Micro", "microsensor", 4.61, -74.10)
    book = ConditionsBook([station, micro])
    for variable, value, unit in (("temperature", 14.0, "°C"), ("pressure", 750.0, "hPa")):
        book.observe(Reading("ST1", "ST1-met", variable, t, value, unit, QC(0), value, unit, t))
    newcomer = Sensor("MS2", "New micro", "microsensor", 4.62, -74.10)
    moved = book.with_network([station, micro, newcomer])
    got = moved.for_sensor("MS2", t)
    assert (got.temp_c, got.pressure_hpa, got.source) == (14.0, 750.0, "nearest:ST1")
