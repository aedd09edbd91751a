"""Acceptance tests of the averaging / index job against a real TimescaleDB (issue 9): an outage of the daemon
then catch-up computing each missed window once; an accelerated clock computing every window once and never one
that has not ended; a late reading (written by the real writer) recomputing exactly the windows it touches; the
indices stored with their category, dominance and indicative flag."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from alerts.averaging.job import compute_windows
from ingest.reading import QC, Reading
from storage.writer import TimescaleWriter

BOGOTA = ZoneInfo("America/Bogota")
H = timedelta(hours=1)
UGM3 = "µg/m³"
CADENCE = {"KEN-pm": 300.0, "MS01-pm": 300.0}


def at(hour: int, minute: int = 0) -> datetime:
    """March 1 2026 `hour`:`minute` in Bogotá (hours past 23 roll over), as UTC."""
    return (datetime(2026, 3, 1, tzinfo=BOGOTA) + hour * H + timedelta(minutes=minute)).astimezone(UTC)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as c:
        for sensor, kind, device in (("KEN", "station", "KEN-pm"), ("MS01", "microsensor", "MS01-pm")):
            c.execute("INSERT INTO sensors (id, name, kind, lat, lon) VALUES (%s, %s, %s, 4.6, -74.1)",
                      (sensor, sensor, kind))
            c.execute("INSERT INTO devices (id, sensor_id, protocol, profile) VALUES (%s, %s, 'mqtt', 'x')",
                      (device, sensor))
        yield c


def samples(sensor: str, variable: str, hour_end: datetime, value: float, n: int = 12, first: int = 0
            ) -> list[tuple]:
    """`n` samples every 5 minutes of the hour ending at `hour_end`, starting with the `first`-th."""
    return [(hour_end - H + timedelta(minutes=5 * i), sensor, variable, value, UGM3, 0, value, "ug/m3",
             f"{sensor}-pm", hour_end) for i in range(first, first + n)]


def insert(conn: psycopg.Connection, rows: list[tuple]) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO measurements (time, sensor_id, variable, value, unit, flags, raw_value, "
                        "raw_unit, device_id, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)


def fill(conn: psycopg.Connection, hours: range, *, pm25: float = 20.0, pm10: float = 40.0,
         skip: frozenset[tuple[str, int]] = frozenset()) -> None:
    rows = []
    for h in hours:
        for sensor in ("KEN", "MS01"):
            if (sensor, h) not in skip:
                rows += samples(sensor, "pm25", at(h), pm25) + samples(sensor, "pm10", at(h), pm10)
    insert(conn, rows)


def due_log(conn: psycopg.Connection, period: str) -> list[tuple[datetime, int]]:
    return conn.execute("SELECT period_end, count(*) FROM window_computations WHERE period = %s AND reason = 'due' "
                        "GROUP BY 1 ORDER BY 1", (period,)).fetchall()


def computed_at(conn: psycopg.Connection, now: datetime, table: str = "averages") -> set[tuple]:
    column = "period" if table == "averages" else "averaging"
    what = "variable" if table == "averages" else "index, pollutant"
    return set(conn.execute(f"SELECT sensor_id, {what}, {column}, period_end FROM {table} WHERE computed_at = %s",
                            (now,)).fetchall())


@pytest.mark.parametrize(("pipeline", "side_reads"), [(True, True), (False, True), (True, False)],
                         ids=["pipeline", "libpq-without-pipeline", "stored-hours-on-the-job-connection"])
def test_outage_then_catch_up_computes_each_missed_window_once(conn, monkeypatch, pipeline, side_reads):
    monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda cls: pipeline))
    fill(conn, range(1, 31))
    first = at(2, 5)
    run = compute_windows(conn, first, cadence_s=CADENCE, tz=BOGOTA, side_reads=side_reads)
    assert run.last_end == at(2) and run.due_hours[-2:] == (at(1), at(2))
    # the daemon is down from 02:05 to 06:05 the next day: the run after computes every missed window once
    second = at(30, 5)
    run = compute_windows(conn, second, cadence_s=CADENCE, tz=BOGOTA, side_reads=side_reads)
    assert run.due_hours == tuple(at(h) for h in range(3, 31))
    assert [d.isoformat() for d in run.due_days] == ["2026-03-01"]
    assert compute_windows(conn, second, cadence_s=CADENCE, tz=BOGOTA).due_hours == ()  # idempotent

    for period in ("1h", "8h", "24h"):
        log = due_log(conn, period)
        assert {end for end, _ in log} >= {at(h) for h in range(1, 31)}
        assert all(n == 1 for _, n in log)
    # the first run's 72-hour lookback holds three earlier days without data: logged (0 series) once too
    assert due_log(conn, "day") == [(at(24 * d), 1) for d in (-2, -1, 0, 1)]
    assert due_log(conn, "daily_aqi") == [(at(24), 1)]
    ends = conn.execute("SELECT period_end, computed_at FROM averages WHERE sensor_id = 'KEN' AND variable = 'pm25' "
                        "AND period = '1h' ORDER BY 1").fetchall()
    assert ends == [(at(h), first if h <= 2 else second) for h in range(1, 31)]
    assert conn.execute("SELECT count(*) FROM averages WHERE period_end > %s", (at(30),)).fetchone() == (0,)
    day = conn.execute("SELECT period_start, value, coverage, samples, valid FROM averages WHERE sensor_id = 'KEN' "
                       "AND variable = 'pm25' AND period = 'day'").fetchall()
    assert day == [(at(0), 20.0, 1.0, 24, True)]

    # hourly NowCast indices: from hour 2 on (2 of the 3 most recent hours), flat 20 µg/m³ → NowCast 20.0
    nowcast = conn.execute(
        "SELECT period_end, value, category, concentration, dominant FROM indices WHERE sensor_id = 'KEN' "
        "AND index = 'us_aqi' AND pollutant = 'pm25' AND averaging = 'nowcast' ORDER BY 1").fetchall()
    assert [r[0] for r in nowcast] == [at(h) for h in range(2, 31)]
    # 20.0 µg/m³ in the 2024 PM2.5 table (9.1–35.4 → 51–100): (100−51)/(35.4−9.1)·(20.0−9.1)+51 = 71.3 → 71
    assert {r[1:] for r in nowcast} == {(71, "Moderate", 20.0, True)}  # PM10 40 µg/m³ → 37 (Good)
    iboca = conn.execute("SELECT value, category, action, indicative FROM indices WHERE sensor_id = 'KEN' "
                         "AND index = 'iboca' AND period_end = %s", (at(12),)).fetchall()
    # IBOCA band 12.1–35.4 → 51–100 (Res. Conjunta 2840/2023): (100−51)/(35.4−12.1)·(20.0−12.1)+51 = 67.6 → 68
    assert iboca == [(68, "Moderado", "Prevención", False)]
    assert conn.execute("SELECT DISTINCT indicative FROM indices WHERE sensor_id = 'MS01'").fetchall() == [(True,)]
    daily = conn.execute("SELECT pollutant, averaging, value, dominant FROM indices WHERE sensor_id = 'KEN' "
                         "AND period_end = %s AND averaging LIKE 'day%%' ORDER BY 1", (at(24),)).fetchall()
    assert daily == [("pm10", "day_24h", 37, False), ("pm25", "day_24h", 71, True)]


def test_accelerated_clock_computes_every_window_once_and_none_in_the_future(conn):
    fill(conn, range(1, 27))
    now = at(0, 1)
    while now < at(27):
        run = compute_windows(conn, now, cadence_s=CADENCE, tz=BOGOTA, settle_s=120)
        assert run.last_end <= now - timedelta(seconds=120)
        latest = conn.execute("SELECT max(period_end) FROM averages").fetchone()[0]
        assert latest is None or latest <= now - timedelta(seconds=120)
        now += timedelta(minutes=17)
    for period in ("1h", "8h", "24h", "nowcast"):
        assert all(n == 1 for _, n in due_log(conn, period))
    assert {e for e, _ in due_log(conn, "1h")} >= {at(h) for h in range(1, 27)}
    assert conn.execute("SELECT count(*) FROM window_computations WHERE reason = 'late'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM averages WHERE sensor_id = 'KEN' AND variable = 'pm25' "
                        "AND period = '1h'").fetchone() == (26,)


async def test_a_late_reading_recomputes_exactly_the_windows_it_touches(database_url, conn):
    # KEN's pm25 hour ending 10:00 has 6 of its 12 samples: invalid until the other 6 arrive late
    fill(conn, range(1, 31), skip=frozenset({("KEN", 10)}))
    insert(conn, samples("KEN", "pm25", at(10), 20.0, n=6) + samples("KEN", "pm10", at(10), 40.0))
    compute_windows(conn, at(30, 5), cadence_s=CADENCE, tz=BOGOTA)
    assert conn.execute("SELECT valid FROM averages WHERE sensor_id = 'KEN' AND variable = 'pm25' AND period = '1h' "
                        "AND period_end = %s", (at(10),)).fetchone() == (False,)

    # the late half hour comes through the real writer (e.g. a spool replay); plus a reading of the hour in
    # progress, which is not late
    late = [Reading("KEN", "KEN-pm", "pm25", at(9, 30 + 5 * i), 20.0, UGM3, QC(0), 20.0, "ug/m3", at(30, 6))
            for i in range(6)]
    current = Reading("KEN", "KEN-pm", "pm25", at(30, 10), 20.0, UGM3, QC(0), 20.0, "ug/m3", at(30, 10))
    async with AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False) as pool:
        result = await TimescaleWriter(pool).write([*late, current])
    assert result.inserted == 7
    marks = conn.execute("SELECT sensor_id, variable, slot_start FROM dirty_slots ORDER BY 3").fetchall()
    assert marks == [("KEN", "pm25", at(9, 30)), ("KEN", "pm25", at(9, 45))]

    later = at(30, 15)
    run = compute_windows(conn, later, cadence_s=CADENCE, tz=BOGOTA)
    assert run.due_hours == () and dict(run.late) == {("KEN", "pm25"): (at(10),)}
    assert conn.execute("SELECT value, coverage, valid FROM averages WHERE sensor_id = 'KEN' AND variable = 'pm25' "
                        "AND period = '1h' AND period_end = %s", (at(10),)).fetchone() == (20.0, 1.0, True)
    expected = ({("KEN", "pm25", "1h", at(10))}
                | {("KEN", "pm25", "8h", at(h)) for h in range(10, 18)}
                | {("KEN", "pm25", "24h", at(h)) for h in range(10, 31)}
                | {("KEN", "pm25", "day", at(24))})
    assert computed_at(conn, later) == expected
    assert computed_at(conn, later, "indices") == (
        {("KEN", "us_aqi", p, "nowcast", at(h)) for h in range(10, 22) for p in ("pm25", "pm10")}
        | {("KEN", "iboca", "pm25", "nowcast", at(h)) for h in range(10, 22)}
        | {("KEN", "us_aqi", p, a, at(24)) for p, a in (("pm25", "day_24h"), ("pm10", "day_24h"))})
    late_log = conn.execute("SELECT period, count(*) FROM window_computations WHERE reason = 'late' GROUP BY 1 "
                            "ORDER BY 1").fetchall()
    assert late_log == [("1h", 1), ("24h", 21), ("8h", 8), ("daily_aqi", 1), ("day", 1), ("nowcast", 12)]
    assert conn.execute("SELECT count(*) FROM dirty_slots").fetchone() == (0,)
    # nothing left to do
    assert compute_windows(conn, later, cadence_s=CADENCE, tz=BOGOTA).late == {}


def test_a_variable_outside_the_vocabulary_keeps_the_unit_of_its_samples(conn):
    """The unit of a variable the vocabulary does not know comes from the data: the least unit of its samples in
    the hours with samples, and, for the hours after the series went silent (invalid, coverage 0), the least unit of
    its stored hours that held samples."""
    rows = [(t, "MS01", "x_lab", v, u, 0, v, u, "MS01-pm", at(2)) for t, v, u in
            [(at(2) - H + timedelta(minutes=5 * i), 1.0 + i, "ppq" if i % 2 else "ppb") for i in range(12)]]
    insert(conn, rows)
    compute_windows(conn, at(2, 5), cadence_s=CADENCE, tz=BOGOTA)
    compute_windows(conn, at(4, 5), cadence_s=CADENCE, tz=BOGOTA)  # silent since 02:00
    got = conn.execute("SELECT period_end, unit, samples FROM averages WHERE variable = 'x_lab' AND period = '1h' "
                       "ORDER BY period_end").fetchall()
    assert got == [(at(2), "ppb", 12), (at(3), "ppb", 0), (at(4), "ppb", 0)]
