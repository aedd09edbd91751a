"""Fault injection, pure: FaultPlan's value, station and next-change answers for every kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulators.faults import MESSAGE_ONLY, MODBUS_ONLY, VALUE_KINDS, FaultKind, FaultPlan, FaultSpec, StationFaults

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DEVICES = ("KEN-pm", "KEN-nox", "KEN-met")


def spec(kind: FaultKind, start_min: float = 10, end_min: float = 20, **kw: object) -> FaultSpec:
    return FaultSpec(kind=kind, start=T0 + timedelta(minutes=start_min), end=T0 + timedelta(minutes=end_min),
                     **kw)  # type: ignore[arg-type]


def ramp(t: datetime) -> float:
    return 10.0 + (t - T0).total_seconds() / 60


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_every_kind_is_classified_once_or_is_a_value_kind() -> None:
    assert not MODBUS_ONLY & MESSAGE_ONLY
    assert not VALUE_KINDS & (MODBUS_ONLY | MESSAGE_ONLY)
    assert set(FaultKind) == VALUE_KINDS | MODBUS_ONLY | MESSAGE_ONLY


def test_fault_needs_aware_ordered_times() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        FaultSpec(FaultKind.SPIKE, datetime(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(ValueError, match="not before"):
        spec(FaultKind.SPIKE, 20, 10)


def test_window_is_half_open_and_scoped_to_sensor_and_variable() -> None:
    f = spec(FaultKind.NEGATIVE, sensors=frozenset({"KEN"}), variable="pm25")
    assert not f.applies("KEN", at(9.99))
    assert f.applies("KEN", at(10)) and f.applies("KEN", at(19.99))
    assert not f.applies("KEN", at(20))
    assert not f.applies("USM", at(15))
    assert f.applies("KEN", at(15), "pm25") and not f.applies("KEN", at(15), "no2")


def test_value_faults_change_only_the_window() -> None:
    plan = FaultPlan([spec(FaultKind.FLATLINE, 10, 20), spec(FaultKind.NEGATIVE, 30, 40, params={"value": -3}),
                      spec(FaultKind.DROPOUT, 50, 60),
                      spec(FaultKind.SPIKE, 70, 90, params={"factor": 5, "every_s": 600, "width_s": 60})])
    assert plan.value("KEN", "pm25", at(5), ramp) == ramp(at(5))
    assert plan.value("KEN", "pm25", at(15), ramp) == plan.value("KEN", "pm25", at(19), ramp) == ramp(at(10))
    assert plan.value("KEN", "pm25", at(35), ramp) == -3
    assert plan.value("KEN", "pm25", at(55), ramp) is None
    assert plan.value("KEN", "pm25", at(70.5), ramp) == pytest.approx(5 * ramp(at(70.5)))
    assert plan.value("KEN", "pm25", at(72), ramp) == ramp(at(72))  # between spikes
    assert plan.value("KEN", "pm25", at(80.5), ramp) == pytest.approx(5 * ramp(at(80.5)))  # the next one
    assert plan.value("KEN", "pm25", at(95), ramp) == ramp(at(95))


def test_station_dropout_takes_it_offline_and_device_faults_hit_their_devices() -> None:
    plan = FaultPlan([
        spec(FaultKind.DROPOUT, 0, 10, sensors=frozenset({"KEN"})),
        spec(FaultKind.MODBUS_HANG, 10, 20, sensors=frozenset({"KEN"}), devices=frozenset({"KEN-nox"})),
        spec(FaultKind.MODBUS_EXCEPTION, 10, 30, sensors=frozenset({"KEN"}), params={"code": 6}),
        spec(FaultKind.WORD_ORDER, 25, 35, sensors=frozenset({"KEN"}), devices=frozenset({"KEN-pm"})),
        spec(FaultKind.DROPOUT, 40, 50, sensors=frozenset({"KEN"}), variable="pm25"),
    ])
    assert plan.station("KEN", DEVICES, at(5)) == StationFaults(offline=True)
    assert plan.station("USM", ("USM-pm",), at(5)) == StationFaults()
    mid = plan.station("KEN", DEVICES, at(15))
    assert not mid.offline and mid.hang == {"KEN-nox"}
    assert dict(mid.exception) == {"KEN-pm": 6, "KEN-met": 6}  # the hang wins on KEN-nox
    late = plan.station("KEN", DEVICES, at(27))
    assert late.swapped == {"KEN-pm"} and dict(late.exception) == dict.fromkeys(DEVICES, 6)
    # a variable's dropout silences the variable (value → None), not the station
    assert plan.station("KEN", DEVICES, at(45)) == StationFaults()
    assert plan.value("KEN", "pm25", at(45), ramp) is None
    assert plan.value("KEN", "pm10", at(45), ramp) == ramp(at(45))


def test_next_change_walks_every_edge() -> None:
    plan = FaultPlan([spec(FaultKind.MODBUS_HANG, 10, 20), spec(FaultKind.WORD_ORDER, 15, 30)])
    edges = []
    t = T0
    while (t := plan.next_change(t)) is not None:  # type: ignore[assignment]
        edges.append((t - T0).total_seconds() / 60)
    assert edges == [10, 15, 20, 30]
    assert FaultPlan().next_change(T0) is None


def test_a_station_dropout_is_its_link_not_its_values() -> None:
    plan = FaultPlan([spec(FaultKind.DROPOUT, 10, 20), spec(FaultKind.DROPOUT, 30, 40, variable="pm25")])
    assert plan.value("KEN", "pm25", at(15), ramp) is None  # a microsensor falls silent
    assert plan.value("KEN", "pm25", at(15), ramp, station=True) == ramp(at(15))  # the logger keeps logging
    assert plan.value("KEN", "pm25", at(35), ramp, station=True) is None  # one variable's dropout: no value
