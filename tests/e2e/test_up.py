"""`aqnet up` end to end: a fresh var directory, every one of the 44 sensors stored within 60 s, `aqnet status
--json` and `aqnet db url` while it runs, a clean stop on SIGINT or --duration with exit 0 and no process left."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from sensors.network import bundled_network

pytestmark = pytest.mark.integration

ALL_SENSORS = {s.id for s in bundled_network()}


def _aqnet(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aqnet", *args], capture_output=True, text=True, timeout=timeout)


def _wait_state(var: Path, proc: subprocess.Popen, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"aqnet up exited early with {proc.returncode}: {proc.stdout.read()}"
        if (var / "state.json").exists():
            return json.loads((var / "state.json").read_text())
        time.sleep(0.5)
    raise AssertionError("aqnet up wrote no state.json")


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,pgid=,sess="], capture_output=True, text=True).stdout
    rows = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    found, frontier = set(), {pid}
    while frontier:
        kids = {r[0] for r in rows if r[1] in frontier} - found
        found |= kids
        frontier = kids
    return sorted(found)


def _cleanup(var: Path) -> None:
    for link in var.iterdir() if var.exists() else ():
        if link.is_symlink():
            shutil.rmtree(link.resolve(), ignore_errors=True)


@pytest.fixture
def var_dir(tmp_path: Path):
    var = tmp_path / "var"
    yield var
    _cleanup(var)


def test_up_stores_every_sensor_within_60s_and_stops_cleanly_on_sigint(var_dir: Path) -> None:
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "aqnet", "up", "--var", str(var_dir), "--duration", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        state = _wait_state(var_dir, proc)
        seen: set[str] = set()
        with psycopg.connect(state["database_url"], autocommit=True) as conn:
            while time.monotonic() - started < 60 and seen != ALL_SENSORS:
                with contextlib.suppress(psycopg.errors.UndefinedTable):  # the daemon migrates at start
                    seen = {r[0] for r in conn.execute("SELECT DISTINCT sensor_id FROM measurements")}
                time.sleep(1)
            assert seen == ALL_SENSORS, f"missing after 60 s: {sorted(ALL_SENSORS - seen)}"
            per_variable = dict(conn.execute(
                "SELECT variable, count(*) FROM measurements GROUP BY variable").fetchall())
            units = dict(conn.execute("SELECT DISTINCT ON (variable) variable, unit FROM measurements").fetchall())
        # gases arrive in ppb/ppm and are stored in µg/m³ (VARIABLES.md)
        assert units["no2"] == units["co"] == units["pm25"] == "µg/m³"
        assert per_variable["o3"] > 0 and per_variable["pressure"] > 0

        status = _aqnet("status", "--json", "--var", str(var_dir))
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        assert doc["database_url"] == state["database_url"]
        assert doc["mqtt_url"].startswith("mqtt://127.0.0.1:")
        assert doc["metrics_url"].endswith("/metrics")
        assert set(doc["last_seen"]) == ALL_SENSORS
        db_url = _aqnet("db", "url", "--var", str(var_dir))
        assert db_url.stdout.strip() == state["database_url"]
        # the open-data listener answers without a login, with the whole catalogue
        public = json.loads((var_dir / "ports.json").read_text())["http-public"]
        catalogue = httpx.get(f"http://127.0.0.1:{public}/v1/locations", params={"limit": 1000}, timeout=30)
        assert {loc["id"] for loc in catalogue.json()["results"]} == ALL_SENSORS

        children = _descendants(proc.pid)
        assert len(children) >= 4  # postgres, mosquitto, simulators, daemon
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "database" in out and "metrics" in out and f"open data http://127.0.0.1:{public}/v1/about" in out
    left = [pid for pid in children if os.path.exists(f"/proc/{pid}")
            and "Z" not in Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[:1]]
    assert not left, f"processes left behind: {left}"
    assert not (var_dir / "state.json").exists()


def test_up_duration_stops_by_itself_and_reuses_ports(var_dir: Path) -> None:
    first = _aqnet("up", "--var", str(var_dir), "--duration", "8", "--no-simulators", timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    ports = json.loads((var_dir / "ports.json").read_text())
    second = _aqnet("up", "--var", str(var_dir), "--duration", "8", "--no-simulators", timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert json.loads((var_dir / "ports.json").read_text()) == ports
    assert f"127.0.0.1:{ports['postgres']}" in second.stdout
