"""Issue 24's zero/span acceptance, against a real TimescaleDB: a simulated analyser without a zero/span status bit
runs a scheduled nightly check and drifts; its readings go through the ingest batch path (the maintenance book
flags the check and its purge time) into `measurements`; the stage jobs average them (the check's readings are
left out), record every check's responses, and raise exactly one technicians' alert when the drift crosses the
acceptance limit."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from alerts.jobs import ZeroSpanJob, run_stage_jobs
from alerts.rules.model import default_rules
from alerts.rules.state import AlertRaised
from ingest.batch import BatchNormaliser
from ingest.maintenance import MaintenanceBook
from ingest.normalise import ConditionsBook
from ingest.reading import EXCLUDED, QC
from ingest.units import convert
from ingest.zero_span_eval import DEFAULT_LIMITS
from sensors.network import bundled_network
from sensors.reading import RawReading
from sensors.zero_span import CheckSchedule, window_at
from simulators.analyser_checks import DriftingAnalyser
from storage.rows import MEASUREMENT_COLUMNS, reading_row

BOGOTA = ZoneInfo("America/Bogota")
DAY0 = datetime(2026, 3, 1, tzinfo=BOGOTA)
NIGHTS = 7
# nightly at 01:00 local: 15 min zero air, 15 min span gas (400 ppb), 20 min purge
SCHEDULE = CheckSchedule("KEN", "KEN-o3", "o3", BOGOTA, at_minute=60, zero_min=15, span_min=15, purge_min=20,
                         span_value=400.0, unit="ppb")
# +1.5 % gain and +0.2 ppb zero per day: the span error is ~1.5·n % on night n, beyond the O3 span limit (7.1 %,
# DEFAULT_LIMITS, unverified) from night 5 on
ANALYSER = DriftingAnalyser(SCHEDULE, since=DAY0, zero_per_day=0.2, span_pct_per_day=1.5)
RULE = next(r for r in default_rules() if r.id == "zero-span-check")


def ambient_ppb(t: datetime) -> float:
    """A smooth ambient O3 signal, ppb."""
    hours = (t - DAY0).total_seconds() / 3600
    return 30.0 + 10.0 * math.sin(hours / 24 * 2 * math.pi)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute("INSERT INTO sensors (id, name, kind, lat, lon, locality) "
                  "VALUES ('KEN', 'Kennedy', 'station', 4.6, -74.1, 'Kennedy')")
        c.execute("INSERT INTO devices (id, sensor_id, protocol, profile) VALUES ('KEN-o3', 'KEN', 'modbus-tcp', "
                  "'thermo-49iq')")
        c.execute("INSERT INTO primary_devices (sensor_id, variable, device_id) VALUES ('KEN', 'o3', 'KEN-o3')")
        yield c


def ingest_day(conn: psycopg.Connection, day_start: datetime, normaliser: BatchNormaliser, book: MaintenanceBook,
               conditions: ConditionsBook) -> list[tuple[datetime, float, int]]:
    """One reading a minute for a day through the batch path into measurements; (time, raw ppb, flags)."""
    raws = []
    for minute in range(24 * 60):
        t = (day_start + timedelta(minutes=minute)).astimezone(UTC)
        raws.append(RawReading("KEN", "KEN-o3", "o3", ANALYSER.reading(ambient_ppb(t), t), "ppb", t,
                               t + timedelta(seconds=2)))
    out = normaliser(raws, raws[-1].received_at, conditions=conditions, qc={}, ranges={}, calibrations=None,
                     maintenance=book)
    assert not out.refused
    with conn.cursor() as cur, cur.copy(f"COPY measurements ({', '.join(MEASUREMENT_COLUMNS)}) FROM STDIN") as cp:
        for reading in out.readings:
            cp.write_row(reading_row(reading))
    return [(r.time, r.raw_value, int(r.flags)) for r in out.readings]


def test_a_drifting_analyser_without_status_bit_is_checked_nightly_excluded_recorded_and_alerted_once(conn):
    book = MaintenanceBook(checks=[SCHEDULE])
    normaliser, conditions = BatchNormaliser(min_batch=0), ConditionsBook(bundled_network())
    job = ZeroSpanJob((SCHEDULE,), {}, stable_fraction=0.5)
    raised: list[tuple[int, AlertRaised]] = []
    all_readings: list[tuple[datetime, float, int]] = []
    for night in range(1, NIGHTS + 1):
        day_start = DAY0 + timedelta(days=night)
        all_readings += ingest_day(conn, day_start, normaliser, book, conditions)
        now = day_start + timedelta(days=1, minutes=5)
        run = run_stage_jobs(conn, now, [RULE], cadence_s={"KEN-o3": 60.0}, tz=BOGOTA, lookback_h=30,
                             zero_span=job)
        assert len(run.checks) == 1  # that night's check, recorded once
        raised += [(night, e) for e in run.events if isinstance(e, AlertRaised)]
        # the same run again records nothing and raises nothing
        again = run_stage_jobs(conn, now, [RULE], cadence_s={"KEN-o3": 60.0}, tz=BOGOTA, lookback_h=30,
                               zero_span=job)
        assert again.checks == () and again.events == ()

    # readings in the check window and its purge time are flagged maintenance (excluded); no other is
    for t, _, flags in all_readings:
        in_check = window_at(SCHEDULE, t) is not None
        assert bool(flags & QC.MAINTENANCE) is in_check
        assert bool(flags & EXCLUDED) is in_check

    # ... and left out of the stored averages: each hour's mean is the mean of its ambient readings only (the
    # check's hour keeps 10 of 60 minutes: invalid), each day's the mean of its 23 valid hours
    hours = conn.execute("SELECT period_start, value, valid, samples FROM averages WHERE sensor_id = 'KEN' "
                         "AND variable = 'o3' AND period = '1h' ORDER BY period_start").fetchall()
    assert len(hours) >= NIGHTS * 24
    valid_means: dict[datetime, list[float]] = {}
    for start, value, valid, samples in hours:
        kept = [convert(v, "ppb", "o3") for t, v, _ in all_readings
                if start <= t < start + timedelta(hours=1) and window_at(SCHEDULE, t) is None]
        if not kept:
            continue
        assert samples == len(kept) and value == pytest.approx(sum(kept) / len(kept), rel=1e-9)
        check_hour = start.astimezone(BOGOTA).hour == 1
        assert valid is not check_hour and samples == (10 if check_hour else 60)
        if valid:
            valid_means.setdefault(start.astimezone(BOGOTA).replace(hour=0), []).append(value)
    days = conn.execute("SELECT period_start, value, valid, samples FROM averages WHERE sensor_id = 'KEN' "
                        "AND variable = 'o3' AND period = 'day' ORDER BY period_start").fetchall()
    assert len(days) == NIGHTS
    for start, value, valid, samples in days:
        means = valid_means[start]
        assert valid and samples == len(means) == 23
        assert value == pytest.approx(sum(means) / len(means), rel=1e-9)
        assert value < convert(60.0, "ppb", "o3")  # the span gas (400 ppb) would have pulled it far up

    # every check's responses are recorded against their expected values
    checks = conn.execute("SELECT started_at, zero_response, span_response, zero_n, span_n, zero_error, "
                          "span_error_pct, passed, percent_of_limit, zero_limit, span_limit_pct, limits_status, "
                          "zero_drift_per_day, span_drift_pct_per_day FROM zero_span_checks ORDER BY started_at"
                          ).fetchall()
    assert len(checks) == NIGHTS
    limits = DEFAULT_LIMITS["o3"]
    for night, (started, zero, span, zn, sn, zero_error, span_error, passed, pct, zlim, slim, status, zd,
                sd) in enumerate(checks, start=1):
        assert started == DAY0 + timedelta(days=night, hours=1)
        mid_zero = started + timedelta(minutes=11)  # the settled half of the zero phase, ~its middle
        assert zn == sn == 7  # minutes 8..14 of each 15-minute phase (its settled half), one reading a minute
        assert zero == pytest.approx(ANALYSER.offset(mid_zero), abs=0.01)
        assert zero_error == pytest.approx(zero)
        expected_span = 400.0 * ANALYSER.gain(mid_zero + timedelta(minutes=15)) + ANALYSER.offset(mid_zero)
        assert span == pytest.approx(expected_span, rel=1e-4)
        assert span_error == pytest.approx(100 * (span - 400.0) / 400.0)
        assert (zlim, slim, status) == (limits.zero, limits.span_pct, "unverified")
        assert passed is (abs(span_error) <= limits.span_pct and abs(zero_error) <= limits.zero)
        assert pct == pytest.approx(100 * max(abs(zero_error) / zlim, abs(span_error) / slim))
        if night >= 2:  # drift over the checks so far: the simulated drift
            # the span error moves by the gain drift plus the zero drift relative to the span: 1.5 + 100 · 0.2/400
            assert zd == pytest.approx(0.2, rel=1e-6) and sd == pytest.approx(1.55, rel=1e-6)
    verdicts = [c[7] for c in checks]
    first_failure = verdicts.index(False) + 1
    assert verdicts == [True] * (first_failure - 1) + [False] * (NIGHTS - first_failure + 1)
    assert first_failure == 5

    # exactly one technicians' alert, raised on the night the drift crossed the limit
    assert [(night, e.rule_id, e.sensor_id) for night, e in raised] == [(first_failure, "zero-span-check", "KEN")]
    alerts = conn.execute("SELECT rule, kind, audience, state, sensor_id, variable FROM alerts").fetchall()
    assert alerts == [("zero-span-check", "zero_span", "technicians", "firing", "KEN", "o3")]
    events = conn.execute("SELECT kind, note FROM alert_events ORDER BY id").fetchall()
    # later nights' failing checks add nothing but the reminder nobody acknowledged it (escalation)
    assert events[0][0] == "raised" and {k for k, _ in events[1:]} <= {"unacknowledged"}
    assert "zero/span check" in events[0][1] and "KEN-o3" in events[0][1]
