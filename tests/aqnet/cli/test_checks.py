"""`aqnet checks list` through click's CliRunner against a real database: the checks the recording job wrote, as a
table and as JSON, filtered by sensor and verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
from click.testing import CliRunner

from alerts.zero_span_job import record_checks
from aqnet.cli.checks import checks
from sensors.zero_span import CheckSchedule

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _seed(url: str) -> None:
    schedule = CheckSchedule("KEN", "KEN-o3", "o3", UTC, at_minute=60, zero_min=10, span_min=10, purge_min=10,
                             span_value=400.0, unit="ppb")
    with psycopg.connect(url, autocommit=True) as conn:
        rows = []
        for day, span in ((0, 401.0), (1, 450.0)):  # +0.25 % (pass), +12.5 % (beyond 7.1 %: fail)
            start = T0 + timedelta(days=day, hours=1)
            rows += [(start + timedelta(minutes=m), 0.5) for m in range(10)]
            rows += [(start + timedelta(minutes=10 + m), span) for m in range(10)]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO measurements (time, sensor_id, variable, value, unit, flags, raw_value, "
                            "raw_unit, device_id, received_at) VALUES (%s, 'KEN', 'o3', %s, 'µg/m³', 64, %s, 'ppb', "
                            "'KEN-o3', %s)", [(t, v * 1.96, v, t) for t, v in rows])
        assert len(record_checks(conn, T0 + timedelta(days=2), [schedule], lookback_h=48)) == 2


def test_list_as_table_and_json_and_filters(database_url: str) -> None:
    _seed(database_url)
    runner = CliRunner()
    table = runner.invoke(checks, ["list", "--url", database_url], catch_exceptions=False)
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0].split()[:3] == ["STARTED", "(local)", "SENSOR"]
    assert "FAIL" in lines[1] and "+12.5" in lines[1] and "pass" in lines[2] and "+0.50" in lines[2]
    assert "2 check(s) shown" in lines[-1] and "unverified" in lines[-1]

    doc = json.loads(runner.invoke(checks, ["list", "--url", database_url, "--json", "--failed"]).output)
    assert [(d["sensor_id"], d["passed"], d["span_error_pct"]) for d in doc] == [("KEN", False, 12.5)]
    assert doc[0]["started_at"] == (T0 + timedelta(days=1, hours=1)).isoformat()
    none = runner.invoke(checks, ["list", "--url", database_url, "--sensor", "USQ"])
    assert none.exit_code == 0 and none.output.strip() == "no zero/span checks match"
