"""Bad input during a run: a garbage payload, an unknown sensor's payload and an unreachable station are each
counted by reason in /metrics and logged with the sensor and the reason, while every other sensor keeps storing."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
import yaml
from paho.mqtt import publish
from prometheus_client.parser import text_string_to_metric_families

from aqnet.localstack import MosquittoBroker, free_port
from sensors.network import bundled_network
from tests.fixtures.listeners import alert_keys_in, http_listeners

STATIONS = [s.id for s in bundled_network() if s.kind == "station"]
DEAD_STATION = "USQ"


def _metric(url: str, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT sensor_id, count(*) FROM measurements GROUP BY sensor_id").fetchall())


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def running(tmp_path: Path, database_url: str, mosquitto: MosquittoBroker):
    ports = {code: free_port() for code in STATIONS}
    http_port = free_port()
    base = {"database": {"url": database_url},
            "mqtt": {"url": mosquitto.url, "client_id": f"aqnet-{tmp_path.name}"},
            "modbus": {"poll_interval_s": 1.0, "timeout_s": 0.5},
            "ingest": {"batch_max_age_s": 0.2},
            "http": http_listeners(http_port), "storage": {"spool_dir": str(tmp_path / "spool")},
            "alerts": alert_keys_in(tmp_path)}
    sim_cfg = {**base, "network": {"stations": {c: {"host": "127.0.0.1", "port": p} for c, p in ports.items()}}}
    dead = dict(ports, **{DEAD_STATION: free_port()})  # nothing listens there
    run_cfg = {**base, "network": {"stations": {c: {"host": "127.0.0.1", "port": p} for c, p in dead.items()}}}
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump(sim_cfg))
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run_cfg))
    log_path = tmp_path / "daemon.log"
    procs = []
    with log_path.open("wb") as log:
        procs.append(subprocess.Popen([sys.executable, "-m", "aqnet", "simulate", "--config",
                                       str(tmp_path / "sim.yaml"), "--publish-interval", "1"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([sys.executable, "-m", "aqnet", "run", "--config", str(tmp_path / "run.yaml")],
                                      stdout=log, stderr=log))
    try:
        yield {"metrics": f"http://127.0.0.1:{http_port}/metrics", "log": log_path, "db": database_url,
               "mqtt": mosquitto}
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                assert p.wait(timeout=30) == 0
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise


def test_bad_payloads_are_counted_logged_and_do_not_stop_other_sensors(running: dict) -> None:
    others = {s.id for s in bundled_network()} - {DEAD_STATION}
    _wait(lambda: set(_counts(running["db"])) >= others, 60, "every other sensor to store readings")
    metrics = running["metrics"]
    before_garbage = _metric(metrics, "aqnet_ingest_rejected_total", protocol="mqtt", reason="not_json")
    before_unknown = _metric(metrics, "aqnet_ingest_rejected_total", protocol="mqtt", reason="unknown_sensor")
    counts_before = _counts(running["db"])

    broker: MosquittoBroker = running["mqtt"]
    port = int(broker.url.rsplit(":", 1)[1])
    publish.single("aqnet/MS03/readings", b"\x00{garbage", qos=1, hostname="127.0.0.1", port=port)
    publish.single("aqnet/XX99/readings", b'{"time": "2026-11-23T08:00:00-05:00", "values": {"pm25": 10}}',
                   qos=1, hostname="127.0.0.1", port=port)

    _wait(lambda: _metric(metrics, "aqnet_ingest_rejected_total", protocol="mqtt", reason="unknown_sensor")
          > before_unknown, 20, "the unknown-sensor rejection to be counted")
    time.sleep(3)  # later messages must not count again
    assert _metric(metrics, "aqnet_ingest_rejected_total", protocol="mqtt", reason="not_json") == before_garbage + 1
    assert _metric(metrics, "aqnet_ingest_rejected_total", protocol="mqtt",
                   reason="unknown_sensor") == before_unknown + 1

    log = running["log"].read_text()
    assert any("MS03" in line and "not_json" in line for line in log.splitlines()), log[-3000:]
    assert any("XX99" in line and "unknown_sensor" in line for line in log.splitlines()), log[-3000:]
    assert any(DEAD_STATION in line and "127.0.0.1" in line for line in log.splitlines()
               if "ERROR" in line), log[-3000:]
    assert _metric(metrics, "aqnet_sensors_read_failures_total", sensor_id=DEAD_STATION) > 0

    counts_after = _counts(running["db"])
    grew = {s for s in others if counts_after.get(s, 0) > counts_before.get(s, 0)}
    assert grew == others, f"stopped growing: {sorted(others - grew)}"
    assert DEAD_STATION not in counts_after
    with psycopg.connect(running["db"]) as conn:
        reasons = {r[0] for r in conn.execute("SELECT reason FROM dead_letters WHERE source = 'mqtt'")}
        modbus = conn.execute("SELECT sensor_id, reason, endpoint FROM dead_letters WHERE source = 'modbus'"
                              ).fetchall()
    assert {"not_json", "unknown_sensor"} <= reasons
    # the unreachable station: one dead letter per device for the outage, not one per poll (other stations may
    # have one from the start, polled before the simulators listened)
    dead_devices = [d for s in bundled_network() if s.id == DEAD_STATION for d in s.devices]
    dead_letters = [r for r in modbus if r[0] == DEAD_STATION]
    assert len(dead_letters) == len(dead_devices)
    assert all(r[1] == "connection" and "127.0.0.1:" in r[2] for r in dead_letters)
