"""ingest/colocation_fit.py: a fit recovers a known bias, slope and humidity effect; figures, targets, days."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.calibration import Calibration
from ingest.colocation_fit import (
    BARKJOHN_2021,
    EPA_PM25_TARGETS,
    FitError,
    Pairs,
    daily_means,
    evaluate,
    figures,
    fit,
    predict,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
#: the simulated microsensor: x = SLOPE·reference + HUMIDITY·RH + BIAS + noise (σ = NOISE), µg/m³
SLOPE, HUMIDITY, BIAS, NOISE = 1.6, 0.08, 3.0, 1.0


def simulated(hours: int = 720, seed: int = 7, humidity: float = HUMIDITY) -> Pairs:
    rng = random.Random(seed)
    ends, xs, ys, rhs = [], [], [], []
    for h in range(hours):
        ref = 8.0 + 10.0 * (1 + math.sin(2 * math.pi * h / 24)) + rng.uniform(0, 15)
        rh = 55.0 + 25.0 * math.sin(2 * math.pi * (h + 6) / 24 + 0.3 * (h // 24)) + rng.uniform(-5, 5)
        ends.append(T0 + timedelta(hours=h + 1))
        xs.append(SLOPE * ref + humidity * rh + BIAS + rng.gauss(0, NOISE))
        ys.append(ref)
        rhs.append(rh)
    return Pairs(tuple(ends), tuple(xs), tuple(ys), tuple(rhs))


def test_linear_rh_fit_recovers_bias_slope_and_humidity_effect() -> None:
    """Tolerances: each recovered sensor parameter within 2 % (slope), 0.01 µg/m³ per % (humidity) and
    0.5 µg/m³ (bias) of the truth, about 5 standard errors with 720 hours and σ = 1 µg/m³."""
    got = fit(simulated(), "linear_rh")
    a, b, c = got.coefficients
    assert got.kind == "linear_rh"
    assert 1 / a == pytest.approx(SLOPE, rel=0.02)
    assert -b / a == pytest.approx(HUMIDITY, abs=0.01)
    assert -c / a == pytest.approx(BIAS, abs=0.5)


def test_linear_fit_recovers_bias_and_slope_without_humidity_effect() -> None:
    got = fit(simulated(humidity=0.0), "linear")
    a, b = got.coefficients
    assert 1 / a == pytest.approx(SLOPE, rel=0.02) and -b / a == pytest.approx(BIAS, abs=0.5)


def test_the_corrected_sensor_meets_the_targets_and_the_raw_one_does_not() -> None:
    pairs = simulated()
    raw = evaluate(figures(*daily_means(pairs.hour_ends, pairs.sensor, pairs.reference)))
    corrected = predict(fit(pairs, "linear_rh"), pairs.sensor, pairs.rh).tolist()
    good = evaluate(figures(corrected, list(pairs.reference)))
    assert [r.target.metric for r in good] == ["r2", "slope", "intercept", "rmse", "nrmse_pct"]
    assert all(r.passed for r in good)
    assert not next(r for r in raw if r.target.metric == "slope").passed  # 1.6: outside 1.0 ± 0.35


@given(a=st.floats(0.2, 3), b=st.floats(-1, 1), c=st.floats(-10, 10), x=st.floats(0, 500), rh=st.floats(0, 100))
def test_predict_is_the_calibration_kinds_arithmetic(a: float, b: float, c: float, x: float, rh: float) -> None:
    from ingest.colocation_fit import Correction
    cal = Calibration(1, "MS01", "pm25", "linear_rh", (a, b, c), "µg/m³", T0)
    assert predict(Correction("linear_rh", (a, b, c)), [x], [rh])[0] == cal.apply(x, rh_pct=rh)
    lin = Calibration(2, "MS01", "pm25", "linear", (a, c), "µg/m³", T0)
    assert predict(Correction("linear", (a, c)), [x], [rh])[0] == lin.apply(x)


def test_barkjohn_is_a_linear_rh_calibration_with_its_source() -> None:
    assert BARKJOHN_2021.kind == "linear_rh" and BARKJOHN_2021.coefficients == (0.524, -0.0862, 5.75)
    assert "10.5194/amt-14-4617-2021" in BARKJOHN_2021.source
    assert predict(BARKJOHN_2021, [20.0], [50.0])[0] == pytest.approx(11.92)


def test_figures_of_an_exact_line() -> None:
    ref = [5.0, 10.0, 15.0, 20.0]
    fig = figures([2 * r + 1 for r in ref], ref)
    assert fig.slope == pytest.approx(2) and fig.intercept == pytest.approx(1) and fig.r2 == pytest.approx(1)
    assert fig.rmse == pytest.approx(math.sqrt(np.mean([(r + 1) ** 2 for r in ref])))
    assert fig.nrmse_pct == pytest.approx(fig.rmse / 12.5 * 100)


def test_targets_pass_at_their_edges_and_fail_beyond() -> None:
    by = {t.metric: t for t in EPA_PM25_TARGETS}
    assert by["slope"].passes(0.65) and by["slope"].passes(1.35) and not by["slope"].passes(1.36)
    assert by["intercept"].passes(-5.0) and not by["intercept"].passes(5.01)
    assert by["r2"].passes(0.70) and not by["r2"].passes(0.69)
    assert by["rmse"].passes(7.0) and not by["rmse"].passes(7.1)
    assert by["nrmse_pct"].passes(30.0) and not by["nrmse_pct"].passes(math.nan)
    assert all(t.source and t.status for t in EPA_PM25_TARGETS)


def test_unusable_pairs_are_refused_with_the_reason() -> None:
    with pytest.raises(FitError, match="at least 4"):
        fit(simulated(hours=3), "linear_rh")
    flat = Pairs(tuple(T0 + timedelta(hours=h) for h in range(5)), (1.0, 2.0, 3.0, 4.0, 5.0), (7.0,) * 5, (50.0,) * 5)
    with pytest.raises(FitError, match="no unique fit"):
        fit(flat, "linear")
    inverse = Pairs(flat.hour_ends, (5.0, 4.0, 3.0, 2.0, 1.0), (1.0, 2.0, 3.0, 4.0, 5.0), (50.0,) * 5)
    with pytest.raises(FitError, match="does not respond"):
        fit(inverse, "linear")
    with pytest.raises(ValueError, match="not finite"):
        Pairs((T0,), (math.nan,), (1.0,), (50.0,))


def test_daily_means_need_18_hours() -> None:
    ends = [T0 + timedelta(hours=h + 1) for h in range(24 + 17)]  # one full day, then 17 hours
    s, r = daily_means(ends, [1.0] * 24 + [5.0] * 17, [2.0] * 41)
    assert s == [1.0] and r == [2.0]
