"""ingest.calibration: the linear, polynomial, humidity and linear_rh forms, validation, and the CalibrationBook."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.calibration import (
    KAPPA_DENSITY_RATIO,
    Calibration,
    CalibrationBook,
    CalibrationError,
    humidity_corrected,
    humidity_growth_factor,
    linear,
    linear_rh,
    polynomial,
    rh_usable,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def cal(id_: int = 1, *, kind: str = "linear", coefficients: tuple[float, ...] = (1.1, -2.0),
        unit: str = "ppb", device: str = "USQ-nox", variable: str = "no2", start: datetime = T0,
        end: datetime | None = None) -> Calibration:
    return Calibration(id_, device, variable, kind, coefficients, unit, start, end)  # type: ignore[arg-type]


def test_linear_and_polynomial_forms() -> None:
    assert linear(40.0, 1.1, -2.0) == pytest.approx(42.0)
    assert polynomial(2.0, (1.0, 2.0, 3.0)) == pytest.approx(1 + 4 + 12)
    assert cal().apply(40.0) == pytest.approx(42.0)
    assert cal(kind="polynomial", coefficients=(0.5, 1.0, 0.01)).apply(10.0) == pytest.approx(11.5)


@given(x=st.floats(min_value=-1e3, max_value=1e3),
       cs=st.lists(st.floats(min_value=-10, max_value=10), min_size=1, max_size=6))
def test_polynomial_is_the_sum_of_its_terms(x: float, cs: list[float]) -> None:
    expected = sum(c * x ** i for i, c in enumerate(cs))
    assert polynomial(x, cs) == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_humidity_correction_worked_example() -> None:
    # κ = 0.165 makes κ/1.65 = 0.1; at RH 50 % a_w/(1 − a_w) = 1, so C = 1.1: 110 → 100 µg/m³
    assert humidity_growth_factor(50.0, 0.165) == pytest.approx(1.1)
    assert humidity_corrected(110.0, 50.0, 0.165) == pytest.approx(100.0)
    assert humidity_growth_factor(0.0, 0.4) == 1.0  # dry air: no growth
    pm = cal(kind="humidity", coefficients=(0.165,), unit="ug/m3", device="MS01-pm", variable="pm25")
    assert pm.needs_humidity
    assert pm.apply(110.0, rh_pct=50.0) == pytest.approx(100.0)


@pytest.mark.parametrize("rh", [100.0, 100.5, -1.0, math.nan, math.inf])
def test_humidity_form_undefined_outside_0_to_100(rh: float) -> None:
    assert humidity_growth_factor(rh, 0.3) is None
    pm = cal(kind="humidity", coefficients=(0.3,), unit="ug/m3", device="MS01-pm", variable="pm25")
    assert pm.apply(50.0, rh_pct=rh) is None
    assert pm.apply(50.0) is None  # no RH at all


@given(rh=st.floats(min_value=0.0, max_value=99.9), kappa=st.floats(min_value=0.0, max_value=1.5),
       x=st.floats(min_value=0.0, max_value=1e4))
def test_humidity_matches_crilley_form_and_never_increases(rh: float, kappa: float, x: float) -> None:
    a_w = rh / 100
    crilley = 1 + (kappa / KAPPA_DENSITY_RATIO) / (-1 + 1 / a_w) if a_w > 0 else 1.0
    factor = humidity_growth_factor(rh, kappa)
    assert factor == pytest.approx(crilley, rel=1e-9)
    corrected = humidity_corrected(x, rh, kappa)
    assert corrected is not None and 0.0 <= corrected <= x


@given(lo=st.floats(min_value=0.0, max_value=98.0), step=st.floats(min_value=0.1, max_value=1.9),
       kappa=st.floats(min_value=0.01, max_value=1.5))
def test_humidity_correction_grows_with_rh(lo: float, step: float, kappa: float) -> None:
    low, high = humidity_growth_factor(lo, kappa), humidity_growth_factor(lo + step, kappa)
    assert low is not None and high is not None and high > low


@pytest.mark.parametrize(("kw", "message"), [
    ({"unit": "furlongs"}, "unknown unit"),
    ({"unit": "°C"}, "not a unit of no2"),
    ({"variable": "pm99"}, "unknown variable"),
    ({"kind": "cubic"}, "kind: expected one of linear, polynomial, humidity, linear_rh"),
    ({"coefficients": (1.0,)}, "linear: expected coefficients"),
    ({"coefficients": (0.0, 5.0)}, "a ≠ 0"),
    ({"coefficients": (1.0, math.nan)}, "finite"),
    ({"kind": "polynomial", "coefficients": (3.0,)}, "n ≥ 1"),
    ({"kind": "polynomial", "coefficients": (3.0, 0.0, 0.0)}, "n ≥ 1"),
    ({"kind": "humidity", "coefficients": (-0.1,)}, "κ ≥ 0"),
    ({"kind": "humidity", "coefficients": (0.1, 1.65)}, "κ ≥ 0"),
    ({"kind": "linear_rh", "coefficients": (1.0, 0.1)}, "linear_rh: expected coefficients"),
    ({"kind": "linear_rh", "coefficients": (0.0, 0.1, 2.0)}, "a ≠ 0"),
    ({"start": datetime(2026, 3, 1)}, "timezone-aware"),
    ({"end": T0}, "must be after valid_from"),
])
def test_malformed_calibrations_are_refused_naming_them(kw: dict, message: str) -> None:
    with pytest.raises(CalibrationError, match=message) as err:
        cal(7, **kw)
    assert "calibration 7" in str(err.value)


def test_unit_spellings_match_canonically() -> None:
    pm = cal(kind="linear", unit="ug/m3", device="MS01-pm", variable="pm25")
    assert pm.applies_to_unit("µg/m³") and pm.applies_to_unit("ug/m3")
    assert not pm.applies_to_unit("mg/m3") and not pm.applies_to_unit("nonsense")


def test_book_finds_the_calibration_valid_at_a_time() -> None:
    first = cal(1, end=T0 + timedelta(days=10))
    second = cal(2, coefficients=(1.2, 0.0), start=T0 + timedelta(days=10))  # adjacent: no overlap
    other = cal(3, device="KEN-nox")
    book = CalibrationBook([second, other, first])
    assert len(book) == 3 and {c.id for c in book} == {1, 2, 3}
    assert book.find("USQ-nox", "no2", T0 - timedelta(seconds=1)) is None
    assert book.find("USQ-nox", "no2", T0) is first  # valid_from inclusive
    assert book.find("USQ-nox", "no2", T0 + timedelta(days=10) - timedelta(microseconds=1)) is first
    assert book.find("USQ-nox", "no2", T0 + timedelta(days=10)) is second  # valid_to exclusive
    assert book.find("USQ-nox", "no2", T0 + timedelta(days=900)) is second  # open-ended
    assert book.find("USQ-nox", "o3", T0) is None
    assert book.find("KEN-nox", "no2", T0) is other


def test_book_with_a_gap_between_periods() -> None:
    book = CalibrationBook([cal(1, end=T0 + timedelta(days=1)), cal(2, start=T0 + timedelta(days=2))])
    assert book.find("USQ-nox", "no2", T0 + timedelta(days=1, hours=12)) is None


def test_book_refuses_overlapping_periods() -> None:
    with pytest.raises(CalibrationError, match="calibration 2 .* overlaps calibration 1"):
        CalibrationBook([cal(1), cal(2, start=T0 + timedelta(days=5))])  # the first is open-ended
    with pytest.raises(CalibrationError, match="overlaps"):
        CalibrationBook([cal(1, end=T0 + timedelta(days=5)), cal(2, start=T0 + timedelta(days=4))])


@given(offsets=st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8, unique=True),
       probe=st.integers(min_value=-10, max_value=1100))
def test_book_find_agrees_with_a_linear_scan(offsets: list[int], probe: int) -> None:
    starts = sorted(offsets)
    cals = [cal(i + 1, start=T0 + timedelta(hours=s),
                end=(T0 + timedelta(hours=starts[i + 1])) if i + 1 < len(starts) else None)
            for i, s in enumerate(starts)]
    book = CalibrationBook(reversed(cals))
    t = T0 + timedelta(hours=probe)
    expected = [c for c in cals if c.covers(t)]
    assert book.find("USQ-nox", "no2", t) == (expected[0] if expected else None)
    assert len(expected) <= 1


def test_linear_rh_worked_example_barkjohn() -> None:
    """Barkjohn et al. (2021)'s US-wide PurpleAir correction, 0.524·x − 0.0862·RH + 5.75: x = 20 µg/m³ at 50 %
    RH gives 10.48 − 4.31 + 5.75 = 11.92 µg/m³."""
    c = cal(kind="linear_rh", coefficients=(0.524, -0.0862, 5.75), unit="µg/m³", device="MS01", variable="pm25")
    assert c.needs_humidity
    assert c.apply(20.0, rh_pct=50.0) == pytest.approx(11.92)
    assert c.apply(20.0) is None  # no RH: not applied


@given(finite, st.floats(-50, 150, allow_nan=False), finite, finite, finite)
def test_linear_rh_is_defined_from_0_to_100_percent(x: float, rh: float, a: float, b: float, c: float) -> None:
    form = cal(kind="linear_rh", coefficients=(a or 1.0, b, c), unit="µg/m³", device="MS01", variable="pm25")
    got = form.apply(x, rh_pct=rh)
    if 0.0 <= rh <= 100.0:
        assert got == linear_rh(x, rh, a or 1.0, b, c) == (a or 1.0) * x + b * rh + c
    else:
        assert got is None


def test_rh_usable_at_the_edges() -> None:
    assert rh_usable("linear_rh", 100.0) and not rh_usable("humidity", 100.0)
    assert rh_usable("humidity", 0.0) and not rh_usable("linear_rh", -0.1)
    assert not rh_usable("linear_rh", math.nan) and not rh_usable("linear_rh", None)
