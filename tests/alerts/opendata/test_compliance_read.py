"""alerts.opendata.compliance_read on a real TimescaleDB: a seeded year of one station's averages and validation
decisions gives the hand-computed annual report (means, exceedance counts, coverage, exclusions); the annual
limits reach the officers' exceedance views (migration 0019)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from alerts.opendata.compliance_read import read_annual_report
from alerts.opendata.compliance_render import report_json

TZ = ZoneInfo("America/Bogota")
Y0 = datetime(2025, 1, 1, tzinfo=TZ)
NOW = datetime(2026, 1, 15, tzinfo=UTC)


def day(i: int) -> datetime:
    return Y0 + timedelta(days=i)


def add_average(cur: Any, sensor: str, variable: str, period: str, start: datetime, end: datetime, value: float,
                valid: bool) -> None:
    cur.execute("INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, coverage, "
                "samples, valid) VALUES (%s, %s, %s, %s, %s, %s, 'µg/m³', %s, 1, %s)",
                (sensor, variable, period, start, end, value, 1.0 if valid else 0.5, valid))


def decide(cur: Any, sensor: str, action: str, start: datetime, end: datetime, *, variable: str | None = "pm25",
           reason: str | None = "analyser_fault", undoes: int | None = None) -> int:
    cur.execute("INSERT INTO validation_decisions (decided_at, actor, actor_role, via, action, sensor_id, variable, "
                "time_from, time_to, reason, undoes) VALUES (%s, 'ana', 'officer', 'cli', %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id", (NOW, action, sensor, variable, start, end, reason, undoes))
    return int(cur.fetchone()[0])


@pytest.fixture
def seeded(database_url: str) -> Any:
    """KEN's 2025: pm25 daily means for days 0..309 (Jan 1 – Nov 6): days 68..72 (Mar 10–14) invalid (an analyser
    fault, stored at 80 µg/m³ but not valid), 10 valid days at 40, the other 295 valid days at 20; the day before
    the year and the first day after it at 90 (outside the year). no2: 100 valid hours, two of them at 210 and
    250, and one invalid hour at 300. A microsensor above every limit (indicative: left out)."""
    with psycopg.connect(database_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO sensors (id, name, kind, lat, lon) VALUES "
                    "('KEN', 'Kennedy', 'station', 4.62, -74.16), ('PTE', 'Puente Aranda', 'station', 4.63, -74.11), "
                    "('MS1', 'Micro', 'microsensor', 4.7, -74.0)")
        high = set(range(100, 110))
        for i in range(310):
            invalid = 68 <= i <= 72
            add_average(cur, "KEN", "pm25", "day", day(i), day(i + 1), 80.0 if invalid else 40.0 if i in high else 20.0,
                        not invalid)
        add_average(cur, "KEN", "pm25", "day", day(-1), day(0), 90.0, True)
        add_average(cur, "KEN", "pm25", "day", day(365), day(366), 90.0, True)
        add_average(cur, "MS1", "pm25", "day", day(5), day(6), 99.0, True)
        for h in range(100):
            start = Y0 + timedelta(hours=h)
            add_average(cur, "KEN", "no2", "1h", start, start + timedelta(hours=1), {7: 210.0, 50: 250.0}.get(h, 30.0),
                        True)
        add_average(cur, "KEN", "no2", "1h", Y0 + timedelta(hours=200), Y0 + timedelta(hours=201), 300.0, False)
        cur.execute("INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, "
                    "coverage, samples, valid) VALUES ('KEN', 'pm25', 'year', %s, %s, 27.5, 'µg/m³', 0.9, 330, true)",
                    (day(-365), day(0)))
        # the invalidation of Mar 10–15 (5 days), re-validated on Mar 12 by a later decision; an undone one and
        # another sensor's are not exclusions of KEN pm25
        ids = {"fault": decide(cur, "KEN", "invalidate", day(68), day(73)),
               "revalidate": decide(cur, "KEN", "validate", day(70), day(71), reason=None)}
        undone = decide(cur, "KEN", "invalidate", day(200), day(201), reason="maintenance")
        decide(cur, "KEN", "undo", day(200), day(201), reason=None, undoes=undone)
        decide(cur, "PTE", "invalidate", day(1), day(2))
        ids["no2_wide"] = decide(cur, "KEN", "invalidate", Y0 - timedelta(days=2), Y0 + timedelta(hours=3),
                                 variable=None, reason="calibration")
        yield database_url, ids


def test_seeded_year_matches_the_hand_computed_report(seeded: Any) -> None:
    url, ids = seeded
    with psycopg.connect(url, autocommit=True) as conn:
        report = read_annual_report(conn, 2025, "America/Bogota", NOW)
    assert not report.partial and report.year_start == Y0 and report.year_end == day(365)
    assert [(s.sensor_id, s.variable) for s in report.series] == [("KEN", "no2"), ("KEN", "pm25")]
    no2, pm25 = report.series

    # pm25: 305 valid days (310 − 5 invalid) of 365; mean (295·20 + 10·40) / 305; 274 needed (ceil 0.75 · 365)
    a = pm25.annual
    assert (a.valid_days, a.days, a.required_days, a.valid) == (305, 365, 274, True)
    assert a.value == pytest.approx(6300 / 305) and a.coverage == pytest.approx(305 / 365)
    assert (a.limit_ugm3, a.verdict) == (25.0, "complies")
    assert "Tabla 1" in (a.source or "")
    (daily,) = pm25.short_term
    assert (daily.period, daily.limit_ugm3, daily.exceedances, daily.valid_periods, daily.expected_periods) == \
        ("day", 37.0, 10, 305, 365)
    assert daily.coverage == pytest.approx(305 / 365) and daily.verdict == "exceeded" and daily.max_value == 40.0
    # excluded: Mar 10–12 and Mar 13–15 (the later validation re-validated Mar 12), plus the first 3 hours of the
    # year (the every-variable calibration, clipped to the year)
    assert [(e.decision_id, e.start, e.end, e.reason) for e in pm25.exclusions] == [
        (ids["no2_wide"], Y0, Y0 + timedelta(hours=3), "calibration"),
        (ids["fault"], day(68), day(70), "analyser_fault"),
        (ids["fault"], day(71), day(73), "analyser_fault")]
    assert pm25.excluded_hours == 3 + 48 + 48

    # no2: no daily means (no annual figure), 100 valid hours of 8760, two above 200 µg/m³
    assert no2.annual.verdict == "no_data" and no2.annual.value is None and no2.annual.limit_ugm3 == 60.0
    (hourly,) = no2.short_term
    assert (hourly.period, hourly.limit_ugm3, hourly.exceedances, hourly.valid_periods, hourly.expected_periods) == \
        ("1h", 200.0, 2, 100, 8760)
    assert hourly.verdict == "exceeded" and hourly.max_value == 250.0
    assert [e.decision_id for e in no2.exclusions] == [ids["no2_wide"]]

    doc = report_json(report, TZ)
    assert doc["series"][1]["excluded_periods"][1] == {
        "decision_id": ids["fault"], "start": "2025-03-10T00:00:00-05:00", "end": "2025-03-12T00:00:00-05:00",
        "hours": 48.0, "reason": "analyser_fault", "device_id": None}


def test_annual_limits_reach_the_exceedance_views(seeded: Any) -> None:
    url, _ = seeded
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT sensor_id, variable, year, exceedances, valid_periods, limit_ugm3, source FROM "
                            "exceedances('America/Bogota') WHERE period = 'year'").fetchall()
        limits = conn.execute("SELECT variable, limit_ugm3 FROM norm_limits WHERE period = 'year' "
                              "ORDER BY variable").fetchall()
        grafana = conn.execute("SELECT sensor_id, value_ugm3, limit_ugm3 FROM grafana_exceedance_periods "
                               "WHERE period = 'year'").fetchall()
    assert limits == [("no2", 60.0), ("pm10", 50.0), ("pm25", 25.0)]  # Res. 2254/2017 Art. 2 Tabla 1, annual
    assert rows == [("KEN", "pm25", 2024, 1, 1, 25.0, "Res. 2254/2017 Art. 2 Tabla 1: PM2.5 annual")]
    assert grafana == [("KEN", 27.5, 25.0)]
