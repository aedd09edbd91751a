"""Durability of the MQTT intake, with a publisher-side ledger of broker-acknowledged readings as the oracle.

A: under a steady publish load the daemon (`python -m aqnet run`) is SIGKILLed three times, at different moments
   (between receipt and commit, during the catch-up after a restart, right after it connects) and restarted with
   the same client id; at the end `measurements` equals the ledger exactly, with no duplicate row, and the broker
   redelivered (DUP) at least one message to the restarted daemon.
B: aqnet is stopped, N messages are published (queued in its persistent session), the broker is restarted
   (SIGTERM: Mosquitto writes its persistence file), aqnet is started: all N arrive.
C: a flood, published much faster than aqnet stores it: every message is stored without waiting for a reconnect
   (the client, not the broker's in-flight accounting, holds the rest back: sensors.mqtt.subscriber).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
import psycopg
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from aqnet.localstack import MosquittoBroker, free_port
from sensors.network import bundled_network
from tests.fixtures.listeners import alert_keys_in, http_listeners

SENSORS = [f"MS{i:02d}" for i in range(1, 11)]
STATIONS = [s.id for s in bundled_network() if s.kind == "station"]
BOGOTA = ZoneInfo("America/Bogota")

Key = tuple[str, str, datetime]  # (sensor, variable, time)


class PacedPublisher:
    """A paho MQTT 5 client publishing `publish_one()` (a subclass's) at a steady rate on a thread of its own,
    up to 1,000 messages in flight."""

    def __init__(self, port: int, *, client_id: str, rate_per_s: float) -> None:
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        self._client.max_inflight_messages_set(1000)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        self._rate = rate_per_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish_one(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        def run() -> None:
            next_at = time.monotonic()
            while not self._stop.is_set():
                self.publish_one()
                next_at += 1 / self._rate
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self.stop()
        self._client.disconnect()
        self._client.loop_stop()


class LedgerPublisher(PacedPublisher):
    """Publishes aqnet JSON for SENSORS at a steady rate (QoS 1, MQTT 5) and keeps the ledger: the readings of
    every message the broker acknowledged (PUBACK), each with a time unique per sensor."""

    def __init__(self, port: int, *, rate_per_s: float, seed: int = 5) -> None:
        super().__init__(port, client_id=f"ledger-{port}", rate_per_s=rate_per_s)
        self._rng = random.Random(seed)
        # device times two hours back, one second apart per sensor: distinct, and never "from the future"
        self._start = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
        self._n = 0
        self._pending: list[tuple[paho.MQTTMessageInfo, dict[Key, float]]] = []

    def publish_one(self) -> None:
        sensor = SENSORS[self._n % len(SENSORS)]
        t = self._start + timedelta(seconds=self._n // len(SENSORS))
        self._n += 1
        values = {"pm25": round(self._rng.uniform(3, 80), 1), "pm10": round(self._rng.uniform(10, 150), 1)}
        payload = json.dumps({"time": t.astimezone(BOGOTA).isoformat(), "values": values}).encode()
        info = self._client.publish(f"aqnet/{sensor}/readings", payload, qos=1)
        self._pending.append((info, {(sensor, v, t): x for v, x in values.items()}))

    def publish(self, count: int) -> None:
        for _ in range(count):
            self.publish_one()

    @property
    def published(self) -> int:
        return self._n

    def ledger(self, timeout_s: float = 30) -> dict[Key, float]:
        """Readings of the messages the broker acknowledged (waits for outstanding PUBACKs)."""
        deadline = time.monotonic() + timeout_s
        ledger: dict[Key, float] = {}
        for info, readings in self._pending:
            if not info.is_published():
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if info.is_published():
                ledger.update(readings)
        return ledger


class DaemonRunner:
    """`python -m aqnet run` as a subprocess, restartable with the same config (and so the same MQTT client id)."""

    client_prefix = "aqnet-durability"
    stop_timeout_s = 30.0

    def __init__(self, tmp_path: Path, database_url: str, broker: MosquittoBroker, *, batch_max_age_s: float,
                 batch_max: int = 5000, storage: dict[str, object] | None = None) -> None:
        self.broker = broker
        self.http_port = free_port()
        self.client_id = f"{self.client_prefix}-{tmp_path.name}"[:60]
        self.spool_dir = tmp_path / "spool"
        config = {
            "database": {"url": database_url},
            "mqtt": {"url": broker.url, "client_id": self.client_id},
            # every station points at a port where nothing listens: only the microsensors deliver
            "network": {"stations": {code: {"host": "127.0.0.1", "port": free_port()} for code in STATIONS}},
            "modbus": {"poll_interval_s": 60.0, "timeout_s": 0.5},
            # a batch waits up to batch_max_age_s between receipt and commit: the window the kills aim at
            "ingest": {"batch_max_age_s": batch_max_age_s, "batch_max": batch_max},
            "storage": {"spool_dir": str(self.spool_dir), **(storage or {})},
            "alerts": alert_keys_in(tmp_path),
            "http": http_listeners(self.http_port),
            "scheduler": {"averages_every_s": 3600},
        }
        self.config_path = tmp_path / "aqnet.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp_path / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.redelivered_seen = 0.0  #: aqnet_mqtt_redelivered_total summed over the daemons' lifetimes
        self.redelivered_metric_exists = False

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with self.log_path.open("ab") as log:
            log.write(f"----- start at {datetime.now(UTC).isoformat()}\n".encode())
            log.flush()
            self.proc = subprocess.Popen([sys.executable, "-m", "aqnet", "run", "--config", str(self.config_path)],
                                         stdout=log, stderr=log)

    def metrics(self) -> dict[str, float]:
        """The daemon's unlabelled samples on /metrics (empty while it does not answer)."""
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=2).read().decode()
        except OSError:
            return {}
        return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
                if not s.labels}

    def metric(self, name: str) -> float | None:
        return self.metrics().get(name)

    def wait_connected(self, timeout_s: float = 60) -> None:
        _wait(lambda: self.metric("aqnet_mqtt_connected") == 1.0, timeout_s, "the daemon to connect to MQTT",
              self.alive)

    def alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log_tail()}")

    def _note_redelivered(self) -> None:
        value = self.metric("aqnet_mqtt_redelivered_total")
        if value is not None:
            self.redelivered_metric_exists = True
            self.redelivered_seen += value

    def kill(self) -> None:
        """SIGKILL: no flush, no DISCONNECT; what was received but not committed is not acknowledged."""
        assert self.proc is not None
        self._note_redelivered()
        self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM: flush, then exit 0."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self._note_redelivered()
            self.proc.terminate()
            try:
                assert self.proc.wait(timeout=self.stop_timeout_s) == 0, self.log_tail()
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str, check: Callable[[], None] | None = None,
          every_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check:
            check()
        if predicate():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _stored(database_url: str) -> list[tuple[str, str, datetime, float]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT sensor_id, variable, time, raw_value FROM measurements "
                            "WHERE sensor_id = ANY(%s)", (SENSORS,)).fetchall()


def _count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM measurements WHERE sensor_id = ANY(%s)", (SENSORS,)).fetchone()
    return int(row[0]) if row else 0


def _assert_database_equals_ledger(database_url: str, ledger: dict[Key, float]) -> None:
    rows = _stored(database_url)
    stored = {(s, v, t): x for s, v, t, x in rows}
    assert len(rows) == len(stored), "duplicate rows for one (sensor, variable, time)"
    missing = ledger.keys() - stored.keys()
    extra = stored.keys() - ledger.keys()
    assert not missing, f"{len(missing)} acknowledged readings lost, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} readings stored that no PUBACK vouches for, e.g. {sorted(extra)[:3]}"
    wrong = {k: (ledger[k], stored[k]) for k in ledger if stored[k] != ledger[k]}
    assert not wrong, f"values differ (ledger, stored): {dict(list(wrong.items())[:3])}"


def _wait_for_ledger(database_url: str, ledger: dict[Key, float], runner: DaemonRunner, timeout_s: float) -> None:
    _wait(lambda: _count(database_url) >= len(ledger), timeout_s,
          f"{len(ledger)} readings in the database (have {_count(database_url)})", runner.alive)
    time.sleep(2)  # anything beyond the ledger (a duplicate, a stray) would have landed by now


def _wait_for_commit(database_url: str, runner: DaemonRunner, timeout_s: float = 60) -> None:
    """Return right after the daemon committed a batch (the row count grew)."""
    before = _count(database_url)
    _wait(lambda: _count(database_url) > before, timeout_s, "a commit", runner.alive)


@pytest.fixture
def runner_factory(tmp_path: Path, database_url: str) -> Iterator[Callable[..., DaemonRunner]]:
    made: list[DaemonRunner] = []

    def make(broker: MosquittoBroker, **kwargs: float) -> DaemonRunner:
        made.append(DaemonRunner(tmp_path, database_url, broker, **kwargs))
        return made[-1]

    yield make
    for runner in made:
        if runner.proc is not None and runner.proc.poll() is None:
            runner.proc.kill()
            runner.proc.wait()


def test_sigkill_between_receipt_and_commit_loses_nothing_and_duplicates_nothing(
        mosquitto_factory: Callable[..., MosquittoBroker], runner_factory: Callable[..., DaemonRunner],
        database_url: str) -> None:
    broker = mosquitto_factory(log_debug=True)  # the log shows every PUBLISH sent, with its DUP flag
    runner = runner_factory(broker, batch_max_age_s=1.5)
    publisher = LedgerPublisher(broker.port, rate_per_s=100)
    rng = random.Random(11)
    try:
        runner.start()
        runner.wait_connected()
        publisher.start()

        # 1: mid-stream, some way into a batch's 1.5 s between receipt and commit
        _wait_for_commit(database_url, runner)
        time.sleep(rng.uniform(0.4, 1.0))
        runner.kill()
        time.sleep(2)  # messages pile up in the session meanwhile
        runner.start()
        # 2: during the catch-up: the redelivered and queued backlog is being committed
        runner.wait_connected()
        _wait_for_commit(database_url, runner)
        time.sleep(rng.uniform(0.1, 0.5))
        runner.kill()
        runner.start()
        # 3: right after it connects, before its first commit
        runner.wait_connected()
        time.sleep(0.3)
        runner.kill()
        runner.start()
        runner.wait_connected()
        time.sleep(3)
        publisher.stop()
        ledger = publisher.ledger()
        assert len(ledger) == 2 * publisher.published, "the broker acknowledged every message"
        _wait_for_ledger(database_url, ledger, runner, timeout_s=60)
        _assert_database_equals_ledger(database_url, ledger)
        runner.terminate()
    finally:
        publisher.close()
    log = broker.log_path.read_text(errors="replace")
    redelivered = len(re.findall(rf"Sending PUBLISH to {re.escape(runner.client_id)} \(d1,", log))
    assert redelivered > 0, "the broker redelivered nothing: no kill caught a message between receipt and commit"
    if runner.redelivered_metric_exists:
        assert runner.redelivered_seen > 0, "the daemons counted no message with DUP set"


def test_messages_queued_across_a_broker_restart_all_arrive(
        mosquitto_factory: Callable[..., MosquittoBroker], runner_factory: Callable[..., DaemonRunner],
        database_url: str) -> None:
    broker = mosquitto_factory()  # persistence on; saved to disk on SIGTERM
    runner = runner_factory(broker, batch_max_age_s=0.5)
    publisher = LedgerPublisher(broker.port, rate_per_s=100)
    try:
        runner.start()
        runner.wait_connected()  # the persistent session and its subscription exist from here on
        runner.terminate()
        publisher.publish(500)  # queued for aqnet's session while it is away
        ledger = publisher.ledger()
        assert len(ledger) == 2 * 500, "the broker acknowledged every message"
        publisher.close()
        broker.stop()  # SIGTERM: Mosquitto writes mosquitto.db
        broker.start()
        runner.start()
        _wait_for_ledger(database_url, ledger, runner, timeout_s=60)
        _assert_database_equals_ledger(database_url, ledger)
        runner.terminate()
    finally:
        publisher.close()


def test_a_flood_is_stored_whole_without_a_reconnect(
        mosquitto_factory: Callable[..., MosquittoBroker], runner_factory: Callable[..., DaemonRunner],
        database_url: str) -> None:
    broker = mosquitto_factory()
    runner = runner_factory(broker, batch_max_age_s=0.5, batch_max=200)
    publisher = LedgerPublisher(broker.port, rate_per_s=1)
    try:
        runner.start()
        runner.wait_connected()
        publisher.publish(20_000)  # as fast as paho sends them
        ledger = publisher.ledger(timeout_s=120)
        assert len(ledger) == 2 * 20_000, "the broker acknowledged every message"
        _wait_for_ledger(database_url, ledger, runner, timeout_s=180)
        _assert_database_equals_ledger(database_url, ledger)
        assert runner.metric("aqnet_mqtt_connection_attempts") == 1.0, "no reconnect was needed"
        runner.terminate()
    finally:
        publisher.close()
    assert "messages already wait" not in runner.log_tail()
