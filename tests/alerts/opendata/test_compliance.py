"""alerts.opendata.compliance (pure): Tabla 1 read from the bundled norms; the annual mean's completeness (274 of
365, 275 of 366) and verdicts; short-term counts with coverage and the stated convention for a zero count; limits
not yet in force; excluded periods resolved as validation resolves decisions (latest covering decision decides)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.opendata.compliance import (
    Decision,
    NormLimit,
    PeriodValue,
    SeriesInput,
    annual_report,
    excluded_periods,
    tabla1_limits,
)

TZ = ZoneInfo("America/Bogota")
NOW = datetime(2030, 1, 1, tzinfo=UTC)
SHARED = Path(__file__).resolve().parents[4] / "shared" / "domain" / "norms.json"


def days(year: int, values: list[tuple[float | None, bool]], variable_start: int = 0) -> list[PeriodValue]:
    y0 = datetime(year, 1, 1, tzinfo=TZ)
    return [PeriodValue("day", y0 + timedelta(days=variable_start + i), y0 + timedelta(days=variable_start + i + 1),
                        v, ok) for i, (v, ok) in enumerate(values)]


def report(year: int, averages: list[PeriodValue], variable: str = "pm25", decisions: tuple[Decision, ...] = (),
           limits: tuple[NormLimit, ...] | None = None) -> object:
    s = SeriesInput("KEN", "Kennedy", variable, "µg/m³", averages, decisions)
    (series,) = annual_report(year, TZ, "America/Bogota", [s], limits or tabla1_limits(), NOW).series
    return series


def test_tabla1_limits_are_the_bundled_norms_json() -> None:
    limits = {(lim.variable, lim.period): lim.value_ugm3 for lim in tabla1_limits()}
    # Res. 2254/2017 Art. 2 Tabla 1 (norms.json max_permissible_levels)
    assert limits == {("pm10", "year"): 50, ("pm10", "day"): 75, ("pm25", "year"): 25, ("pm25", "day"): 37,
                      ("so2", "day"): 50, ("so2", "1h"): 100, ("no2", "year"): 60, ("no2", "1h"): 200,
                      ("o3", "8h"): 100, ("co", "8h"): 5000, ("co", "1h"): 35000}
    since = {(lim.variable, lim.period): lim.since for lim in tabla1_limits()}
    assert since[("pm25", "day")] == date(2018, 7, 1) and since[("pm25", "year")] == date(2018, 1, 1)


@pytest.mark.skipif(not SHARED.is_file(), reason="the project's shared domain data is not beside the checkout")
def test_bundled_norms_match_the_shared_domain_file() -> None:
    assert tabla1_limits(json.loads(SHARED.read_text(encoding="utf-8"))) == tabla1_limits()


def test_unknown_pollutant_in_the_norms_is_refused_naming_where() -> None:
    doc = {"max_permissible_levels": {"status": "x", "levels": [
        {"pollutant": "Pb", "averaging": "annual", "value": 0.5, "since": "2018-01-01"}]}}
    with pytest.raises(ValueError, match=r"levels\[0\]: unknown pollutant 'Pb'"):
        tabla1_limits(doc)
    with pytest.raises(ValueError, match="period expected"):
        NormLimit("pm25", "week", 1, date(2018, 1, 1), "s")
    with pytest.raises(ValueError, match="expected > 0"):
        NormLimit("pm25", "day", 0, date(2018, 1, 1), "s")


@pytest.mark.parametrize(("year", "valid_days", "complete"), [(2025, 274, True), (2025, 273, False),
                                                              (2024, 275, True), (2024, 274, False)])
def test_annual_completeness_is_75_percent_of_the_days(year: int, valid_days: int, complete: bool) -> None:
    s = report(year, days(year, [(10.0, True)] * valid_days + [(99.0, False)] * 20))
    a = s.annual
    assert (a.valid_days, a.required_days, a.valid) == (valid_days, 275 if year == 2024 else 274, complete)
    assert a.days == (366 if year == 2024 else 365)
    assert a.verdict == ("complies" if complete else "incomplete")
    assert a.value == 10.0  # invalid days never count, even the high ones


def test_annual_verdicts() -> None:
    assert report(2025, days(2025, [(25.0, True)] * 300)).annual.verdict == "complies"  # equal is compliant
    assert report(2025, days(2025, [(25.01, True)] * 300)).annual.verdict == "exceeds"
    assert report(2025, days(2025, [(None, False)] * 300)).annual.verdict == "no_data"
    assert report(2025, days(2025, [(50.0, True)] * 300), variable="so2").annual.verdict == "no_limit"
    with pytest.raises(ValueError, match="366 daily averages for a year of 365 days"):
        report(2025, days(2025, [(1.0, True)] * 365) + days(2025, [(1.0, True)]))


def test_days_outside_the_year_are_left_out() -> None:
    s = report(2025, days(2025, [(90.0, True)], variable_start=-1) + days(2025, [(10.0, True)] * 280)
               + days(2025, [(90.0, True)], variable_start=365))
    assert s.annual.valid_days == 280 and s.annual.value == 10.0
    assert s.short_term[0].exceedances == 0 and s.short_term[0].valid_periods == 280


def test_short_term_counts_and_the_zero_count_convention() -> None:
    (c,) = report(2025, days(2025, [(37.0, True)] * 274 + [(37.5, True), (80.0, False)])).short_term
    assert (c.period, c.exceedances, c.valid_periods, c.expected_periods, c.verdict, c.max_value) == \
        ("day", 1, 275, 365, "exceeded", 37.5)
    (zero,) = report(2025, days(2025, [(10.0, True)] * 274)).short_term
    assert zero.verdict == "not_exceeded" and zero.coverage == pytest.approx(274 / 365)
    (thin,) = report(2025, days(2025, [(10.0, True)] * 273)).short_term
    assert thin.verdict == "incomplete"
    (few,) = report(2025, days(2025, [(40.0, True)] * 3)).short_term
    assert few.verdict == "exceeded" and few.coverage == pytest.approx(3 / 365)  # a valid exceedance is a fact


def test_hourly_and_rolling_limits_expect_every_hour_of_the_year() -> None:
    y0 = datetime(2025, 1, 1, tzinfo=TZ)
    hours = [PeriodValue("1h", y0 + timedelta(hours=h), y0 + timedelta(hours=h + 1), 250.0 if h == 3 else 10.0, True)
             for h in range(24)]
    eights = [PeriodValue("8h", y0 + timedelta(hours=h), y0 + timedelta(hours=h + 8), 6000.0, h % 2 == 0)
              for h in range(10)]
    no2 = report(2025, hours, variable="no2")
    assert [(c.period, c.exceedances, c.valid_periods, c.expected_periods) for c in no2.short_term] == \
        [("1h", 1, 24, 8760)]
    co = report(2025, hours + eights, variable="co")  # hours of CO at 250 and 10 µg/m³: below 35 000
    assert [(c.period, c.exceedances, c.valid_periods) for c in co.short_term] == [("8h", 5, 5), ("1h", 0, 24)]


def test_a_limit_in_force_from_mid_year_counts_from_then() -> None:
    values = days(2018, [(40.0, True)] * 365)
    (c,) = report(2018, values).short_term  # PM2.5 24 h in force from 2018-07-01 (Art. 2 Parágrafo 1)
    assert c.expected_periods == 184 and c.exceedances == 184
    assert report(2017, days(2017, [(40.0, True)] * 365)).short_term == ()
    assert report(2017, days(2017, [(40.0, True)] * 365)).annual.verdict == "no_limit"


def test_report_orders_series_and_skips_variables_without_limits() -> None:
    inputs = [SeriesInput("PTE", "P", "pm25", "µg/m³", []), SeriesInput("KEN", "K", "temperature", "°C", []),
              SeriesInput("KEN", "K", "pm10", "µg/m³", [])]
    r = annual_report(2025, TZ, "America/Bogota", inputs, tabla1_limits(), datetime(2025, 6, 1, tzinfo=UTC))
    assert [(s.sensor_id, s.variable) for s in r.series] == [("KEN", "pm10"), ("PTE", "pm25")]
    assert r.partial and r.year_start == datetime(2025, 1, 1, tzinfo=TZ) and "75 %" in r.rules
    with pytest.raises(ValueError, match="now must be aware"):
        annual_report(2025, TZ, "America/Bogota", [], tabla1_limits(), datetime(2025, 6, 1))


# ------------------------------------------------------------------------------------------- exclusions

Y0 = datetime(2025, 1, 1, tzinfo=UTC)


def h(n: int) -> datetime:
    return Y0 + timedelta(hours=n)


def test_excluded_periods_latest_decision_decides_and_spans_merge() -> None:
    decisions = [Decision(1, "invalidate", h(0), h(10), "analyser_fault"),
                 Decision(2, "validate", h(3), h(5)),
                 Decision(3, "invalidate", h(8), h(12), "maintenance"),
                 Decision(4, "invalidate", h(-5), h(1), "calibration")]
    got = [(e.decision_id, e.start, e.end, e.reason) for e in excluded_periods(decisions, h(0), h(20))]
    assert got == [(4, h(0), h(1), "calibration"), (1, h(1), h(3), "analyser_fault"),
                   (1, h(5), h(8), "analyser_fault"), (3, h(8), h(12), "maintenance")]
    assert excluded_periods([Decision(1, "validate", h(0), h(5))], h(0), h(10)) == ()
    assert excluded_periods([Decision(1, "invalidate", h(20), h(30))], h(0), h(10)) == ()


decision_st = st.tuples(st.integers(1, 30), st.sampled_from(["validate", "invalidate"]), st.integers(-5, 40),
                        st.integers(1, 15))


@given(st.lists(decision_st, max_size=8, unique_by=lambda d: d[0]))
def test_excluded_periods_agree_with_an_hour_by_hour_resolution(raw: list[tuple[int, str, int, int]]) -> None:
    decisions = [Decision(i, a, h(s), h(s + n), "other" if a == "invalidate" else None)  # type: ignore[arg-type]
                 for i, a, s, n in raw]
    got = excluded_periods(decisions, h(0), h(30))
    for hour in range(30):
        covering = [d for d in decisions if d.start <= h(hour) < d.end]
        deciding = max(covering, key=lambda d: d.id) if covering else None
        inside = [e for e in got if e.start <= h(hour) < e.end]
        if deciding is not None and deciding.action == "invalidate":
            assert [e.decision_id for e in inside] == [deciding.id]
        else:
            assert inside == []
    assert all(e.start < e.end and h(0) <= e.start and e.end <= h(30) for e in got)
    assert all(a.end <= b.start for a, b in itertools.pairwise(got))
