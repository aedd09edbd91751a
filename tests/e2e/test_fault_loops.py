"""Fault loops against the daemon (`python -m aqnet run`) under MQTT load, with a publisher-side ledger of
broker-acknowledged readings as the oracle: at the end the database equals the ledger — nothing lost, nothing
doubled. Seeds are printed (pytest shows them when a test fails); `AQNET_FAULT_SEED` replays one.

A: 10 SIGKILLs at random moments (new ones each run: a new seed), with device-timestamped AND receive-time readings
   (aqnet JSON without `time`, as airrohr always sends) — a receive-time message committed but not acknowledged is
   redelivered with a new receive time and must still be stored once.
B: kills aimed right after commits (the row count just grew: the PUBACKs of that batch may not have left); the
   proxy makes each one a committed, unacknowledged batch, so a few prove what many would.
C: malformed and unknown-sensor messages published during a database outage longer than the pool's timeout; every
   good message published later arrives once the database is back, and each bad message is one dead letter.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import psycopg
import pytest
import yaml

from aqnet.localstack import MosquittoBroker, TimescaleCluster
from tests.e2e.test_db_outage import _count
from tests.e2e.test_mqtt_durability import BOGOTA, SENSORS, DaemonRunner, LedgerPublisher, _wait

pytestmark = pytest.mark.integration

TIMED = SENSORS[:5]  #: publish with a device time
RECEIVED = SENSORS[5:]  #: publish without one: stamped with aqnet's receive time

Timed = tuple[str, str, datetime]  # (sensor, variable, device time) → value
Untimed = tuple[str, str, float]  # (sensor, variable, value): each receive-time message carries unique values


def _seed(name: str) -> int:
    seed = int(os.environ.get("AQNET_FAULT_SEED", random.randrange(1 << 30)))
    print(f"{name}: seed {seed} (AQNET_FAULT_SEED={seed} replays it)", flush=True)
    return seed


class MixedLedgerPublisher(LedgerPublisher):
    """LedgerPublisher whose every other message has no device time, with values unique across the run (they
    identify the message, whatever receive time aqnet gave it). The ledger holds the readings of every message the
    broker acknowledged (PUBACK): device-time ones by (sensor, variable, time), the others by their values."""

    def __init__(self, port: int, *, rate_per_s: float, seed: int) -> None:
        super().__init__(port, rate_per_s=rate_per_s, seed=seed)
        self._lock = threading.Lock()  # the steady thread and publish_raw from the test
        self._mixed: list[tuple[paho.MQTTMessageInfo, dict[Timed, float], set[Untimed]]] = []

    def publish_one(self) -> None:
        with self._lock:
            n = self._n
            self._n += 1
            if n % 2 == 0:
                sensor = TIMED[(n // 2) % len(TIMED)]
                t = self._start + timedelta(seconds=n // (2 * len(TIMED)))
                values = {"pm25": round(self._rng.uniform(3, 80), 1), "pm10": round(self._rng.uniform(10, 150), 1)}
                doc = {"time": t.astimezone(BOGOTA).isoformat(), "values": values}
                timed, untimed = {(sensor, v, t): x for v, x in values.items()}, set()
            else:
                sensor = RECEIVED[(n // 2) % len(RECEIVED)]
                values = {"pm25": round(n / 1000, 3), "pm10": round(n / 1000 + 0.5, 3)}
                doc = {"values": values}
                timed, untimed = {}, {(sensor, v, x) for v, x in values.items()}
            info = self._client.publish(f"aqnet/{sensor}/readings", json.dumps(doc).encode(), qos=1)
            self._mixed.append((info, timed, untimed))

    def publish_raw(self, topic: str, payload: bytes) -> paho.MQTTMessageInfo:
        with self._lock:
            return self._client.publish(topic, payload, qos=1)

    def mixed_ledger(self, timeout_s: float = 30) -> tuple[dict[Timed, float], set[Untimed]]:
        deadline = time.monotonic() + timeout_s
        timed: dict[Timed, float] = {}
        untimed: set[Untimed] = set()
        for info, t, u in self._mixed:
            if not info.is_published():
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if info.is_published():
                timed.update(t)
                untimed |= u
        return timed, untimed


def _rows(url: str) -> list[tuple[str, str, datetime, float, int]]:
    with psycopg.connect(url, connect_timeout=3) as conn:
        return conn.execute("SELECT sensor_id, variable, time, raw_value, flags FROM measurements "
                            "WHERE sensor_id = ANY(%s)", (SENSORS,)).fetchall()


def _assert_database_equals_ledger(url: str, timed: dict[Timed, float], untimed: set[Untimed], seed: int) -> None:
    rows = _rows(url)
    by_time = Counter((s, v, t) for s, v, t, _x, _f in rows if s in TIMED)
    doubled = {k: n for k, n in by_time.items() if n > 1}
    assert not doubled, f"seed {seed}: device-time readings stored twice: {list(doubled)[:3]}"
    stored_timed = {(s, v, t): x for s, v, t, x, _f in rows if s in TIMED}
    assert stored_timed.keys() == timed.keys(), (
        f"seed {seed}: device-time readings lost {len(timed.keys() - stored_timed.keys())}, "
        f"unvouched {len(stored_timed.keys() - timed.keys())}")
    assert stored_timed == timed, f"seed {seed}: device-time values differ"
    by_value = Counter((s, v, x) for s, v, _t, x, _f in rows if s in RECEIVED)
    doubled_u = {k: n for k, n in by_value.items() if n > 1}
    assert not doubled_u, (f"seed {seed}: {len(doubled_u)} receive-time readings stored more than once, e.g. "
                           f"{list(doubled_u)[:3]}")
    lost = untimed - by_value.keys()
    extra = by_value.keys() - untimed
    assert not lost, f"seed {seed}: {len(lost)} acknowledged receive-time readings lost, e.g. {sorted(lost)[:3]}"
    assert not extra, f"seed {seed}: {len(extra)} receive-time readings no PUBACK vouches for"
    assert all(f & 512 for s, _v, _t, _x, f in rows if s in RECEIVED), "receive-time readings carry RECEIVE_TIME"


def _wait_for_ledger(url: str, expected: int, runner: DaemonRunner, timeout_s: float) -> None:
    _wait(lambda: _count(url) >= expected, timeout_s, f"{expected} readings in the database (have {_count(url)})",
          runner.alive)
    time.sleep(2)  # anything beyond the ledger (a duplicate, a stray) would have landed by now


@pytest.fixture
def runner_factory(tmp_path: Path) -> Iterator[Callable[..., DaemonRunner]]:
    made: list[DaemonRunner] = []

    def make(database_url: str, broker: MosquittoBroker, **kwargs: object) -> DaemonRunner:
        made.append(DaemonRunner(tmp_path, database_url, broker, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for runner in made:
        if runner.proc is not None and runner.proc.poll() is None:
            runner.proc.kill()
            runner.proc.wait()


def _kill_loop(runner: DaemonRunner, kills: int, moment: Callable[[], None]) -> None:
    for _ in range(kills):
        runner.wait_connected()
        moment()
        runner.kill()
        runner.start()


def _finish(publisher: MixedLedgerPublisher, runner: DaemonRunner, url: str, seed: int) -> None:
    runner.wait_connected()
    time.sleep(2)
    publisher.stop()
    timed, untimed = publisher.mixed_ledger()
    assert len(timed) + len(untimed) == 2 * publisher.published, "the broker acknowledged every message"
    _wait_for_ledger(url, len(timed) + len(untimed), runner, timeout_s=90)
    _assert_database_equals_ledger(url, timed, untimed, seed)
    runner.terminate()
    print(f"seed {seed}: {publisher.published} messages acknowledged by the broker, {len(timed)} device-time and "
          f"{len(untimed)} receive-time readings, stored once each; {runner.redelivered_seen:.0f} redelivered (DUP) "
          "to the restarted daemons", flush=True)


def test_10_sigkills_at_random_moments_lose_and_double_nothing_with_and_without_device_times(
        mosquitto_factory: Callable[..., MosquittoBroker], runner_factory: Callable[..., DaemonRunner],
        database_url: str) -> None:
    seed = _seed("random kills")
    rng = random.Random(seed)
    broker = mosquitto_factory()
    runner = runner_factory(database_url, broker, batch_max_age_s=0.8)
    publisher = MixedLedgerPublisher(broker.port, rate_per_s=150, seed=seed)
    try:
        runner.start()
        runner.wait_connected()
        publisher.start()
        _kill_loop(runner, 10, lambda: time.sleep(rng.uniform(0.0, 2.0)))
        _finish(publisher, runner, database_url, seed)
    finally:
        publisher.close()
    assert runner.redelivered_seen > 0, "no message was redelivered: the kills caught nothing in flight"


class AckSwallowingProxy:
    """A TCP relay between the daemon and the broker that can swallow what the daemon sends (its PUBACKs) while
    passing on what the broker sends: freeze it, let the daemon commit a batch, kill the daemon, and that batch is
    committed but never acknowledged — the moment between a commit and its PUBACKs, made certain."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.frozen = threading.Event()
        self._conns: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_daemon: bool) -> None:
        swallowing = False
        try:
            while data := src.recv(65536):
                swallowing = swallowing or (from_daemon and self.frozen.is_set())
                if not swallowing:  # once swallowing, this connection's stream is cut for good
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self._closed = True
        self._server.close()
        for sock in self._conns:
            with contextlib.suppress(OSError):
                sock.close()


def test_kills_right_after_commits_lose_and_double_nothing(
        mosquitto_factory: Callable[..., MosquittoBroker], runner_factory: Callable[..., DaemonRunner],
        database_url: str) -> None:
    seed = _seed("kills after commits")
    rng = random.Random(seed)
    broker = mosquitto_factory()
    proxy = AckSwallowingProxy(broker.port)
    runner = runner_factory(database_url, broker, batch_max_age_s=0.5)
    config = yaml.safe_load(runner.config_path.read_text())
    config["mqtt"]["url"] = f"mqtt://127.0.0.1:{proxy.port}"
    runner.config_path.write_text(yaml.safe_dump(config))
    publisher = MixedLedgerPublisher(broker.port, rate_per_s=150, seed=seed)

    def after_a_commit() -> None:
        time.sleep(rng.uniform(0.0, 1.0))
        proxy.frozen.set()  # from now on the daemon's PUBACKs go nowhere
        before = _count(database_url)
        _wait(lambda: _count(database_url) > before, 60, "a commit", runner.alive)

    try:
        runner.start()
        runner.wait_connected()
        publisher.start()
        for _ in range(6):
            _kill_loop(runner, 1, after_a_commit)  # killed with a committed, unacknowledged batch
            proxy.frozen.clear()  # the restarted daemon's connection relays both ways again
        _finish(publisher, runner, database_url, seed)
    finally:
        publisher.close()
        proxy.close()
    assert runner.redelivered_seen > 0, "no message was redelivered: the kills caught no commit unacknowledged"


POOL_TIMEOUT_S = 3.0  #: database.pool_timeout_s of the outage test: the outage lasts several times longer


def test_bad_messages_during_an_outage_longer_than_the_pool_timeout_never_stall_intake(
        mosquitto_factory: Callable[..., MosquittoBroker], runner_factory: Callable[..., DaemonRunner],
        cluster: TimescaleCluster, tmp_path: Path) -> None:
    seed = _seed("bad messages in an outage")
    broker = mosquitto_factory()
    runner = runner_factory(cluster.url, broker, batch_max_age_s=0.5, batch_max=200,
                            storage={"unreachable_after_s": 2.0, "replay_retry_s": 0.5})
    config = runner.config_path.read_text().replace("database:\n", f"database:\n  pool_timeout_s: {POOL_TIMEOUT_S}\n")
    runner.config_path.write_text(config)
    publisher = MixedLedgerPublisher(broker.port, rate_per_s=100, seed=seed)
    bad = [("aqnet/MS01/readings", b"\xff not json"), ("aqnet/MS02/readings", b'{"values": {"pm25": "many"}}'),
           ("aqnet/NOSUCH/readings", b'{"values": {"pm25": 3}}'), ("airrohr/MS03/data", b"[]")]
    try:
        runner.start()
        runner.wait_connected()
        publisher.start()
        _wait(lambda: _count(cluster.url) > 0, 60, "the first commit", runner.alive)
        cluster.stop()
        for topic, payload in bad * 3:
            publisher.publish_raw(topic, payload).wait_for_publish(10)
        time.sleep(4 * POOL_TIMEOUT_S)  # the outage outlasts the pool's timeout several times
        runner.alive()
        cluster.start()
        mark = publisher.published
        time.sleep(5)  # good messages after the database is back: every one must arrive
        assert publisher.published > mark
        _finish(publisher, runner, cluster.url, seed)
    finally:
        publisher.close()
    with psycopg.connect(cluster.url) as conn:
        letters = conn.execute("SELECT topic, payload FROM dead_letters WHERE source = 'mqtt'").fetchall()
    assert Counter((t, bytes(p)) for t, p in letters) == Counter(bad * 3), "each bad message is one dead letter"
