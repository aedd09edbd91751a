"""alerts/health/job.py against a real TimescaleDB: seeded readings and averages, the status job run in steps,
and the report (uptime, MTBF, MTTR, completeness, flat and drift indicators)."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from alerts.health import device_health, update_status
from tests.alerts.health.seed import GAP, NOW, POLICY, seeded

__all__ = ["seeded"]  # the fixture, used by name


def test_outage_transitions_are_recorded_once_whatever_the_runs(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        # runs at increasing times, a repeated one, and one for an earlier time (changes nothing)
        for now in (NOW - timedelta(hours=25), NOW - timedelta(hours=18, minutes=30), NOW - timedelta(hours=18),
                    NOW, NOW, NOW - timedelta(hours=19)):
            update_status(conn, now, POLICY)
        events = conn.execute("SELECT time, state FROM device_status_events WHERE device_id = 'MS01' "
                              "ORDER BY time").fetchall()
        assert events == [(GAP[0] + timedelta(seconds=4), "down"), (GAP[1] + timedelta(seconds=4), "up")]
        # a station device never heard is watched from the first run and down once
        usq = conn.execute("SELECT time, state FROM device_status_events WHERE device_id = 'USQ-pm'").fetchall()
        assert usq == [(NOW - timedelta(hours=25), "down")]


def test_report_gives_uptime_mtbf_mttr_completeness_flat_and_drift(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        update_status(conn, NOW - timedelta(hours=12), POLICY)
        update_status(conn, NOW, POLICY)
        [ms01] = device_health(conn, NOW, POLICY, sensor_id="MS01")
    # the 12:00 reading was received at 12:00:04, after `now`
    assert ms01.down_since is None and ms01.last_heard == NOW - timedelta(minutes=10) + timedelta(seconds=4)
    # 24 h: one 3-hour outage
    assert ms01.short.down_s == 3 * 3600 and ms01.short.failures == 1 and ms01.short.repairs == 1
    assert ms01.short.uptime == pytest.approx(21 / 24)
    assert ms01.short.mttr_s == 3 * 3600 and ms01.short.mtbf_s == pytest.approx(21 * 3600)
    # 30 d: watched from its first reading, 30 h ago (+4 s)
    observed = (timedelta(hours=30) - timedelta(seconds=4)).total_seconds()
    assert ms01.long.observed_s == pytest.approx(observed)
    assert ms01.long.uptime == pytest.approx(1 - 3 * 3600 / observed)
    # completeness: its four primary series; only pm25 has averages, half covered over the last day
    assert ms01.completeness_24h == pytest.approx(0.5 / 4)
    assert ms01.completeness_30d == pytest.approx(24 * 0.5 / (720 * 4))
    # flat for the last 3 h (readings 09:00 … 12:00)
    assert ms01.flat_minutes == 180 and ms01.flat_variable == "pm25"
    [d] = ms01.drifts
    assert d.reference_sensor == "USQ" and d.variable == "pm25" and d.hours == 720
    assert d.per_day == pytest.approx(0.5) and d.bias == pytest.approx(3.0 + 0.5 * (1 + 720) / 2 / 24)
    as_json = ms01.as_dict()
    assert as_json["status"] == "up" and as_json["24h"]["failures"] == 1


def test_a_silent_microsensor_far_from_stations_goes_down_and_has_no_drift(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        update_status(conn, NOW, POLICY)
        [first] = device_health(conn, NOW, POLICY, sensor_id="MS02")
        update_status(conn, NOW + timedelta(hours=2), POLICY)
        [later] = device_health(conn, NOW + timedelta(hours=2), POLICY, sensor_id="MS02")
    # never heard: watched from the first run, down once the silence is longer than down_after
    assert first.down_since is None and first.last_heard is None
    assert later.down_since == NOW and later.short.failures == 1 and later.short.down_s == 2 * 3600
    assert not later.drifts and later.flat_minutes == 0
