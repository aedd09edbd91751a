"""alerts.zero_span_job against a real TimescaleDB: a check that reported nothing is recorded without a verdict,
once; a schedule without limits is refused naming it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from alerts.zero_span_job import record_checks
from sensors.zero_span import CheckSchedule

T0 = datetime(2026, 3, 2, tzinfo=UTC)
SCHEDULE = CheckSchedule("KEN", "KEN-o3", "o3", UTC, at_minute=60, zero_min=10, span_min=10, purge_min=10,
                         span_value=400.0, unit="ppb")


def test_a_silent_check_is_recorded_without_verdict_once_and_only_after_its_purge(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        purge_end = T0 + timedelta(hours=1, minutes=30)
        assert record_checks(conn, purge_end - timedelta(seconds=1), [SCHEDULE], lookback_h=2) == []
        assert record_checks(conn, purge_end + timedelta(minutes=5), [SCHEDULE], lookback_h=2,
                             settle_s=600) == []  # settle: the check's readings may still be in flight
        (got,) = record_checks(conn, purge_end, [SCHEDULE], lookback_h=2)
        assert (got.result.passed, got.result.zero_n, got.result.span_n, got.result.percent_of_limit) == (
            None, 0, 0, None)
        assert record_checks(conn, purge_end + timedelta(hours=1), [SCHEDULE], lookback_h=3) == []
        row = conn.execute("SELECT passed, zero_response, span_response, limits_status FROM zero_span_checks"
                           ).fetchall()
        assert row == [(None, None, None, "unverified")]


def test_a_schedule_without_limits_is_refused_naming_it(database_url: str) -> None:
    pm = CheckSchedule("KEN", "KEN-pm", "pm25", UTC, at_minute=60, zero_min=10, span_min=10, purge_min=10,
                       span_value=50.0, unit="µg/m³")
    with psycopg.connect(database_url, autocommit=True) as conn, \
            pytest.raises(ValueError, match=r"KEN/KEN-pm \(pm25\): no acceptance limits"):
        record_checks(conn, T0 + timedelta(days=1), [pm])
