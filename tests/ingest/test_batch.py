"""The numpy batch path (`ingest.batch.BatchNormaliser`) against the reading-by-reading reference
(`ingest.batch.normalise_each`): the same readings, flags, provenance, refusals, QC states and site conditions on
random batches, over consecutive batches so the state carries."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.batch import BatchNormaliser, Normalised, normalise_each
from ingest.calibration import Calibration, CalibrationBook
from ingest.maintenance import MaintenanceBook, MaintenanceWindow
from ingest.normalise import ConditionsBook
from ingest.plausibility import TimeWindow
from ingest.qc import QCState
from ingest.reading import QC
from ingest.units import accepted_units
from sensors.network import bundled_network
from sensors.reading import RawReading
from sensors.zero_span import CheckSchedule

T0 = datetime(2026, 11, 23, 0, tzinfo=UTC)
SENSORS = ("USQ", "CSE", "MS01", "MS02", "XX9")  # two stations, two microsensors, one outside the network
DEVICES = ("d1", "d2")
#: variable → units it may come in (some wrong on purpose: refused with the scalar path's words)
UNITS = {
    "pm25": ("µg/m³", "ug/m3", "mg/m³", "ppb"),
    "pm10": ("µg/m³",),
    "no2": ("ppb", "ppm", "µg/m³"),
    "co": ("ppm", "mg/m³"),
    "co2": ("ppm", "ppb"),
    "bc": ("ng/m³",),
    "temperature": ("°C", "degF", "K"),
    "pressure": ("hPa", "mmHg", "kPa"),
    "relativehumidity": ("%",),
    "wind_speed": ("m/s", "km/h"),
    "xyz": ("µg/m³",),
    "o3": ("furlongs",),
}
#: few values, so runs of identical values (FLATLINE), and big jumps (SPIKE)
VALUES = st.one_of(st.sampled_from([0.0, 12.0, 12.0, 12.0, 40.0, 100.0, 512.0, 750.0, 3000.0, -3.0, 99.5, 20000.0]),
                   st.floats(-100, 5000, allow_nan=False), st.integers(0, 80),
                   st.sampled_from([math.nan, math.inf, -math.inf, 1e308]))
MINUTES = st.one_of(st.sampled_from([0, 1, 2, 5, 60, 7 * 60, 13 * 60]), st.integers(0, 24 * 60))


@st.composite
def raw_readings(draw: st.DrawFn, now: datetime, series: list[tuple[str, str, str, str]],
                 minutes: list[int]) -> RawReading:
    sensor, device, var, unit = draw(st.sampled_from(series))
    time = T0 + timedelta(minutes=draw(st.sampled_from(minutes)), seconds=draw(st.sampled_from([0, 0, 30])))
    when = draw(st.sampled_from(["ok"] * 6 + ["future", "ancient", "skewed", "stale"]))
    received = time + timedelta(seconds=5)
    if when == "future":
        time = now + timedelta(days=2)
    elif when == "ancient":
        time = now - timedelta(days=40)
    elif when == "skewed":
        received = time - timedelta(minutes=20)
    elif when == "stale":
        received = time + timedelta(hours=2)
    source = draw(st.sampled_from(["device"] * 5 + ["received"]))
    if source == "received":
        time = received = now
    return RawReading(sensor, device, var, draw(VALUES), unit, time, received,
                      conditions=draw(st.sampled_from(["local", "local", "local", "reference", None])),
                      device_status=draw(st.sampled_from([0] * 6 + [int(QC.DEVICE_INVALID), int(QC.MAINTENANCE)])),
                      time_source=source)


@st.composite
def calibration_books(draw: st.DrawFn) -> CalibrationBook:
    cals = []
    for n, (device, var) in enumerate(draw(st.sets(st.tuples(st.sampled_from(DEVICES), st.sampled_from(
            ["pm25", "pm10", "no2", "co", "temperature", "relativehumidity"])), max_size=6))):
        valid = [u for u in UNITS[var] if u in accepted_units(var) or u == "ug/m3"]
        kind = draw(st.sampled_from(["linear", "polynomial", "humidity", "linear_rh"]))
        if kind == "linear":
            coefficients: tuple[float, ...] = (draw(st.sampled_from([0.5, 1.1, -2.0, 1e300])),
                                               draw(st.floats(-5, 5)))
        elif kind == "polynomial":
            coefficients = (draw(st.floats(-5, 5)), draw(st.sampled_from([1.0, 0.9])),
                            *draw(st.lists(st.sampled_from([0.0, 0.01, -0.002, 1e200]), max_size=3)))
        elif kind == "linear_rh":  # the co-location fit's form, and Barkjohn et al. 2021's coefficients
            coefficients = (draw(st.sampled_from([0.524, 1.3, -0.7, 1e300])), draw(st.floats(-1, 1)),
                            draw(st.sampled_from([5.75, 0.0, -3.0])))
        else:
            coefficients = (draw(st.sampled_from([0.0, 0.2, 0.6])),)
        start = T0 + timedelta(hours=draw(st.integers(-2, 10)))
        end = draw(st.sampled_from([None, start + timedelta(hours=draw(st.integers(1, 12)))]))
        unit_of_cal = draw(st.sampled_from(valid))
        cals.append(Calibration(n + 1, device, var, kind, coefficients, unit_of_cal, start, end))  # type: ignore[arg-type]
    return CalibrationBook(cals)


@st.composite
def maintenance_books(draw: st.DrawFn) -> MaintenanceBook | None:
    if draw(st.booleans()):
        return None
    windows = []
    for _ in range(draw(st.integers(0, 4))):
        start = T0 + timedelta(hours=draw(st.integers(0, 20)))
        windows.append(MaintenanceWindow(draw(st.sampled_from(SENSORS)), start,
                                         start + timedelta(hours=draw(st.integers(1, 6))),
                                         device_id=draw(st.sampled_from([None, *DEVICES])),
                                         variable=draw(st.sampled_from([None, "pm25", "temperature"]))))
    checks = [CheckSchedule(draw(st.sampled_from(SENSORS)), draw(st.sampled_from(DEVICES)), "o3", UTC,
                            at_minute=draw(st.integers(0, 1439)), zero_min=draw(st.integers(1, 90)),
                            span_min=draw(st.integers(1, 90)), purge_min=draw(st.integers(0, 90)),
                            span_value=400.0, unit="ppb") for _ in range(draw(st.integers(0, 2)))]
    return MaintenanceBook(windows, sensors_in_maintenance=draw(st.sets(st.sampled_from(SENSORS), max_size=1)),
                           checks=checks)


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    # a few series and a few times per scenario, so that series repeat within and across batches
    series = draw(st.lists(st.sampled_from(sorted(UNITS)).flatmap(lambda var: st.tuples(
        st.sampled_from(SENSORS), st.sampled_from(DEVICES), st.just(var), st.sampled_from(UNITS[var]))),
        min_size=1, max_size=8))
    series += [(sensor, "d1", var, unit) for sensor in ("MS01", "USQ")
               for var, unit in (("temperature", "°C"), ("relativehumidity", "%"), ("pm25", "µg/m³"))
               if draw(st.booleans())]
    minutes = draw(st.lists(MINUTES, min_size=1, max_size=6))
    nows = sorted(T0 + timedelta(hours=draw(st.integers(0, 26))) for _ in range(draw(st.integers(1, 4))))
    batches = [draw(st.lists(raw_readings(now, series, minutes), min_size=1, max_size=40)) for now in nows]
    for i in range(1, len(batches)):  # redeliveries: readings of the batch before, exactly
        if draw(st.booleans()):
            batches[i] = batches[i] + batches[i - 1][-draw(st.integers(1, 5)):]
    ranges = {(d, v): draw(st.sampled_from([(0.0, 1000.0), (-10.0, 50.0), (math.nan, 1.0)]))
              for d, v in draw(st.sets(st.tuples(st.sampled_from(DEVICES), st.sampled_from(sorted(UNITS))),
                                       max_size=4))}
    return {"nows": nows, "batches": batches, "ranges": ranges, "calibrations": draw(calibration_books()),
            "maintenance": draw(maintenance_books())}


def _run(scenario: dict, batch: bool) -> tuple[list[Normalised], dict, ConditionsBook]:
    book = ConditionsBook(bundled_network())
    qc: dict[tuple[str, str, str], QCState] = {}
    normaliser = BatchNormaliser(min_batch=0)
    outs = []
    for now, raws in zip(scenario["nows"], scenario["batches"], strict=True):
        kw = {"conditions": book, "qc": qc, "ranges": scenario["ranges"], "calibrations": scenario["calibrations"],
              "maintenance": scenario["maintenance"]}
        outs.append(normaliser(raws, now, **kw) if batch else
                    normalise_each(raws, now, time_window=TimeWindow(), **kw))
    return outs, qc, book


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_batch_path_equals_the_reading_by_reading_path(scenario: dict) -> None:
    (want, want_qc, want_book), (got, got_qc, got_book) = _run(scenario, batch=False), _run(scenario, batch=True)
    for w, g in zip(want, got, strict=True):
        assert g.refused == w.refused
        assert len(g.readings) == len(w.readings)
        for rw, rg in zip(w.readings, g.readings, strict=True):
            assert rg == rw
            assert int(rg.flags) == int(rw.flags)
    assert got_qc == want_qc
    assert got_book._latest == want_book._latest


def _both_agree(batches: list[list[RawReading]], nows: list[datetime], *,
                calibrations: CalibrationBook | None = None) -> list[Normalised]:
    scenario = {"nows": nows, "batches": batches, "ranges": {}, "calibrations": calibrations, "maintenance": None}
    (want, want_qc, _), (got, got_qc, _) = _run(scenario, batch=False), _run(scenario, batch=True)
    assert got == want
    assert got_qc == want_qc
    return got


def _pm(value: float, at: datetime, variable: str = "pm25", unit: str = "µg/m³") -> RawReading:
    return RawReading("MS01", "d1", variable, value, unit, at, at + timedelta(seconds=1), conditions="reference")


def test_spike_limits_and_the_one_minute_floor_match_at_their_edges() -> None:
    t = T0 + timedelta(hours=1)
    # 0 → 300 µg/m³ 30 s apart is 300 per minute over the 60 s floor (no spike), 600 without it; the limit is
    # 500 per minute (490 no, 510 yes)
    batch = [_pm(0.0, t), _pm(300.0, t + timedelta(seconds=30)), _pm(790.0, t + timedelta(minutes=1, seconds=30)),
             _pm(1300.0, t + timedelta(minutes=2, seconds=30))]
    got = _both_agree([batch], [t + timedelta(minutes=5)])
    assert [bool(r.flags & QC.SPIKE) for r in got[0].readings] == [False, False, False, True]


def test_flatline_starts_strictly_after_its_duration_across_batches() -> None:
    t = T0 + timedelta(hours=1)
    runs = [[_pm(12.0, t)], [_pm(12.0, t + timedelta(hours=3))], [_pm(12.0, t + timedelta(hours=6)),
                                                                   _pm(12.0, t + timedelta(hours=6, seconds=1))]]
    got = _both_agree(runs, [t + timedelta(minutes=1), t + timedelta(hours=3, minutes=1),
                             t + timedelta(hours=6, minutes=1)])
    assert [bool(r.flags & QC.FLATLINE) for out in got for r in out.readings] == [False, False, False, True]


def test_a_humidity_calibration_is_not_applied_at_100_percent() -> None:
    t = T0 + timedelta(hours=1)
    book = CalibrationBook([Calibration(1, "d1", "pm25", "humidity", (0.4,), "µg/m³", T0)])
    for rh, calibrated in ((99.0, True), (100.0, False)):
        batch = [RawReading("MS01", "d1", "relativehumidity", rh, "%", t, t), _pm(30.0, t)]
        got = _both_agree([batch], [t + timedelta(minutes=1)], calibrations=book)
        assert bool(got[0].readings[1].flags & QC.CALIBRATED) is calibrated


def test_a_linear_rh_calibration_applies_up_to_100_percent() -> None:
    t = T0 + timedelta(hours=1)
    book = CalibrationBook([Calibration(1, "d1", "pm25", "linear_rh", (0.524, -0.0862, 5.75), "µg/m³", T0)])
    for rh, calibrated in ((100.0, True), (100.5, False), (-1.0, False), (40.0, True)):
        batch = [RawReading("MS01", "d1", "relativehumidity", rh, "%", t, t), _pm(30.0, t)]
        got = _both_agree([batch], [t + timedelta(minutes=1)], calibrations=book)
        reading = got[0].readings[1]
        assert bool(reading.flags & QC.CALIBRATED) is calibrated
        assert reading.calibration_rh_pct == (rh if calibrated else None)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.one_of(st.floats(-5, 105, allow_nan=False), st.sampled_from([0.0, 100.0, math.nan])),
                               VALUES, st.sampled_from(["d1", "d2"])), min_size=1, max_size=30),
       a=st.sampled_from([0.524, 1.3, -0.7, 1e300]), b=st.floats(-1, 1), c=st.sampled_from([5.75, 0.0, -3.0, 0.1]),
       kappa=st.sampled_from([0.0, 0.2, 0.6]))
def test_humidity_covariate_calibrations_match_reading_by_reading(rows: list[tuple[float, float, str]], a: float,
                                                                  b: float, c: float, kappa: float) -> None:
    """The forms that need RH, always in force (d1: linear_rh, d2: humidity), with the RH of the same message:
    the batch path gives the reference's values bit for bit (the general scenario above rarely has both)."""
    book = CalibrationBook([Calibration(1, "d1", "pm25", "linear_rh", (a, b, c), "µg/m³", T0 - timedelta(days=1)),
                            Calibration(2, "d2", "pm25", "humidity", (kappa,), "µg/m³", T0 - timedelta(days=1))])
    batches = []
    for i, (rh, pm, device) in enumerate(rows):
        t = T0 + timedelta(minutes=i)
        batches.append([RawReading("MS01", "d1", "relativehumidity", rh, "%", t, t), _pm(pm, t),
                        RawReading("MS01", device, "pm25", pm, "µg/m³", t, t + timedelta(seconds=1),
                                   conditions="local")])
    got = _both_agree(batches, [T0 + timedelta(minutes=i, seconds=30) for i in range(len(rows))],
                      calibrations=book)
    # not vacuous: a row with an ordinary RH and PM (and a slope that cannot overflow) is calibrated on some device
    ordinary = [row for row in rows if 0.0 <= row[0] < 100.0 and 0.0 <= row[1] <= 5000.0]
    if ordinary and a != 1e300:
        assert any(r.calibration_id is not None for out in got for r in out.readings), ordinary
