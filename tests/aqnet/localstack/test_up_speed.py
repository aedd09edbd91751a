"""`aqnet up --speed X --duration D`: the simulators and the daemon share one simulated clock; simulated time ends at
now, nothing is stored in the future, the simulated hours get complete hourly averages, and the run writes to its
own database (aqnet_sim), never to the real-time one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from aqnet.localstack import TimescaleCluster
from aqnet.localstack.up import SIM_DATABASE, averages_every_s, sim_clock_origin
from sensors.network import bundled_network

SPEED = 120.0
DURATION_S = 75.0  # 2.5 simulated hours: always one whole hour well inside


def test_duration_run_ends_at_now() -> None:
    wall = 1_800_000_000.0
    origin = sim_clock_origin(wall_origin=wall, speed=120, duration_s=60, span_s=86400)
    end = origin + timedelta(seconds=60 * 120)
    assert end == datetime.fromtimestamp(wall + 60, UTC)  # simulated time reaches the wall clock as the run ends


def test_open_run_starts_the_scenario_span_before_now() -> None:
    wall = 1_800_000_000.0
    origin = sim_clock_origin(wall_origin=wall, speed=120, duration_s=None, span_s=86400)
    assert origin == datetime.fromtimestamp(wall, UTC) - timedelta(days=1)


def test_averages_every_15_simulated_minutes_within_bounds() -> None:
    assert averages_every_s(1) == 60
    assert averages_every_s(120) == 7.5
    assert averages_every_s(10_000) == 2


def _cleanup(var: Path) -> None:
    for link in var.iterdir() if var.exists() else ():
        if link.is_symlink():
            shutil.rmtree(link.resolve(), ignore_errors=True)


@pytest.mark.integration
def test_accelerated_run_has_complete_hours_and_nothing_in_the_future(tmp_path: Path) -> None:
    var = tmp_path / "var"
    proc = subprocess.Popen([sys.executable, "-m", "aqnet", "up", "--var", str(var), "--speed", str(SPEED),
                             "--duration", str(DURATION_S)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    state = None
    try:
        deadline = time.monotonic() + 120
        while state is None and time.monotonic() < deadline and proc.poll() is None:
            if (var / "state.json").exists():
                state = json.loads((var / "state.json").read_text())
            time.sleep(0.2)
        out, _ = proc.communicate(timeout=DURATION_S + 90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        assert proc.returncode == 0, out
        assert state is not None, out
        assert state["speed"] == SPEED and state["database_url"].endswith(f"/{SIM_DATABASE}")
        sim_origin = datetime.fromisoformat(state["sim_origin"])
        sim_end = sim_origin + timedelta(seconds=DURATION_S * SPEED)
        ended_at = datetime.now(UTC)
        assert sim_end <= ended_at  # it ended at (or just before) now

        port = json.loads((var / "ports.json").read_text())["postgres"]
        cluster = TimescaleCluster(var / "pgdata", port)
        cluster.start()
        try:
            with psycopg.connect(cluster.url_for(SIM_DATABASE), autocommit=True) as conn:
                newest = conn.execute("SELECT max(time), max(received_at), count(*) FROM measurements").fetchone()
                assert newest[2] > 1000
                assert newest[0] <= ended_at and newest[1] <= ended_at  # nothing stored in the future
                assert newest[0] >= sim_end - timedelta(minutes=10)  # and the data reached the end
                lag = conn.execute("SELECT max(received_at - time) FROM measurements "
                                   "WHERE time > %s AND sensor_id = 'KEN'", (sim_origin,)).fetchone()[0]
                assert lag < timedelta(minutes=5)  # received_at is simulated time too
                av = conn.execute("SELECT max(period_end), max(computed_at) FROM averages").fetchone()
                assert av[0] <= ended_at and av[1] <= ended_at
                # every simulated hour that ended well before the end (the job runs every 15 simulated minutes)
                first = (sim_origin + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
                hours = []
                end = first + timedelta(hours=1)
                while end <= sim_end - timedelta(minutes=20):
                    hours.append(end)
                    end += timedelta(hours=1)
                assert hours, (sim_origin, sim_end)
                rows = conn.execute("SELECT sensor_id, variable, period_end, valid, coverage FROM averages "
                                    "WHERE period = '1h' AND period_end = ANY(%s)", (hours,)).fetchall()
                got = {(s, v, e): (ok, cov) for s, v, e, ok, cov in rows}
                expected = {(s.id, v, e) for s in bundled_network() for v in s.variables for e in hours}
                missing = sorted(expected - set(got))
                assert not missing, f"no hourly average for {missing[:10]} (of {len(missing)})"
                invalid = sorted((k, got[k]) for k in expected if not got[k][0])
                assert not invalid, f"incomplete hours: {invalid[:10]}"
            with psycopg.connect(cluster.url, autocommit=True) as conn:  # the real-time database is untouched
                real = conn.execute("SELECT to_regclass('measurements') IS NOT NULL").fetchone()[0]
                if real:
                    assert conn.execute("SELECT count(*) FROM measurements").fetchone()[0] == 0
        finally:
            cluster.stop()
    finally:
        _cleanup(var)
