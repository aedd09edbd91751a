"""storage.trailing_runs: the walks (pure) and, against a real TimescaleDB, exact agreement with the window-function
queries they replace (kept here as the reference) on random series: several devices and variables per sensor,
excluded, null, NaN and maintenance-flagged readings, readings outside the window, silent series, runs longer
than several rounds, and a window across two chunks."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from aqnet.localstack import TimescaleCluster
from ingest.reading import EXCLUDED, QC
from storage import health_store, rule_inputs, trailing_runs
from storage.trailing_runs import fault_prefix, fault_runs, flat_prefix, flat_runs
from tests.fixtures.timescale import _create_clone

# ------------------------------------------------------------------------------------------- the walks


def _flat_reference(values: list[float], tolerance: float) -> int:
    """Rows whose max − min from the newest to them stays within tolerance (what the window function counts)."""
    n = 0
    for i in range(len(values)):
        seen = values[: i + 1]
        spread = math.nan if any(math.isnan(v) for v in seen) else max(seen) - min(seen)
        if not spread <= tolerance:
            break
        n += 1
    return n


@given(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0, math.nan]), max_size=12),
       st.sampled_from([0.0, 0.25, 0.5, 2.0]))
def test_flat_prefix_counts_the_run_or_says_it_may_go_on(values: list[float], tolerance: float) -> None:
    run = flat_prefix(values, tolerance)
    expected = _flat_reference(values, tolerance)
    assert (run if run is not None else len(values)) == expected
    assert (run is None) == (expected == len(values))


def test_flat_prefix_examples() -> None:
    assert flat_prefix([5.0, 5.0, 5.0, 6.0], 0.0) == 3
    assert flat_prefix([5.0, 5.5, 4.6, 6.0], 1.0) == 3  # 4.6..6.0 is 1.4
    assert flat_prefix([5.0, 5.0], 0.0) is None
    assert flat_prefix([math.nan, 5.0], 1.0) == 0
    assert flat_prefix([], 0.0) is None


def test_fault_prefix() -> None:
    assert fault_prefix([True, True, False, True]) == 2
    assert fault_prefix([False]) == 0
    assert fault_prefix([True, True]) is None
    assert fault_prefix([]) is None


# ------------------------------------------------------------------------------ against the window functions

_FLAT_REFERENCE = """
WITH r AS (
    SELECT m.sensor_id, m.device_id, m.variable, m.time,
           max(m.value) OVER w - min(m.value) OVER w AS spread
    FROM measurements m
    WHERE m.sensor_id = ANY(%(sensors)s) AND m.time > %(since)s AND m.time <= %(now)s AND m.value IS NOT NULL
      AND m.flags & %(excluded)s = 0
    WINDOW w AS (PARTITION BY m.sensor_id, m.device_id, m.variable ORDER BY m.time DESC
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT r.sensor_id, r.device_id, r.variable, max(r.time), min(r.time) FILTER (WHERE r.spread <= %(tolerance)s),
       count(*) FILTER (WHERE r.spread <= %(tolerance)s)
FROM r GROUP BY 1, 2, 3
"""

_FAULT_REFERENCE = """
WITH r AS (
    SELECT m.sensor_id, m.device_id, m.variable, m.time, m.flags & %(invalid)s <> 0 AS bad,
           max(m.time) FILTER (WHERE m.flags & %(invalid)s = 0)
               OVER (PARTITION BY m.sensor_id, m.device_id, m.variable) AS last_ok
    FROM measurements m
    WHERE m.sensor_id = ANY(%(sensors)s) AND m.time > %(since)s AND m.time <= %(now)s
      AND m.flags & %(maintenance)s = 0
)
SELECT r.sensor_id, r.device_id, r.variable, max(r.time),
       min(r.time) FILTER (WHERE r.bad AND r.time > coalesce(r.last_ok, '-infinity'))
FROM r GROUP BY 1, 2, 3
"""

_NO_DATA_REFERENCE = """
SELECT s.id, s.locality, d.id,
       (SELECT max(m.time) FROM measurements m
        WHERE m.sensor_id = s.id AND (d.id IS NULL OR m.device_id = d.id)
          AND (%(variable)s::text IS NULL OR m.variable = %(variable)s::text)
          AND m.time > %(since)s AND m.time <= %(now)s) AS last_time
FROM sensors s
LEFT JOIN devices d ON d.sensor_id = s.id AND d.active
     AND (%(variable)s::text IS NULL OR %(variable)s::text = ANY(d.variables))
WHERE s.kind = ANY(%(kinds)s) AND s.lifecycle = 'active'
ORDER BY s.id, d.id
"""

DAY_END = datetime(2026, 3, 2, tzinfo=UTC)  # a chunk boundary (measurements: 1-day chunks)
SENSORS = [f"S{i:02d}" for i in range(24)]
#: the reading times of S23's two long runs (data, not a clock): the runs begin at their sixth reading
LONG_START, LONG_STEP = DAY_END - timedelta(hours=3), timedelta(seconds=20)


@pytest.fixture(scope="module")
def seeded(timescale: TimescaleCluster, timescale_template: str) -> Iterator[str]:
    """One database of random series around DAY_END (module scope: the tests only read it)."""
    name = "t_trailing_runs"
    _create_clone(timescale, timescale_template, name)
    url = timescale.url_for(name)
    rng = random.Random(19)
    rows = []
    with psycopg.connect(url, autocommit=True) as conn:
        for s in SENSORS:
            conn.execute("INSERT INTO sensors (id, name, kind, lat, lon, locality) VALUES (%s, %s, 'microsensor', "
                         "4.6, -74.1, 'Kennedy')", (s, s))
            for d in range(rng.randint(1, 2)):
                for v in rng.sample(["pm25", "pm10", "no2", "temperature"], rng.randint(1, 3)):
                    n = rng.choice([0, 1, 2, 3, 5, 40, 300])  # runs beyond several rounds (4, 32, 256)
                    start = DAY_END - timedelta(hours=rng.choice([1, 3, 6]))
                    step = timedelta(seconds=rng.choice([10, 60]))
                    level = rng.choice([1.0, 2.0, 7.5])
                    tail_from = rng.randint(0, n) if n else 0
                    tail = rng.choice(["flat", "fault", "mixed"])  # what the series' tail is
                    for i in range(n):
                        t = start + i * step
                        value: float | None = rng.choice([1.0, 1.2, 2.0, 2.1, 7.5, 9.0, math.nan, None])
                        flags = rng.choices([0, int(QC.DEVICE_INVALID), int(QC.MAINTENANCE), int(QC.OUT_OF_RANGE)],
                                            weights=[6, 2, 1, 1])[0]
                        if i >= tail_from and tail == "flat":
                            value, flags = level, rng.choices([0, int(QC.MAINTENANCE)], weights=[20, 1])[0]
                        elif i >= tail_from and tail == "fault":
                            flags = rng.choices([int(QC.DEVICE_INVALID), int(QC.MAINTENANCE)], weights=[20, 1])[0]
                        rows.append((t, s, f"{s}-d{d}", v, value, flags))
        for i, s in enumerate(SENSORS[:12]):  # registered devices: the first measuring pm25 and pm10, one inactive
            conn.execute("INSERT INTO devices (id, sensor_id, protocol, profile, variables, active) VALUES "
                         "(%s, %s, 'mqtt', 'x', %s, true), (%s, %s, 'mqtt', 'x', '{no2}', %s)",
                         (f"{s}-d0", s, ["pm25", "pm10"], f"{s}-d1", s, i % 2 == 0))
        # runs longer than every round (4 + 32 + 256 readings), finished in SQL: a stuck value and a long fault,
        # each after a few fine or flowing readings
        rows += [(LONG_START + i * LONG_STEP, "S23", "S23-long", "co", 1.5 if i >= 5 else float(i), 0)
                 for i in range(400)]
        rows += [(LONG_START + i * LONG_STEP, "S23", "S23-long", "so2", float(i),
                  int(QC.DEVICE_INVALID) if i >= 5 else 0) for i in range(400)]
        # a device that moved: S01's first device also measured pm25 for S00 within the window
        rows += [(DAY_END - timedelta(minutes=90) + i * timedelta(minutes=1), "S00", "S01-d0", "pm25", 4.0, 0)
                 for i in range(30)]
        rows += [(DAY_END - timedelta(minutes=59) + i * timedelta(minutes=1), "S01", "S01-d0", "pm25", 4.0, 0)
                 for i in range(30)]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO measurements (time, sensor_id, device_id, variable, value, unit, flags, "
                            "received_at) VALUES (%s, %s, %s, %s, %s, 'x', %s, %s) ON CONFLICT DO NOTHING",
                            [(t, s, d, v, value, flags, t) for t, s, d, v, value, flags in rows])
    try:
        yield url
    finally:
        with psycopg.connect(timescale.url_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


WINDOWS = [(DAY_END - timedelta(hours=4), DAY_END), (DAY_END - timedelta(hours=2), DAY_END - timedelta(minutes=30)),
           (DAY_END - timedelta(minutes=5), DAY_END + timedelta(hours=1)), (DAY_END, DAY_END + timedelta(hours=1))]


@pytest.mark.parametrize(("since", "now"), WINDOWS)
@pytest.mark.parametrize("tolerance", [0.0, 0.2, 1.0])
def test_flat_runs_match_the_window_function(seeded: str, since: datetime, now: datetime, tolerance: float) -> None:
    excluded = int(EXCLUDED)
    with psycopg.connect(seeded) as conn:
        expected = {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in conn.execute(
            _FLAT_REFERENCE, {"sensors": SENSORS, "since": since, "now": now, "excluded": excluded,
                              "tolerance": tolerance})}
        got = {(r.sensor_id, r.device_id, r.variable): (r.last, r.since, r.n)
               for r in flat_runs(conn, SENSORS, since=since, now=now, excluded=excluded, tolerance=tolerance)}
    assert got == expected
    longest = max(n for _, _, n in got.values())
    beyond_rounds = trailing_runs.FIRST_ROUND * trailing_runs.GROWTH ** (trailing_runs.ROUNDS - 1)
    assert longest > beyond_rounds or (since, now) != WINDOWS[0]  # every round, then the rest in SQL
    if (since, now) == WINDOWS[0] and tolerance < 1.0:  # the stuck value, from its sixth reading on
        assert got["S23", "S23-long", "co"][1:] == (LONG_START + 5 * LONG_STEP, 395)


@pytest.mark.parametrize(("since", "now"), WINDOWS)
def test_fault_runs_match_the_window_function(seeded: str, since: datetime, now: datetime) -> None:
    invalid, maintenance = int(QC.DEVICE_INVALID), int(QC.MAINTENANCE)
    with psycopg.connect(seeded) as conn:
        expected = {(r[0], r[1], r[2]): (r[3], r[4]) for r in conn.execute(
            _FAULT_REFERENCE, {"sensors": SENSORS, "since": since, "now": now, "invalid": invalid,
                               "maintenance": maintenance})}
        got = {(r.sensor_id, r.device_id, r.variable): (r.last, r.since)
               for r in fault_runs(conn, SENSORS, since=since, now=now, invalid=invalid, maintenance=maintenance)}
    assert got == expected
    assert any(s is not None for _, s in got.values()) or since >= DAY_END - timedelta(minutes=30)
    if (since, now) == WINDOWS[0]:  # the long fault, finished in SQL
        assert got["S23", "S23-long", "so2"][1] == LONG_START + 5 * LONG_STEP


def test_a_variable_and_a_subset_of_sensors(seeded: str) -> None:
    since, now = WINDOWS[0]
    some = SENSORS[::3]
    with psycopg.connect(seeded) as conn:
        every = flat_runs(conn, SENSORS, since=since, now=now, excluded=int(EXCLUDED), tolerance=0.0)
        pm25 = flat_runs(conn, some, since=since, now=now, excluded=int(EXCLUDED), tolerance=0.0, variable="pm25")
    assert pm25 and sorted(pm25, key=str) == sorted((r for r in every if r.variable == "pm25" and r.sensor_id in some),
                                                   key=str)


@pytest.mark.parametrize(("since", "now"), WINDOWS[:2])
def test_device_health_flat_runs_match_the_window_function(seeded: str, since: datetime, now: datetime) -> None:
    """health_store.flat_runs: per device and variable across the given sensors (a moved device's readings under
    both sensors are one series), as its window function computes them."""
    with psycopg.connect(seeded) as conn:
        devices = conn.execute("SELECT DISTINCT device_id, left(device_id, 3) FROM measurements").fetchall()
        params = {"sensors": sorted({d[1] for d in devices}), "devices": [d[0] for d in devices], "since": since,
                  "now": now, "excluded": int(EXCLUDED), "tolerance": 0.0}
        expected = sorted(conn.execute(health_store._FLAT, params).fetchall(), key=str)
        got = sorted(health_store.flat_runs(conn, devices, since=since, now=now, excluded=int(EXCLUDED),
                                            tolerance=0.0), key=str)
    assert got == expected
    assert any(r[0] == "S01-d0" and r[1] == "pm25" for r in got) or since > DAY_END - timedelta(minutes=90)


@pytest.mark.parametrize(("since", "now"), WINDOWS)
@pytest.mark.parametrize("variable", [None, "pm25", "no2"])
def test_last_readings_match_the_max_per_device(seeded: str, since: datetime, now: datetime,
                                                variable: str | None) -> None:
    """rule_inputs.last_readings (the silence check) as the per-device max(time) it replaces computes it."""
    params = {"kinds": ["microsensor"], "variable": variable, "since": since, "now": now}
    with psycopg.connect(seeded) as conn:
        expected = conn.execute(_NO_DATA_REFERENCE, params).fetchall()
        got = rule_inputs.last_readings(conn, **params)  # type: ignore[arg-type]
    assert got == expected
    assert any(r[2] is not None and r[3] is not None for r in got) or since >= DAY_END - timedelta(minutes=30)
    assert any(r[2] is None and r[3] is not None for r in got) or since >= DAY_END - timedelta(minutes=30)
