"""Integration tests for alerts.jobs against a real TimescaleDB: averages with completeness, idempotent
re-runs and catch-up, and the alert lifecycle (raise, escalate, resolve) persisted across connections.
Late data, outages and leader takeover: tests/alerts/averaging/test_windows_job.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from alerts.jobs import compute_windows, evaluate_alerts, hour_end_at_or_before
from alerts.rules.model import default_rules, parse_rules
from alerts.rules.state import AlertEscalated, AlertRaised, AlertResolved
from ingest.reading import QC

BOGOTA = ZoneInfo("America/Bogota")
H = timedelta(hours=1)
UGM3 = "µg/m³"


def compute_averages(conn: psycopg.Connection, now: datetime, *, cadence_s, lookback_h: int = 72) -> int:
    """Average rows one run of the windows job writes (indices not counted)."""
    return compute_windows(conn, now, cadence_s=cadence_s, lookback_h=lookback_h, tz=BOGOTA).written


def at(hour: int, day: int = 1) -> datetime:
    """The local (Bogotá) time `hour`:00 on March `day` 2026; hours past 23 roll over."""
    return datetime(2026, 3, day, tzinfo=BOGOTA) + hour * H


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def insert(conn: psycopg.Connection, sensor: str, device: str, variable: str, hour_end: datetime,
           values: list[float], *, step_s: int, flags: list[int] | None = None,
           received_at: datetime | None = None) -> None:
    """Samples every `step_s` seconds from the start of the hour ending at `hour_end`."""
    start = hour_end - H
    flags = flags or [0] * len(values)
    rows = [(start + timedelta(seconds=i * step_s), sensor, variable, v, UGM3, f, v, "ug/m3", device,
             received_at or hour_end) for i, (v, f) in enumerate(zip(values, flags, strict=True))]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO measurements (time, sensor_id, variable, value, unit, flags, raw_value, "
                        "raw_unit, device_id, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        rows)


def averages(conn: psycopg.Connection, sensor: str, period: str) -> list[tuple]:
    return conn.execute("SELECT period_end, value, coverage, samples, valid FROM averages "
                        "WHERE sensor_id = %s AND period = %s ORDER BY period_end",
                        (sensor, period)).fetchall()


def register_primary(conn: psycopg.Connection, sensor: str, device: str, variable: str, *others: str) -> None:
    conn.execute("INSERT INTO sensors (id, name, kind, lat, lon) VALUES (%s, %s, 'station', 4.6, -74.1)",
                 (sensor, sensor))
    for d in (device, *others):
        conn.execute("INSERT INTO devices (id, sensor_id, protocol, profile) "
                     "VALUES (%s, %s, 'modbus-tcp', 'x')", (d, sensor))
    conn.execute("INSERT INTO primary_devices (sensor_id, variable, device_id) VALUES (%s, %s, %s)",
                 (sensor, variable, device))


def test_hour_ends_follow_the_network_time_zone():
    assert hour_end_at_or_before(at(15) + timedelta(minutes=59), BOGOTA) == at(15)
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30: local hours end at :30 UTC
    end = hour_end_at_or_before(datetime(2026, 3, 1, 10, 45, tzinfo=kolkata), kolkata)
    assert end == datetime(2026, 3, 1, 10, 0, tzinfo=kolkata) and end.minute == 30


def test_hourly_averages_completeness_idempotence_late_data_and_catch_up(conn):
    register_primary(conn, "KEN", "KEN-pm", "pm25", "KEN-spare")
    insert(conn, "KEN", "KEN-pm", "pm25", at(12), [200.0] * 60, step_s=60)  # complete
    insert(conn, "KEN", "KEN-pm", "pm25", at(13), [210.0] * 40, step_s=60)  # 40 of 60 < 75 %
    # 15 of 60 in maintenance: 45 valid = 75 % exactly; the excluded ones must not move the mean
    insert(conn, "KEN", "KEN-pm", "pm25", at(14), [220.0] * 45 + [9999.0] * 15, step_s=60,
           flags=[0] * 45 + [int(QC.MAINTENANCE)] * 15)
    insert(conn, "KEN", "KEN-pm", "pm25", at(15), [230.0] * 60, step_s=60,
           flags=[int(QC.SPIKE)] * 60)  # suspect but counted
    # a non-primary device of the same sensor and variable: ignored
    insert(conn, "KEN", "KEN-spare", "pm25", at(13), [5000.0] * 60, step_s=60)

    now = at(15) + timedelta(seconds=30)
    written = compute_averages(conn, now, cadence_s={"KEN-pm": 60.0}, lookback_h=48)
    hourly = averages(conn, "KEN", "1h")
    assert [(end, value, valid) for end, value, _, _, valid in hourly] == [
        (at(12), 200.0, True), (at(13), 210.0, False), (at(14), 220.0, True), (at(15), 230.0, True)]
    coverage = [(round(cov, 4), n) for _, _, cov, n, _ in hourly]
    assert coverage == [(1.0, 60), (0.6667, 40), (0.75, 45), (1.0, 60)]
    rolling8 = averages(conn, "KEN", "8h")
    assert [end for end, *_ in rolling8] == [at(12), at(13), at(14), at(15)]
    assert rolling8[-1][1:] == (pytest.approx(650 / 3), 3 / 8, 3, False)  # 3 valid hours of 8: invalid
    assert not any(valid for *_, valid in averages(conn, "KEN", "24h"))
    assert written == 12
    period_bounds = conn.execute("SELECT period_start, period_end FROM averages WHERE sensor_id = 'KEN' "
                                 "AND period = '24h' AND period_end = %s", (at(15),)).fetchone()
    assert period_bounds == (at(15) - 24 * H, at(15))

    # the same run again: nothing due, nothing rewritten, no duplicates
    everything = "SELECT period, period_end, value, valid, computed_at FROM averages ORDER BY 1, 2"
    before = conn.execute(everything).fetchall()
    assert compute_averages(conn, now, cadence_s={"KEN-pm": 60.0}) == 0
    assert conn.execute(everything).fetchall() == before

    # three hours of downtime without data: caught up as invalid hours with zero coverage
    assert compute_averages(conn, at(18) + timedelta(minutes=1), cadence_s={"KEN-pm": 60.0}) == 3 * 3
    assert averages(conn, "KEN", "1h")[-3:] == [(at(h), None, 0.0, 0, False) for h in (16, 17, 18)]
    assert conn.execute("SELECT count(*) FROM averages WHERE sensor_id = 'KEN'").fetchone() == (3 * 7,)


def test_a_device_without_cadence_is_skipped_not_fatal(conn):
    insert(conn, "A", "A-1", "pm25", at(12), [1.0] * 60, step_s=60)
    insert(conn, "B", "B-1", "pm25", at(12), [2.0] * 60, step_s=60)
    assert compute_averages(conn, at(12), cadence_s={"B-1": 60.0}) == 3
    assert averages(conn, "A", "1h") == []


def test_without_a_primary_every_device_counts_with_summed_expectation(conn):
    insert(conn, "MS01", "MS01-a", "pm10", at(12), [10.0] * 30, step_s=120)  # 30 of 30 expected
    insert(conn, "MS01", "MS01-b", "pm10", at(12), [20.0] * 15, step_s=240)  # 15 of 30 expected
    compute_averages(conn, at(12), cadence_s=120.0)
    ((_, value, coverage, samples, valid),) = averages(conn, "MS01", "1h")
    assert (samples, valid) == (45, True) and coverage == pytest.approx(45 / 60)
    assert value == pytest.approx((30 * 10 + 15 * 20) / 45)


def levels_rule():
    """The shipped PM2.5 prevention/alert/emergency rule (24 h mean ending at the hour, reference stations)."""
    (rule,) = [r for r in default_rules() if r.id == "pm25-24h-levels"]
    return rule


def test_alert_raised_once_escalated_then_resolved_with_history(database_url):
    rules = [levels_rule()]
    cadence = {"USQ-pm": 300.0}
    with psycopg.connect(database_url, autocommit=True) as conn:
        register_primary(conn, "USQ", "USQ-pm", "pm25")
        # no 24 h mean can be valid with 4 hours: very high values but no alert from invalid data
        for h in range(1, 5):
            insert(conn, "USQ", "USQ-pm", "pm25", at(h), [60.0] * 12, step_s=300)
        compute_averages(conn, at(4), cadence_s=cadence)
        assert evaluate_alerts(conn, at(4), rules, escalate_after_min=0) == []
        # 20 hours at 60 µg/m³: the 24 h mean ending 20:00 has 20 valid hours, 60 ≥ 56 → 'alert' level
        for h in range(5, 21):
            insert(conn, "USQ", "USQ-pm", "pm25", at(h), [60.0] * 12, step_s=300)
        compute_averages(conn, at(20), cadence_s=cadence)
        events = evaluate_alerts(conn, at(20) + timedelta(minutes=2), rules, escalate_after_min=0)
    (raised,) = events
    assert isinstance(raised, AlertRaised)
    assert (raised.sensor_id, raised.variable, raised.level, raised.value, raised.threshold, raised.unit) == (
        "USQ", "pm25", "alert", 60.0, 56.0, UGM3)
    assert raised.time == at(20) and "Res. 2254/2017" in raised.source

    # a restart: a new connection, the same hour evaluated again → still one alert, no new event
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert evaluate_alerts(conn, at(20) + timedelta(minutes=10), rules, escalate_after_min=0) == []
        # next hour: still above, unchanged level → no event, value updated
        insert(conn, "USQ", "USQ-pm", "pm25", at(21), [60.0] * 12, step_s=300)
        compute_averages(conn, at(21), cadence_s=cadence)
        assert evaluate_alerts(conn, at(21), rules, escalate_after_min=0) == []
        # a very high hour: 24 h mean (21·60 + 3000) / 22 ≈ 194 ≥ 151 → emergency, the same alert
        insert(conn, "USQ", "USQ-pm", "pm25", at(22), [3000.0] * 12, step_s=300)
        compute_averages(conn, at(22), cadence_s=cadence)
        (escalated,) = evaluate_alerts(conn, at(22), rules, escalate_after_min=0)
        assert isinstance(escalated, AlertEscalated)
        assert (escalated.from_level, escalated.level) == ("alert", "emergency")
        rows = conn.execute("SELECT id, state, level, started_at, resolved_at FROM alerts").fetchall()
        assert len(rows) == 1 and rows[0][1:] == ("firing", "emergency", at(20), None)

    with psycopg.connect(database_url, autocommit=True) as conn:
        # a clean day: the 24 h mean ending at 22:00 the next day is 5 µg/m³ < 0.9 · 37 → resolved
        for h in range(23, 47):
            insert(conn, "USQ", "USQ-pm", "pm25", at(h), [5.0] * 12, step_s=300)
        compute_averages(conn, at(46), cadence_s=cadence)
        (resolved,) = evaluate_alerts(conn, at(46), rules, escalate_after_min=0)
        assert isinstance(resolved, AlertResolved) and resolved.value == pytest.approx(5.0)
        assert evaluate_alerts(conn, at(46), rules, escalate_after_min=0) == []
        ((alert_id, state, level, resolved_at),) = conn.execute(
            "SELECT id, state, level, resolved_at FROM alerts").fetchall()
        assert (state, level, resolved_at) == ("resolved", "emergency", at(46))
        history = conn.execute("SELECT time, kind, from_state, to_state, level FROM alert_events "
                               "WHERE alert_id = %s ORDER BY time, id", (alert_id,)).fetchall()
        assert history == [(at(20), "raised", None, "firing", "alert"),
                           (at(22), "escalated", "firing", "firing", "emergency"),
                           (at(46), "resolved", "firing", "resolved", "emergency")]
        notes = [n for (n,) in conn.execute("SELECT note FROM alert_events ORDER BY id")]
        assert "raised at alert (critical)" in notes[0] and "escalated from alert to emergency" in notes[1]
        assert "pm25 24h mean ending 2026-03-01 20:00 -05 at sensor USQ = 60 µg/m³ >= 56 µg/m³" in notes[0]
        assert "verified_secondary]; coverage 83 %" in notes[0]
        assert "resolved" in notes[2]

        # a new episode after resolution is a new alert
        for h in range(47, 71):
            insert(conn, "USQ", "USQ-pm", "pm25", at(h), [40.0] * 12, step_s=300)
        compute_averages(conn, at(70), cadence_s=cadence)
        (again,) = evaluate_alerts(conn, at(70), rules, escalate_after_min=0)
        assert isinstance(again, AlertRaised) and again.level == "prevention"
        assert conn.execute("SELECT state, count(*) FROM alerts GROUP BY 1 ORDER BY 1").fetchall() == [
            ("firing", 1), ("resolved", 1)]


def test_stale_averages_are_not_evaluated(conn):
    register_primary(conn, "USQ", "USQ-pm", "pm25")
    for h in range(1, 21):
        insert(conn, "USQ", "USQ-pm", "pm25", at(h), [60.0] * 12, step_s=300)
    compute_averages(conn, at(20), cadence_s=300.0)
    assert evaluate_alerts(conn, at(23), [levels_rule()], max_age_h=2) == []
    assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)


def test_min_duration_streak_is_re_derived_from_stored_averages(conn):
    (rule,) = parse_rules("""
rules:
  - id: pm25-1h-test
    variable: pm25
    period: 1h
    min_duration: 2
    clear_fraction: 0.5
    levels: [{name: high, threshold: 50, unit: µg/m³, source: test rule}]
""", source="test")
    register_primary(conn, "KEN", "KEN-pm", "pm25")
    insert(conn, "KEN", "KEN-pm", "pm25", at(1), [60.0] * 12, step_s=300)
    compute_averages(conn, at(1), cadence_s=300.0)
    assert evaluate_alerts(conn, at(1), [rule]) == []  # pending: nothing stored
    assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    insert(conn, "KEN", "KEN-pm", "pm25", at(2), [70.0] * 12, step_s=300)
    compute_averages(conn, at(2), cadence_s=300.0)
    (raised,) = evaluate_alerts(conn, at(2), [rule])
    assert raised.level == "high" and raised.value == 70.0
    assert conn.execute("SELECT state, started_at FROM alerts").fetchall() == [("firing", at(1))]
    assert evaluate_alerts(conn, at(2), [rule]) == []
    # an invalid hour (3 samples of 12) neither clears nor raises
    insert(conn, "KEN", "KEN-pm", "pm25", at(3), [1.0] * 3, step_s=300)
    compute_averages(conn, at(3), cadence_s=300.0)
    assert evaluate_alerts(conn, at(3), [rule], escalate_after_min=0) == []
    assert conn.execute("SELECT state, value FROM alerts").fetchall() == [("firing", 70.0)]
