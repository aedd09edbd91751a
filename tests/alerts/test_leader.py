"""Leader election against a real TimescaleDB: one holder at a time, takeover within seconds when the holder's
session ends (killed process, dropped connection), and no window computed twice across leaders — even when two
processes run the job at the same moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from alerts.averaging.job import compute_windows
from alerts.leader import JOBS_LOCK_KEY, Leadership

BOGOTA = ZoneInfo("America/Bogota")
H = timedelta(hours=1)
TAKEOVER_S = 5.0  #: "another takes over within seconds"


def at(hour: int, minute: int = 0) -> datetime:
    return (datetime(2026, 3, 1, tzinfo=BOGOTA) + hour * H + timedelta(minutes=minute)).astimezone(UTC)


def wait_for_leader(leader: Leadership, within_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if leader.hold():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"no takeover within {within_s} s")


def test_one_leader_at_a_time_and_takeover_when_its_session_drops(database_url):
    a, b = Leadership(database_url), Leadership(database_url)
    try:
        assert a.hold() and a.is_leader
        assert not b.hold() and not b.is_leader
        assert a.hold()  # keeping it is idempotent
        # the holder's connection is cut (server restart, network): the lock goes with the session
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                          "AND objid::bigint = %s AND granted", (JOBS_LOCK_KEY & 0xFFFFFFFF,))
        assert wait_for_leader(b, TAKEOVER_S) < TAKEOVER_S
        assert not a.hold()  # the old holder notices, reconnects and finds the lock taken
        b.release()
        assert wait_for_leader(a, TAKEOVER_S) < TAKEOVER_S
    finally:
        a.release()
        b.release()


_HOLDER = """
import sys, time
from alerts.leader import Leadership
leader = Leadership(sys.argv[1])
assert leader.hold()
print("leader", flush=True)
time.sleep(120)
"""


def test_a_killed_leader_process_is_replaced_within_seconds(database_url):
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, database_url], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd())
    standby = Leadership(database_url)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "leader"
        assert not standby.hold()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        took = wait_for_leader(standby, TAKEOVER_S)
        assert took < TAKEOVER_S
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
        standby.release()


def _fill(conn: psycopg.Connection, hours: range) -> None:
    rows = [(at(h - 1, 5 * i), "KEN", "pm25", 20.0, "µg/m³", 0, 20.0, "ug/m3", "KEN-pm", at(h))
            for h in hours for i in range(12)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO measurements (time, sensor_id, variable, value, unit, flags, raw_value, "
                        "raw_unit, device_id, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)


@pytest.mark.parametrize("runs", [2, 4])
def test_leaders_racing_on_the_same_now_compute_each_window_once(database_url, runs):
    with psycopg.connect(database_url, autocommit=True) as conn:
        _fill(conn, range(1, 13))
    errors: list[BaseException] = []
    barrier = threading.Barrier(runs)

    def run(now: datetime) -> None:
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                barrier.wait()
                compute_windows(conn, now, cadence_s=300.0, tz=BOGOTA)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(at(12, 1 + i),)) for i in range(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    with psycopg.connect(database_url) as conn:
        twice = conn.execute("SELECT period, period_end FROM window_computations WHERE reason = 'due' "
                             "GROUP BY 1, 2 HAVING count(*) > 1").fetchall()
        assert twice == []
        assert conn.execute("SELECT count(DISTINCT computed_at), count(*) FROM averages WHERE period = '1h'"
                            ).fetchone() == (1, 12)


def test_a_new_leader_continues_where_the_old_one_stopped(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        _fill(conn, range(1, 9))
    with psycopg.connect(database_url, autocommit=True) as first:  # leader A computes up to 04:00, then dies
        compute_windows(first, at(4, 1), cadence_s=300.0, tz=BOGOTA)
    with psycopg.connect(database_url, autocommit=True) as second:  # leader B takes over at 08:01
        run = compute_windows(second, at(8, 1), cadence_s=300.0, tz=BOGOTA)
        assert run.due_hours == tuple(at(h) for h in range(5, 9))
        rows = second.execute("SELECT period_end, computed_at FROM averages WHERE period = '1h' ORDER BY 1").fetchall()
        assert rows == [(at(h), at(4, 1) if h <= 4 else at(8, 1)) for h in range(1, 9)]
        assert second.execute("SELECT count(*) FROM window_computations WHERE reason = 'due' GROUP BY period, "
                              "period_end HAVING count(*) > 1").fetchall() == []
