"""storage.indices_store.daily_inputs against a real TimescaleDB: read on a second connection in the snapshot taken
before the job's writes and merged with them, the daily index inputs are the ones read on the job's connection
after the writes — rewritten rows replaced (also by lower or NULL values), new rows added, rows outside the day
left out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from alerts.averaging.indices import DAILY_INPUTS
from storage import pgarrays, windows_store
from storage.indices_store import daily_inputs
from storage.side_reader import export_snapshot

START = datetime(2026, 3, 1, 5, tzinfo=UTC)
END = START + timedelta(days=1)
H = timedelta(hours=1)
SENSORS = [f"S{i:02d}" for i in range(60)]  # more than share a range scan (indices_store._RANGE_SCAN_MIN)
VARIABLES = ["pm25", "o3", "no2"]
UNITS = {"pm25": "µg/m³", "o3": "µg/m³", "no2": "µg/m³"}
HOURS = {"1h": 1, "8h": 8, "day": 24}


def _stored(conn: psycopg.Connection, rows: list[tuple[str, str, str, datetime, float | None, bool]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, coverage, "
            "samples, valid) VALUES (%s, %s, %s, %s, %s, %s, %s, 1, %s, %s)",
            [(s, v, p, e - HOURS[p] * H, e, x, UNITS[v], 0 if x is None else 1, ok) for s, v, p, e, x, ok in rows])


def _columns(rows: list[tuple[str, str, str, datetime, float | None, bool]]) -> windows_store.AverageColumns:
    pairs = sorted({(s, v) for s, v, *_ in rows})
    number = {p: i for i, p in enumerate(pairs)}
    periods = sorted({p for _, _, p, *_ in rows})
    return windows_store.AverageColumns(
        sensors=pgarrays.text_elements([s for s, _ in pairs]), variables=pgarrays.text_elements([v for _, v in pairs]),
        units=pgarrays.text_elements([UNITS[v] for _, v in pairs]),
        series=np.array([number[(s, v)] for s, v, *_ in rows]), period_names=pgarrays.text_elements(periods),
        period=np.array([periods.index(p) for _, _, p, *_ in rows]),
        start=np.array([(e - HOURS[p] * H).timestamp() for _, _, p, e, *_ in rows]),
        end=np.array([e.timestamp() for *_, e, _, _ in rows]),
        value=np.array([0.0 if x is None else x for *_, x, _ in rows]), coverage=np.ones(len(rows)),
        samples=np.array([0 if x is None else 1 for *_, x, _ in rows]), valid=np.array([ok for *_, ok in rows]))


def test_the_daily_inputs_read_beside_the_writes_are_those_read_after_them(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as setup:
        _stored(setup, [row for s in SENSORS for row in (
            (s, "pm25", "day", END, 50.0, True), (s, "o3", "8h", END - H, 80.0, True),
            (s, "o3", "1h", END - 2 * H, 70.0, True), (s, "no2", "1h", END - 2 * H, 30.0, True),
            (s, "no2", "1h", END - 3 * H, 35.0, False), (s, "o3", "8h", START, 999.0, True))])  # START: the day before
    rewritten = [row for s in SENSORS[::2] for row in (
        (s, "pm25", "day", END, 10.0, True), (s, "o3", "8h", END - H, 20.0, True), (s, "o3", "8h", END, 60.0, True),
        (s, "no2", "1h", END - 2 * H, None, False), (s, "o3", "1h", END, 75.0, True))]
    windows = [(s, START, END) for s in SENSORS]
    with psycopg.connect(database_url) as conn:
        snapshot = export_snapshot(conn).result()
        written = _columns(rewritten)
        windows_store.write_averages(conn, written, END)
        beside = sorted(daily_inputs(conn, windows, DAILY_INPUTS, snapshot=snapshot, written=[written]).result())
        after = sorted(daily_inputs(conn, windows, DAILY_INPUTS).result())
        conn.rollback()
    assert beside == after
    got = {(s, v): (mean, max8, max1) for s, _, v, mean, max8, max1 in beside}
    assert got[("S00", "pm25")] == (10.0, None, None) and got[("S01", "pm25")] == (50.0, None, None)
    assert got[("S00", "o3")] == (None, 60.0, 75.0) and got[("S01", "o3")] == (None, 80.0, 70.0)
    assert got[("S00", "no2")] == (None, None, None) and got[("S01", "no2")] == (None, None, 30.0)
