"""Integration tests for the technicians' equipment rules (alerts.rules.equipment through alerts.rules.evaluate)
against a real TimescaleDB with measurements inserted directly: no data, flatline, device fault, evaluated at `now`
itself, maintenance windows, and the sensor selection."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from alerts.rules.equipment import equipment_values
from alerts.rules.evaluate import evaluate_alerts
from alerts.rules.model import parse_rules
from ingest.reading import QC

BOGOTA = ZoneInfo("America/Bogota")
MIN = timedelta(minutes=1)
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=BOGOTA)

RULES = {r.id: r for r in parse_rules("""
rules:
  - id: no-data
    kind: no_data
    sensors: all
    clear_fraction: 0.5
    levels:
      - {name: silent, threshold: 30, unit: min, source: "aqnet operational default, not a norm"}
      - {name: long-silent, threshold: 120, unit: min, source: "aqnet operational default, not a norm",
         severity: critical}
  - id: flat
    kind: flatline
    variable: pm25
    flatline_tolerance: 0.5
    clear_fraction: 0.5
    levels: [{name: flat, threshold: 60, unit: min, source: "aqnet operational default, not a norm"}]
  - id: fault
    kind: device_fault
    clear_fraction: 0.5
    levels: [{name: fault, threshold: 20, unit: min, source: "aqnet operational default, not a norm"}]
""", source="test")}


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def sensor(conn, sensor_id: str, *, kind: str = "station", lifecycle: str = "active") -> None:
    conn.execute("INSERT INTO sensors (id, name, kind, lat, lon, locality, lifecycle) "
                 "VALUES (%s, %s, %s, 4.6, -74.1, 'Kennedy', %s)", (sensor_id, sensor_id, kind, lifecycle))


def readings(conn, sensor_id: str, start: datetime, values: list[float], *, flags: int = 0,
             variable: str = "pm25", step: timedelta = MIN) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO measurements (time, sensor_id, variable, value, unit, flags, device_id, "
                        "received_at) VALUES (%s, %s, %s, %s, 'µg/m³', %s, %s, %s)",
                        [(start + i * step, sensor_id, variable, v, flags, f"{sensor_id}-dev", start + i * step)
                         for i, v in enumerate(values)])


def test_no_data_counts_minutes_since_the_last_reading_at_now(conn):
    sensor(conn, "A")
    sensor(conn, "M", kind="microsensor")
    sensor(conn, "R", lifecycle="maintenance")  # not active: not expected to report
    readings(conn, "A", T0, [10.0] * 10)  # last reading 08:09
    readings(conn, "M", T0, [10.0] * 40)  # last reading 08:39
    rule = RULES["no-data"]
    values = {v.sensor_id: v.minutes for v in equipment_values(conn, rule, T0 + 45 * MIN)}
    assert values == {"A": 36.0, "M": 6.0}
    (raised,) = evaluate_alerts(conn, T0 + 45 * MIN, [rule], tz=BOGOTA, escalate_after_min=0)
    assert (raised.sensor_id, raised.level, raised.value, raised.unit, raised.time) == (
        "A", "silent", 36.0, "min", T0 + 45 * MIN)
    assert evaluate_alerts(conn, T0 + 45 * MIN, [rule], tz=BOGOTA, escalate_after_min=0) == []
    later = evaluate_alerts(conn, T0 + 130 * MIN, [rule], tz=BOGOTA, escalate_after_min=0)
    assert sorted((e.sensor_id, e.kind, e.level, e.value) for e in later) == [
        ("A", "escalated", "long-silent", 121.0), ("M", "raised", "silent", 91.0)]  # M went silent meanwhile
    row = conn.execute("SELECT kind, audience, severity, period, unit FROM alerts WHERE scope_key = 'A'").fetchone()
    assert row == ("no_data", "technicians", "critical", None, "min")
    note = conn.execute("SELECT note FROM alert_events ORDER BY id").fetchone()[0]
    assert note.startswith("raised at silent (warning): any variable minutes without data at sensor A (Kennedy) = "
                           "36 min >= 30 min [aqnet operational default, not a norm]; last reading 2026-03-01 08:09")
    # back on line: the next reading resolves it (0 min < 15)
    readings(conn, "A", T0 + 131 * MIN, [10.0])
    (resolved,) = evaluate_alerts(conn, T0 + 132 * MIN, [rule], tz=BOGOTA, escalate_after_min=0)
    assert (resolved.kind, resolved.value) == ("resolved", 1.0)
    assert conn.execute("SELECT scope_key, state FROM alerts ORDER BY id").fetchall() == [
        ("A", "resolved"), ("M", "firing")]


def test_no_data_in_a_maintenance_window_is_suppressed_and_counted_from_its_end(conn):
    sensor(conn, "A")
    readings(conn, "A", T0, [10.0] * 10)
    conn.execute("INSERT INTO maintenance_windows (sensor_id, starts_at, ends_at, reason, created_by) "
                 "VALUES ('A', %s, %s, 'filter change', 'tech')", (T0 + 10 * MIN, T0 + 100 * MIN))
    rule = RULES["no-data"]
    assert evaluate_alerts(conn, T0 + 60 * MIN, [rule], tz=BOGOTA) == []
    assert conn.execute("SELECT scope_key, value, level, reason FROM alert_suppressions").fetchall() == [
        ("A", 51.0, "silent", "maintenance")]
    assert evaluate_alerts(conn, T0 + 110 * MIN, [rule], tz=BOGOTA) == []  # 10 min since the window ended
    (raised,) = evaluate_alerts(conn, T0 + 131 * MIN, [rule], tz=BOGOTA)
    assert (raised.level, raised.value) == ("silent", 31.0)


def test_flatline_needs_three_readings_within_tolerance_for_the_threshold(conn):
    sensor(conn, "A")
    sensor(conn, "B")
    readings(conn, "A", T0, [5.0, 9.0] + [12.0, 12.3, 12.1] * 30)  # flat within 0.5 from 08:02 on
    readings(conn, "B", T0, [float(i) for i in range(92)])  # moving
    readings(conn, "A", T0, [20.0 + i for i in range(92)], variable="pm10")  # another variable: not this rule's
    rule = RULES["flat"]
    now = T0 + 92 * MIN
    values = {v.sensor_id: (v.minutes, v.variable) for v in equipment_values(conn, rule, now)}
    assert values == {"A": (89.0, "pm25"), "B": (0.0, "pm25")}  # B: the last reading alone is flat
    (raised,) = evaluate_alerts(conn, now, [rule], tz=BOGOTA)
    assert (raised.sensor_id, raised.level, raised.value) == ("A", "flat", 89.0)
    note = conn.execute("SELECT note FROM alert_events").fetchone()[0]
    assert "pm25 minutes flat (max - min <= 0.5) at sensor A (Kennedy) = 89 min >= 60 min" in note


def test_device_fault_measures_the_trailing_run_of_invalid_readings(conn):
    sensor(conn, "A")
    sensor(conn, "B")
    readings(conn, "A", T0, [10.0] * 5)
    readings(conn, "A", T0 + 5 * MIN, [10.0] * 30, flags=int(QC.DEVICE_INVALID))  # 08:05 .. 08:34
    readings(conn, "B", T0, [10.0] * 30, flags=int(QC.DEVICE_INVALID))
    readings(conn, "B", T0 + 30 * MIN, [10.0] * 5)  # recovered
    rule = RULES["fault"]
    values = {v.sensor_id: v.minutes for v in equipment_values(conn, rule, T0 + 35 * MIN)}
    assert values == {"A": 29.0, "B": 0.0}
    (raised,) = evaluate_alerts(conn, T0 + 35 * MIN, [rule], tz=BOGOTA)
    assert (raised.sensor_id, raised.level, raised.value) == ("A", "fault", 29.0)
    readings(conn, "A", T0 + 35 * MIN, [10.0])
    (resolved,) = evaluate_alerts(conn, T0 + 36 * MIN, [rule], tz=BOGOTA, escalate_after_min=0)
    assert resolved.kind == "resolved"


def test_no_data_notices_one_silent_analyser_while_the_stations_others_report(conn):
    """A station is several analysers: one that stops (its link, its pump) must not hide behind the others'
    readings. Each active registered device is judged; the station's value is its most silent device's."""
    sensor(conn, "S")
    conn.execute("INSERT INTO devices (id, sensor_id, protocol, profile, variables) VALUES "
                 "('S-pm', 'S', 'modbus', 'p', '{pm25}'), ('S-o3', 'S', 'modbus', 'p', '{o3}'), "
                 "('S-old', 'S', 'modbus', 'p', '{no2}')")
    conn.execute("UPDATE devices SET active = false WHERE id = 'S-old'")  # retired: not expected to report
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO measurements (time, sensor_id, variable, value, unit, flags, device_id, "
                        "received_at) VALUES (%s, 'S', %s, 1.0, 'µg/m³', 0, %s, %s)",
                        [(T0 + i * MIN, "pm25", "S-pm", T0 + i * MIN) for i in range(45)]  # reports on
                        + [(T0 + i * MIN, "o3", "S-o3", T0 + i * MIN) for i in range(5)])  # silent from 08:04
    rule = RULES["no-data"]
    (value,) = equipment_values(conn, rule, T0 + 45 * MIN)
    assert (value.sensor_id, value.device_id, value.minutes) == ("S", "S-o3", 41.0)
    (raised,) = evaluate_alerts(conn, T0 + 45 * MIN, [rule], tz=BOGOTA, escalate_after_min=0)
    assert (raised.sensor_id, raised.level, raised.value) == ("S", "silent", 41.0)
    note = conn.execute("SELECT note FROM alert_events ORDER BY id").fetchone()[0]
    assert "device S-o3: last reading 2026-03-01 08:04" in note


def _rows_read(conn) -> int:
    """Rows this transaction has read from tables, by sequential or index scans (pg_stat_xact_user_tables)."""
    return conn.execute("SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0)::int "
                        "FROM pg_stat_xact_user_tables").fetchone()[0]


@pytest.mark.parametrize("rule_id", ["flat", "fault"])
def test_a_run_check_reads_a_flowing_series_back_only_as_far_as_its_run(conn, rule_id):
    """The flat-line and fault checks cost a few rows per series, not every reading of their window (issue 19:
    at 8,000 readings/s a 4-hour window holds ~115 million rows, read every minute)."""
    sensor(conn, "A")
    readings(conn, "A", T0, [float(i % 7) for i in range(3000)], step=timedelta(seconds=2))  # flowing, 100 min
    rule = RULES[rule_id]
    with conn.transaction():
        before = _rows_read(conn)
        (value,) = equipment_values(conn, rule, T0 + 100 * MIN)
        read = _rows_read(conn) - before
    assert value.minutes == 0.0
    assert read < 100, f"{rule_id}: {read} rows read for one flowing series of 3,000 readings"
