"""A daemon with two intake processes (`ingest.processes: 2`), run as `python -m aqnet run` against a real
Mosquitto and TimescaleDB (aqnet.daemon.processes, aqnet.daemon.workers).

A: under a steady publish load both processes take messages (shared subscription), the intake process is
   SIGKILLed and started again by process 0 with the same client id, and at the end `measurements` equals the
   publisher's ledger exactly — nothing lost, nothing doubled; `/metrics` shows each process's samples under its
   `process` label and `/status` both processes; SIGTERM stops both cleanly (exit 0, no process left).
B: site conditions cross processes: a temperature observed by one process corrects the PM2.5 of the same sensor
   taken by the other (`conditions_source` is `own` for every row, never the site default).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from aqnet.localstack import MosquittoBroker
from tests.e2e.test_mqtt_durability import (
    SENSORS,
    DaemonRunner,
    LedgerPublisher,
    _assert_database_equals_ledger,
    _wait,
    _wait_for_ledger,
)

pytestmark = pytest.mark.integration


class TwoProcessDaemon(DaemonRunner):
    client_prefix = "aqnet-processes"
    stop_timeout_s = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config = yaml.safe_load(self.config_path.read_text())
        config["ingest"]["processes"] = 2
        self.config_path.write_text(yaml.safe_dump(config))

    def samples(self, name: str) -> dict[str, float]:
        """process label → value of the samples called `name` (summed over their other labels)."""
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name:
                    out[s.labels["process"]] = out.get(s.labels["process"], 0.0) + s.value
        return out

    def status(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/status", timeout=5) as r:
                doc: dict[str, Any] = json.load(r)
                return doc
        except OSError:
            return {}

    def worker_pid(self) -> int | None:
        worker = self.status().get("processes", {}).get("intake-1")
        return worker.get("pid") if isinstance(worker, dict) else None

    def wait_both_connected(self, timeout_s: float = 90) -> None:
        _wait(lambda: self.samples("aqnet_mqtt_connected") == {"main": 1.0, "intake-1": 1.0}, timeout_s,
              "both processes to connect to MQTT", self.alive, every_s=0.5)


@pytest.fixture
def two_process_factory(tmp_path: Path, database_url: str) -> Iterator[Callable[..., TwoProcessDaemon]]:
    made: list[TwoProcessDaemon] = []

    def make(broker: MosquittoBroker, **kwargs: float) -> TwoProcessDaemon:
        made.append(TwoProcessDaemon(tmp_path, database_url, broker, **kwargs))
        return made[-1]

    yield make
    for runner in made:
        if runner.proc is not None and runner.proc.poll() is None:
            pid = runner.worker_pid()
            runner.proc.kill()
            runner.proc.wait()
            if pid:
                _kill_quietly(pid)


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie of an exited child still answers kill 0: look at its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_two_processes_share_the_load_survive_a_killed_worker_and_stop_cleanly(
        mosquitto_factory: Callable[..., MosquittoBroker],
        two_process_factory: Callable[..., TwoProcessDaemon], database_url: str) -> None:
    broker = mosquitto_factory()
    runner = two_process_factory(broker, batch_max_age_s=0.5)
    publisher = LedgerPublisher(broker.port, rate_per_s=150)
    try:
        runner.start()
        runner.wait_both_connected()
        first_pid = runner.worker_pid()
        assert first_pid, runner.status()
        publisher.start()
        _wait(lambda: min(runner.samples("aqnet_ingest_readings_total").values(), default=0) > 0, 60,
              "both processes to store readings", runner.alive, every_s=0.5)
        os.kill(first_pid, 9)  # no flush, no DISCONNECT: its unacknowledged messages stay in its session
        _wait(lambda: runner.worker_pid() not in (None, first_pid), 90, "process 0 to start the intake process "
              "again", runner.alive, every_s=0.5)
        runner.wait_both_connected()
        time.sleep(2)
        publisher.stop()
        ledger = publisher.ledger()
        assert len(ledger) == 2 * publisher.published, "the broker acknowledged every message"
        _wait_for_ledger(database_url, ledger, runner, timeout_s=90)
        _assert_database_equals_ledger(database_url, ledger)
        restarts = runner.samples("aqnet_task_restarts_total")
        assert restarts.get("main", 0) >= 1, restarts  # process 0 counted the intake process's restart
        status = runner.status()
        assert set(status["processes"]) == {"main", "intake-1"}, status
        second_pid = runner.worker_pid()
        assert second_pid is not None
        runner.terminate()  # asserts exit status 0
        _wait(lambda: _gone(second_pid), 30, "the intake process to exit with process 0")
    finally:
        publisher.close()
    log = runner.log_tail()
    assert "[intake-1]" in log, "the intake process's log lines name it"
    assert "intake process 1 stopped (status 0)" in log, "the intake process stopped cleanly, after its flush"
    assert "Traceback" not in log


def test_site_conditions_observed_by_one_process_correct_readings_taken_by_the_other(
        mosquitto_factory: Callable[..., MosquittoBroker],
        two_process_factory: Callable[..., TwoProcessDaemon], database_url: str) -> None:
    broker = mosquitto_factory()
    runner = two_process_factory(broker, batch_max_age_s=0.3)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="conditions-publisher", protocol=paho.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    now = datetime.now(UTC).replace(microsecond=0)

    def publish(sensor: str, t: datetime, values: dict[str, float]) -> None:
        payload = json.dumps({"time": t.isoformat(), "values": values}).encode()
        client.publish(f"aqnet/{sensor}/readings", payload, qos=1).wait_for_publish(10)

    try:
        runner.start()
        runner.wait_both_connected()
        # one temperature per sensor: the broker hands these messages to one process or the other
        for sensor in SENSORS:
            publish(sensor, now - timedelta(minutes=10), {"temperature": 9.0, "pressure": 752.0})
        time.sleep(3)  # several exchange rounds
        # PM2.5 alone, several per sensor; the broker deals the messages out in turn, so one more message of
        # another sensor after each round shifts which process gets which sensor's PM2.5 next round
        for minute in range(1, 5):
            for sensor in SENSORS:
                publish(sensor, now - timedelta(minutes=10 - minute), {"pm25": 20.0})
            publish("MS11", now - timedelta(minutes=10 - minute), {"pm10": 30.0})
        expected = len(SENSORS) * 4

        def pm25_rows() -> list[tuple[str, str | None, float | None]]:
            with psycopg.connect(database_url) as conn:
                return conn.execute("SELECT sensor_id, conditions_source, conditions_temp_c FROM measurements "
                                    "WHERE variable = 'pm25' AND sensor_id = ANY(%s)", (SENSORS,)).fetchall()

        _wait(lambda: len(pm25_rows()) >= expected, 60, f"{expected} PM2.5 rows", runner.alive, every_s=0.5)
        rows = pm25_rows()
        wrong = [r for r in rows if r[1] != "own" or r[2] != 9.0]
        assert not wrong, f"{len(wrong)} of {len(rows)} PM2.5 rows not corrected with their sensor's own T: {wrong[:5]}"
        per_process = runner.samples("aqnet_ingest_readings_total")
        assert min(per_process.get("main", 0), per_process.get("intake-1", 0)) > 0, per_process
        runner.terminate()
    finally:
        client.disconnect()
        client.loop_stop()
