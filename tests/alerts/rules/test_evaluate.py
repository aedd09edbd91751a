"""Integration tests for alerts.rules.evaluate against a real TimescaleDB, with averages and indices inserted directly:
scopes (sensor, locality, network), sensor selection (reference / microsensor, lifecycle), the 'day' period's
age limit, suppression (maintenance, invalid, device-invalid), manual resolution, escalation for want of an
acknowledgement, idempotence, restarts and a rolled-back evaluation (`aqnet alerts test-rule`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from alerts.rules.evaluate import evaluate_alerts
from alerts.rules.model import default_rules, parse_rules
from ingest.reading import QC

BOGOTA = ZoneInfo("America/Bogota")
H = timedelta(hours=1)
UGM3 = "µg/m³"

RULES = parse_rules("""
rules:
  - id: pm25-1h
    description: test rule on the 1-h mean
    variable: pm25
    period: 1h
    clear_fraction: 0.5
    levels:
      - {name: high, threshold: 50, unit: µg/m³, source: test source A, severity: warning}
      - {name: very-high, threshold: 100, unit: µg/m³, source: test source B, severity: critical}
  - id: pm25-1h-locality
    variable: pm25
    period: 1h
    scope: locality
    clear_fraction: 0.5
    levels: [{name: high, threshold: 50, unit: µg/m³, source: test source A}]
  - id: pm25-1h-network-micro
    variable: pm25
    period: 1h
    scope: network
    sensors: microsensor
    clear_fraction: 0.5
    levels: [{name: high, threshold: 50, unit: µg/m³, source: test source A}]
  - id: pm25-day-limit
    variable: pm25
    period: day
    clear_fraction: 0.9
    levels: [{name: limit, threshold: 37, comparison: ">", unit: µg/m³, source: Res. 2254/2017 Tabla 1}]
  - id: iboca
    kind: index
    index: iboca
    variable: pm25
    escalate_unacknowledged_after_min: 0
    clear_fraction: 0.9
    levels:
      - {name: Moderado, threshold: 51, unit: IBOCA, source: Res. Conjunta 2840/2023, severity: info,
         action: Prevención}
      - {name: Regular, threshold: 101, unit: IBOCA, source: Res. Conjunta 2840/2023, severity: info,
         action: Alerta fase 1}
""", source="test")
R = {r.id: r for r in RULES}


def at(hour: int, day: int = 1) -> datetime:
    """The local (Bogotá) time `hour`:00 on March `day` 2026; hours past 23 roll over."""
    return datetime(2026, 3, day, tzinfo=BOGOTA) + hour * H


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def sensor(conn, sensor_id: str, *, kind: str = "station", locality: str = "", lifecycle: str = "active") -> None:
    conn.execute("INSERT INTO sensors (id, name, kind, lat, lon, locality, lifecycle) "
                 "VALUES (%s, %s, %s, 4.6, -74.1, %s, %s)", (sensor_id, sensor_id, kind, locality, lifecycle))


def average(conn, sensor_id: str, end: datetime, value: float | None, *, period: str = "1h", valid: bool = True,
            coverage: float = 1.0, start: datetime | None = None, variable: str = "pm25") -> None:
    start = start or end - {"1h": H, "8h": 8 * H, "24h": 24 * H, "day": 24 * H}[period]
    conn.execute("INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, coverage, "
                 "samples, valid) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1, %s) ON CONFLICT (sensor_id, variable, "
                 "period, period_end) DO UPDATE SET value = excluded.value, valid = excluded.valid, "
                 "coverage = excluded.coverage",
                 (sensor_id, variable, period, start, end, value, UGM3, coverage, valid))


def alerts(conn) -> list[tuple]:
    return conn.execute("SELECT rule, scope, scope_key, sensor_id, state, level, value, severity, kind, audience, "
                        "indicative FROM alerts ORDER BY id").fetchall()


def events(conn) -> list[tuple]:
    return conn.execute("SELECT a.rule, a.scope_key, e.kind, e.level, e.from_level, e.severity FROM alert_events e "
                        "JOIN alerts a ON a.id = e.alert_id ORDER BY e.id").fetchall()


def test_scopes_take_the_worst_sensor_and_selection_follows_sensor_kind_and_lifecycle(conn):
    sensor(conn, "A", locality="Kennedy")
    sensor(conn, "B", locality="Kennedy")
    sensor(conn, "C", locality="Suba", lifecycle="maintenance")  # not active: never evaluated
    sensor(conn, "M1", kind="microsensor", locality="Kennedy")
    sensor(conn, "M2", kind="microsensor", locality="Suba")
    for s, v in (("A", 60.0), ("B", 120.0), ("C", 500.0), ("M1", 70.0), ("M2", 80.0)):
        average(conn, s, at(10), v)
    rules = [R["pm25-1h"], R["pm25-1h-locality"], R["pm25-1h-network-micro"]]
    got = evaluate_alerts(conn, at(10) + timedelta(minutes=5), rules, tz=BOGOTA)
    assert sorted((e.rule_id, e.sensor_id, e.level) for e in got) == [
        ("pm25-1h", "A", "high"), ("pm25-1h", "B", "very-high"),
        ("pm25-1h-locality", "Kennedy", "high"), ("pm25-1h-network-micro", "network", "high")]
    assert alerts(conn) == [
        ("pm25-1h", "sensor", "A", "A", "firing", "high", 60.0, "warning", "threshold", "officers", False),
        ("pm25-1h", "sensor", "B", "B", "firing", "very-high", 120.0, "critical", "threshold", "officers", False),
        ("pm25-1h-locality", "locality", "Kennedy", "B", "firing", "high", 120.0, "warning", "threshold",
         "officers", False),
        ("pm25-1h-network-micro", "network", "network", "M2", "firing", "high", 80.0, "warning", "threshold",
         "officers", True)]
    row = conn.execute("SELECT locality, period, period_start, period_end, coverage, escalated_at FROM alerts "
                       "WHERE scope = 'locality'").fetchone()
    assert row == ("Kennedy", "1h", at(9), at(10), 1.0, None)
    (note,) = conn.execute("SELECT e.note FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
                           "WHERE a.scope = 'network'").fetchone()
    assert note == ("raised at high (warning): pm25 1h mean ending 2026-03-01 10:00 -05 at sensor M2 (Suba), the "
                    "worst of network network = 80 µg/m³ >= 50 µg/m³ [test source A]; coverage 100 %; indicative "
                    "(microsensor)")
    # the same `now` again, and a restart on a new connection: nothing new
    assert evaluate_alerts(conn, at(10) + timedelta(minutes=5), rules, tz=BOGOTA) == []
    with psycopg.connect(conn.info.dsn, autocommit=True) as again:
        assert evaluate_alerts(again, at(10) + timedelta(minutes=6), rules, tz=BOGOTA) == []
    assert len(events(conn)) == 4


def test_day_limit_uses_the_latest_day_that_ended_within_24_hours(conn):
    sensor(conn, "A")
    average(conn, "A", at(0, day=2), 40.0, period="day")  # the calendar day 1 March, ends 2 March 00:00
    rules = [R["pm25-day-limit"]]
    assert evaluate_alerts(conn, at(0, day=1) + 23 * H, rules, tz=BOGOTA) == []  # the day has not ended
    (raised,) = evaluate_alerts(conn, at(18, day=2), rules, tz=BOGOTA)  # 18 h after it ended: still evaluated
    assert (raised.level, raised.value, raised.time) == ("limit", 40.0, at(0, day=2))
    note = conn.execute("SELECT note FROM alert_events").fetchone()[0]
    assert "pm25 day average of 2026-03-01 (local) at sensor A = 40 µg/m³ > 37 µg/m³" in note
    sensor(conn, "B")
    average(conn, "B", at(0, day=2), 45.0, period="day")
    # 25 h after the day ended it is too old to raise anything
    assert evaluate_alerts(conn, at(1, day=3), rules, tz=BOGOTA, escalate_after_min=0) == []


def test_maintenance_and_invalid_data_are_suppressed_and_recorded_once(conn):
    for s in ("A", "B", "D"):
        sensor(conn, s)
    conn.execute("INSERT INTO devices (id, sensor_id, protocol, profile) VALUES ('A-pm', 'A', 'modbus-tcp', 'x')")
    conn.execute("INSERT INTO maintenance_windows (sensor_id, variable, starts_at, ends_at, reason, created_by) "
                 "VALUES ('A', 'pm25', %s, %s, 'calibration', 'tech')", (at(9) + 10 * timedelta(minutes=1), at(11)))
    average(conn, "A", at(10), 90.0)  # valid, but in maintenance
    average(conn, "B", at(10), 80.0, valid=False, coverage=0.5)  # incomplete
    average(conn, "D", at(10), 70.0, valid=False, coverage=0.5)  # incomplete: the analyser flagged readings invalid
    conn.execute("INSERT INTO measurements (time, sensor_id, variable, value, unit, flags, device_id, received_at) "
                 "VALUES (%s, 'D', 'pm25', 900, %s, %s, 'D-pm', %s)",
                 (at(9) + timedelta(minutes=30), UGM3, int(QC.DEVICE_INVALID), at(10)))
    for _ in range(2):
        assert evaluate_alerts(conn, at(10), [R["pm25-1h"]], tz=BOGOTA) == []
    assert alerts(conn) == []
    rows = conn.execute("SELECT scope_key, sensor_id, period_end, value, level, reason FROM alert_suppressions "
                        "ORDER BY scope_key").fetchall()
    assert rows == [("A", "A", at(10), 90.0, "high", "maintenance"), ("B", "B", at(10), 80.0, "high", "invalid"),
                    ("D", "D", at(10), 70.0, "high", "device_invalid")]
    # an invalid average never clears a firing alert either
    average(conn, "B", at(11), 60.0)
    (raised,) = evaluate_alerts(conn, at(11), [R["pm25-1h"]], tz=BOGOTA, escalate_after_min=0)
    assert raised.sensor_id == "B"
    average(conn, "B", at(12), 1.0, valid=False, coverage=0.1)
    assert evaluate_alerts(conn, at(12), [R["pm25-1h"]], tz=BOGOTA, escalate_after_min=0) == []
    assert conn.execute("SELECT state FROM alerts WHERE scope_key = 'B'").fetchone() == ("firing",)


def test_manual_resolution_holds_until_a_value_below_the_clear_threshold(conn):
    sensor(conn, "A")
    rule = R["pm25-1h"]
    average(conn, "A", at(1), 60.0)
    evaluate_alerts(conn, at(1), [rule], tz=BOGOTA, escalate_after_min=0)
    # what storage.alerts_store.resolve writes for an officer
    conn.execute("UPDATE alerts SET state = 'resolved', resolved_at = %s, resolved_by = 'ana', "
                 "details = details || '{\"manual\": true}' WHERE scope_key = 'A'", (at(1) + timedelta(minutes=20),))
    conn.execute("INSERT INTO alert_events (alert_id, time, kind, from_state, to_state, actor, via) "
                 "SELECT id, %s, 'resolved', 'firing', 'resolved', 'ana', 'cli' FROM alerts",
                 (at(1) + timedelta(minutes=20),))
    for h, v in ((2, 70.0), (3, 120.0), (4, 30.0)):  # still >= clear (25): no new episode, not even escalating
        average(conn, "A", at(h), v)
        assert evaluate_alerts(conn, at(h), [rule], tz=BOGOTA, escalate_after_min=0) == []
    assert conn.execute("SELECT count(*), max(state) FROM alerts").fetchone() == (1, "resolved")
    average(conn, "A", at(5), 10.0)  # below the clear threshold: forgotten
    assert evaluate_alerts(conn, at(5), [rule], tz=BOGOTA, escalate_after_min=0) == []
    average(conn, "A", at(6), 60.0)
    (raised,) = evaluate_alerts(conn, at(6), [rule], tz=BOGOTA, escalate_after_min=0)
    assert raised.kind == "raised"
    assert conn.execute("SELECT state FROM alerts ORDER BY id").fetchall() == [("resolved",), ("firing",)]


def test_an_unacknowledged_alert_escalates_once_per_level_and_an_acknowledged_one_not(conn):
    sensor(conn, "A")
    sensor(conn, "B")
    rule = R["pm25-1h"]
    average(conn, "A", at(1), 60.0)
    average(conn, "B", at(1), 60.0)
    assert len(evaluate_alerts(conn, at(1), [rule], tz=BOGOTA)) == 2
    conn.execute("UPDATE alerts SET state = 'acknowledged', acknowledged_at = %s, acknowledged_by = 'ana' "
                 "WHERE scope_key = 'B'", (at(1) + timedelta(minutes=5),))
    assert evaluate_alerts(conn, at(1) + timedelta(minutes=59), [rule], tz=BOGOTA) == []
    (late,) = evaluate_alerts(conn, at(2), [rule], tz=BOGOTA)  # no new average needed: time-based
    assert (late.kind, late.sensor_id, late.level, late.time) == ("unacknowledged", "A", "high", at(2))
    assert evaluate_alerts(conn, at(2), [rule], tz=BOGOTA) == []
    assert evaluate_alerts(conn, at(5), [rule], tz=BOGOTA) == []  # once per level
    assert conn.execute("SELECT scope_key, state, escalated_at FROM alerts ORDER BY scope_key").fetchall() == [
        ("A", "firing", at(2)), ("B", "acknowledged", None)]
    # a worse level: the acknowledged alert fires again and, unacknowledged, is escalated again 30 min later
    average(conn, "B", at(6), 150.0)
    (escalated,) = evaluate_alerts(conn, at(6), [rule], tz=BOGOTA, escalate_after_min=30)
    assert (escalated.kind, escalated.sensor_id, escalated.from_level) == ("escalated", "B", "high")
    (late,) = evaluate_alerts(conn, at(6) + timedelta(minutes=30), [rule], tz=BOGOTA, escalate_after_min=30)
    assert (late.kind, late.sensor_id, late.level) == ("unacknowledged", "B", "very-high")
    assert [e[2:] for e in events(conn) if e[1] == "B"] == [
        ("raised", "high", None, "warning"), ("escalated", "very-high", "high", "critical"),
        ("unacknowledged", "very-high", None, "critical")]
    note = conn.execute("SELECT note FROM alert_events WHERE kind = 'unacknowledged' ORDER BY id DESC").fetchone()[0]
    assert note.startswith("not acknowledged 30 min after reaching very-high (critical): pm25")


def test_index_rule_on_nowcast_categories(conn):
    sensor(conn, "A")
    for h, value, category, action in ((1, 80, "Moderado", "Prevención"), (2, 120, "Regular", "Alerta fase 1")):
        conn.execute("INSERT INTO indices (sensor_id, index, pollutant, averaging, period_end, value, level, category, "
                     "colour, action, concentration, unit, dominant, computed_at) VALUES ('A', 'iboca', 'pm25', "
                     "'nowcast', %s, %s, 2, %s, '#ffff00', %s, 30, %s, true, %s)",
                     (at(h), value, category, action, UGM3, at(h)))
        evaluate_alerts(conn, at(h), [R["iboca"]], tz=BOGOTA)
    assert [e[2:5] for e in events(conn)] == [("raised", "Moderado", None), ("escalated", "Regular", "Moderado")]
    # escalate_unacknowledged_after_min 0 on the rule: never escalated for want of an acknowledgement
    assert evaluate_alerts(conn, at(9), [R["iboca"]], tz=BOGOTA, escalate_after_min=1) == []
    row = conn.execute("SELECT kind, unit, value, period_end, details->>'action' FROM alerts").fetchone()
    assert row == ("index", "IBOCA", 120.0, at(2), "Alerta fase 1")
    note = conn.execute("SELECT note FROM alert_events ORDER BY id").fetchone()[0]
    assert "iboca of pm25 (NowCast ending 2026-03-01 01:00 -05, category Moderado) at sensor A = 80 IBOCA" in note


def test_a_rolled_back_evaluation_leaves_nothing(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        sensor(conn, "A")
        average(conn, "A", at(1), 60.0)
    with psycopg.connect(database_url) as conn:  # not autocommit: what `aqnet alerts test-rule` does
        with conn.transaction(force_rollback=True):
            (raised,) = evaluate_alerts(conn, at(1), [R["pm25-1h"]], tz=BOGOTA)
            assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (1,)
        assert raised.level == "high"
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)


def test_the_shipped_rules_evaluate_stations_and_microsensors_apart(conn):
    sensor(conn, "A", locality="Kennedy")
    sensor(conn, "M", kind="microsensor", locality="Kennedy")
    now = at(20) + timedelta(minutes=3)
    for s in ("A", "M"):
        average(conn, s, at(20), 60.0, period="24h", coverage=0.9)
        conn.execute("INSERT INTO measurements (time, sensor_id, variable, value, unit, device_id, received_at) "
                     "VALUES (%s, %s, 'pm25', 60, %s, %s, %s)", (now - timedelta(minutes=1), s, UGM3, f"{s}-d", now))
    got = evaluate_alerts(conn, now, default_rules(), tz=BOGOTA)
    assert sorted((e.rule_id, e.sensor_id, e.level) for e in got) == [
        ("pm25-24h-levels", "A", "alert"), ("pm25-24h-levels-microsensor", "M", "alert")]
    assert conn.execute("SELECT rule, audience, indicative, severity FROM alerts ORDER BY rule").fetchall() == [
        ("pm25-24h-levels", "officers", False, "critical"), ("pm25-24h-levels-microsensor", "officers", True,
                                                             "critical")]
    assert evaluate_alerts(conn, now, default_rules(), tz=BOGOTA) == []


def test_a_rule_whose_stored_level_was_renamed_is_logged_and_skipped_not_fatal(conn, caplog):
    sensor(conn, "A")
    average(conn, "A", at(1), 60.0)
    evaluate_alerts(conn, at(1), [R["pm25-1h"]], tz=BOGOTA)
    (renamed,) = parse_rules("""
rules:
  - id: pm25-1h
    variable: pm25
    period: 1h
    clear_fraction: 0.5
    levels: [{name: elevated, threshold: 50, unit: µg/m³, source: test source A}]
""", source="edited")
    average(conn, "A", at(2), 70.0)
    got = evaluate_alerts(conn, at(2), [renamed, R["pm25-1h-locality"]], tz=BOGOTA)
    assert [(e.rule_id, e.kind) for e in got] == []  # A has no locality; the renamed rule is skipped
    assert "alert rule pm25-1h not evaluated" in caplog.text and "elevated" in caplog.text
    assert conn.execute("SELECT state, value FROM alerts").fetchall() == [("firing", 60.0)]
