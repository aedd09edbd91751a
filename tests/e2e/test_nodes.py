"""Three aqnet nodes (`nodes.enabled`) against one Mosquitto, one TimescaleDB and simulated Modbus stations, each
node a `python -m aqnet run` (aqnet.daemon.nodes, storage.nodes).

A: under a steady publish load of receive-time messages (no device time: a message stored twice would be two rows,
   so the ledger catches doubles the measurement key cannot), one node is SIGKILLed; once its leases lapse the
   others take its partitions (the broker hands them what it queued in those sessions) and its link groups (every
   station is polled again); one node holds the scheduler's lock at every sampled moment; the killed node comes
   back and the partitions rebalance; at the end `measurements` equals the publisher's ledger exactly. Then the
   leader is killed: another node takes the scheduler's lock, and no sample ever sees two holders.
B: a node cut from the database (a TCP proxy the test controls) stops consuming before its leases lapse; when the
   database answers again it takes its partitions back, and the messages published meanwhile are stored once
   (nodes keep no spool: the broker's sessions held them).
C: a node whose login may not read its partitions' topics exits at start naming topic and user, as one daemon does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from alerts.leader import JOBS_LOCK_KEY
from aqnet.localstack import MosquittoBroker, free_port
from aqnet.preflight import EXIT_REFUSED
from sensors.mqtt.broker.credentials import issue_credentials
from sensors.network import bundled_network
from simulators.station import StationServer
from tests.e2e.test_mqtt_durability import SENSORS, STATIONS, DaemonRunner, PacedPublisher, _wait
from tests.fixtures.listeners import alert_keys_in, http_listeners

pytestmark = pytest.mark.integration

PARTITIONS = 6
#: short leases for the test (production defaults: 15 s and 3 s)
LEASE_TTL_S, LEASE_RENEW_S = 4.0, 1.0
#: stations served by simulators, each on a port of its own (one link group each)
SERVED = [s for s in bundled_network() if s.kind == "station"
          and all(d.protocol == "modbus-tcp" for d in s.devices)][:3]


class NodeRunner(DaemonRunner):
    """One node: its own directory, HTTP port and node id; the shared client id and station endpoints."""

    client_prefix = "aqnet-nodes"
    stop_timeout_s = 60.0

    def __init__(self, tmp_path: Path, database_url: str, broker: MosquittoBroker, *, node_id: str,
                 client_id: str, stations: dict[str, dict[str, Any]]) -> None:
        home = tmp_path / node_id
        home.mkdir(exist_ok=True)
        super().__init__(home, database_url, broker, batch_max_age_s=0.3)
        self.node_id = node_id
        config = yaml.safe_load(self.config_path.read_text())
        config["mqtt"]["client_id"] = client_id
        config["network"]["stations"] = stations
        config["modbus"] = {"poll_interval_s": 2.0, "timeout_s": 0.5}
        config["nodes"] = {"enabled": True, "node_id": node_id, "partitions": PARTITIONS,
                           "lease_ttl_s": LEASE_TTL_S, "lease_renew_s": LEASE_RENEW_S}
        config["scheduler"] = {"averages_every_s": 3600}
        self.config_path.write_text(yaml.safe_dump(config))

    def metrics_labelled(self, name: str, **labels: str) -> float | None:
        """The value of the sample `name` whose labels include `labels` (None while the node does not answer)."""
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=2).read().decode()
        except OSError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        return None


class ReceiveTimePublisher(PacedPublisher):
    """Publishes aqnet JSON without a time (aqnet stamps its receive time) at a steady rate; each message's value
    is unique, and the ledger keeps (sensor, value) of every message the broker acknowledged."""

    def __init__(self, port: int, *, rate_per_s: float) -> None:
        super().__init__(port, client_id="nodes-ledger", rate_per_s=rate_per_s)
        self._sent: list[tuple[tuple[str, float], paho.MQTTMessageInfo]] = []

    def publish_one(self) -> None:
        n = len(self._sent)
        sensor = SENSORS[n % len(SENSORS)]
        value = round(1 + n / 1000, 3)
        info = self._client.publish(f"aqnet/{sensor}/readings", json.dumps({"values": {"pm25": value}}), qos=1)
        self._sent.append(((sensor, value), info))

    def ledger(self) -> Counter[tuple[str, float]]:
        for _, info in self._sent:
            info.wait_for_publish(30)
        return Counter(key for key, info in self._sent if info.is_published())


class Stations:
    """Simulated stations on an event loop in a thread of their own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: dict[str, StationServer] = {}
        for sensor in SERVED:
            server = StationServer(sensor, lambda sid, var, t: 10.0, lambda: datetime.now(UTC), port=free_port())
            asyncio.run_coroutine_threadsafe(server.start(), self.loop).result(30)
            self.servers[sensor.id] = server

    def endpoints(self, dead_port: int) -> dict[str, dict[str, Any]]:
        """Every bundled station: the served ones at their simulators, the others at one port nobody listens on."""
        return {code: {"host": "127.0.0.1", "port": self.servers[code].port if code in self.servers else dead_port}
                for code in STATIONS}

    def polled(self) -> dict[str, int]:
        return {code: sum(s.requests.values()) for code, s in self.servers.items()}

    def clear(self) -> None:
        for s in self.servers.values():
            s.clear_requests()

    def close(self) -> None:
        for s in self.servers.values():
            asyncio.run_coroutine_threadsafe(s.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def leases(url: str) -> list[tuple[str, str, str | None, int]]:
    """(kind, key, live holder or None, epoch) of every lease."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT kind, key, CASE WHEN expires_at > clock_timestamp() THEN owner END, epoch "
                            "FROM node_leases ORDER BY kind, key").fetchall()


def holders(url: str, kind: str) -> dict[str, str | None]:
    return {key: owner for k, key, owner, _ in leases(url) if k == kind}


def leaders(url: str) -> list[str]:
    """The sessions holding the scheduler's lock (their application_name names the node)."""
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s AND l.objid::bigint = %s",
            (JOBS_LOCK_KEY >> 32, JOBS_LOCK_KEY & 0xFFFFFFFF)).fetchall()]


def stored(url: str) -> Counter[tuple[str, float]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT sensor_id, raw_value FROM measurements WHERE sensor_id = ANY(%s) "
                            "AND variable = 'pm25'", (SENSORS,)).fetchall()
    return Counter((s, round(v, 3)) for s, v in rows)


class LeaderSampler:
    """Samples the scheduler's lock holders every 0.2 s in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[list[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(psycopg.Error):
                self.samples.append(leaders(self.url))

    def stop(self) -> list[list[str]]:
        self._stop.set()
        self._thread.join()
        return self.samples


@pytest.fixture
def node_factory(tmp_path: Path, database_url: str) -> Iterator[Callable[..., NodeRunner]]:
    made: list[NodeRunner] = []

    def make(broker: MosquittoBroker, node_id: str, stations: dict[str, dict[str, Any]],
             url: str | None = None) -> NodeRunner:
        made.append(NodeRunner(tmp_path, url or database_url, broker, node_id=node_id,
                               client_id=f"aqnet-nodes-{tmp_path.name}"[:50], stations=stations))
        return made[-1]

    yield make
    for runner in made:
        if runner.proc is not None and runner.proc.poll() is None:
            runner.proc.kill()
            runner.proc.wait()


@pytest.fixture
def stations() -> Iterator[Stations]:
    s = Stations()
    yield s
    s.close()


def _all_held_by(url: str, nodes: set[str]) -> bool:
    held = holders(url, "partition")
    groups = holders(url, "station")
    return (len(held) == PARTITIONS and set(held.values()) <= nodes and None not in held.values()
            and bool(groups) and set(groups.values()) <= nodes and None not in groups.values())


def test_a_killed_node_is_taken_over_and_a_rejoining_node_rebalances_without_loss(
        mosquitto_factory: Callable[..., MosquittoBroker], node_factory: Callable[..., NodeRunner],
        stations: Stations, database_url: str) -> None:
    broker = mosquitto_factory()
    endpoints = stations.endpoints(free_port())
    nodes = [node_factory(broker, f"node-{i}", endpoints) for i in range(3)]
    publisher = ReceiveTimePublisher(broker.port, rate_per_s=100)
    sampler: LeaderSampler | None = None
    report: dict[str, Any] = {"lease_ttl_s": LEASE_TTL_S, "lease_renew_s": LEASE_RENEW_S, "partitions": PARTITIONS}
    try:
        for n in nodes:
            n.start()

        def check() -> None:
            for n in nodes:
                n.alive()

        names = {n.node_id for n in nodes}
        _wait(lambda: _all_held_by(database_url, names) and len(set(holders(database_url, "partition").values()))
              == 3, 120, "three nodes to share every partition and link group", check, every_s=0.5)
        _wait(lambda: len(leaders(database_url)) == 1, 60, "a scheduler leader", check, every_s=0.5)
        sampler = LeaderSampler(database_url)
        publisher.start()
        _wait(lambda: sum(stored(database_url).values()) > 200, 60, "readings stored", check, every_s=0.5)
        leader = leaders(database_url)[0]
        held = holders(database_url, "partition")
        victim = next(n for n in nodes if n.node_id not in leader and n.node_id in held.values())
        survivors = [n for n in nodes if n is not victim]
        lost = sorted(k for k, owner in held.items() if owner == victim.node_id)
        killed_at = time.monotonic()
        victim.kill()  # no flush, no DISCONNECT: what it took and did not store stays in its sessions
        nodes = survivors

        def taken_over() -> bool:
            now = holders(database_url, "partition")
            return all(now.get(k) not in (None, victim.node_id) for k in lost) and _all_held_by(
                database_url, {n.node_id for n in survivors})

        _wait(taken_over, 90, f"the survivors to take {lost} over", check, every_s=0.1)
        report["takeover_s"] = round(time.monotonic() - killed_at, 2)
        stations.clear()
        _wait(lambda: all(v > 0 for v in stations.polled().values()), 60, "every station polled again", check,
              every_s=0.5)
        time.sleep(3)
        rejoined = node_factory(broker, victim.node_id, endpoints)  # the same node id, started again
        rejoined.start()
        nodes = [*survivors, rejoined]
        _wait(lambda: len(set(holders(database_url, "partition").values()) - {None}) == 3
              and _all_held_by(database_url, {n.node_id for n in nodes}), 90,
              "the rejoined node to take its share", check, every_s=0.5)
        time.sleep(3)
        publisher.stop()
        ledger = publisher.ledger()
        assert sum(ledger.values()) == len(publisher._sent), "the broker acknowledged every message"
        _wait(lambda: sum(stored(database_url).values()) >= sum(ledger.values()), 120,
              "every acknowledged message stored", check, every_s=0.5)
        time.sleep(2)  # a double would land by now
        got = stored(database_url)
        lost_msgs = ledger - got
        doubled = got - ledger
        assert not lost_msgs, f"{sum(lost_msgs.values())} messages lost, e.g. {list(lost_msgs)[:3]}"
        assert not doubled, f"{sum(doubled.values())} messages stored twice or unknown, e.g. {list(doubled)[:3]}"
        samples = sampler.stop()
        sampler = None
        assert samples and all(len(s) == 1 for s in samples), [s for s in samples if len(s) != 1][:5]
        epochs = {key: epoch for kind, key, _, epoch in leases(database_url) if kind == "partition"}
        assert all(epochs[k] >= 2 for k in lost), epochs  # taken again: the fencing token moved on
        report["messages"] = sum(ledger.values())
        shown = json.loads(subprocess.run([sys.executable, "-m", "aqnet", "nodes", "--json", "--url", database_url],
                                          check=True, capture_output=True, text=True).stdout)
        live = {n["node"]: n for n in shown["nodes"] if n["live"]}
        assert set(live) == {n.node_id for n in nodes}, shown["nodes"]
        assert sum(len(n["partitions"]) for n in live.values()) == PARTITIONS
        assert [n["node"] for n in live.values() if n["leader"]] == [shown["leader"]], shown
        table = subprocess.run([sys.executable, "-m", "aqnet", "nodes", "--url", database_url], check=True,
                               capture_output=True, text=True).stdout
        assert all(n.node_id in table for n in nodes), table
        # and when the leader itself dies, another node takes the scheduler's lock; never two at once
        sampler = LeaderSampler(database_url)
        leader_node = next(n for n in nodes if n.node_id == shown["leader"])
        killed_at = time.monotonic()
        leader_node.kill()
        nodes = [n for n in nodes if n is not leader_node]
        _wait(lambda: [x.removeprefix("aqnet-leader ") for x in leaders(database_url)]
              in ([n.node_id] for n in nodes), 60, "another node to lead the scheduler", check, every_s=0.2)
        report["leader_failover_s"] = round(time.monotonic() - killed_at, 2)
        samples = sampler.stop()
        sampler = None
        assert all(len(s) <= 1 for s in samples), [s for s in samples if len(s) > 1][:5]
        print(f"\nNODES TAKEOVER {json.dumps(report)}")
        for n in nodes:
            n.terminate()
    finally:
        if sampler is not None:
            sampler.stop()
        publisher.close()
    for n in nodes:
        assert "Traceback" not in n.log_tail(), n.log_tail()


class CuttableProxy:
    """A TCP proxy to PostgreSQL that the test can cut: every connection closed, new ones refused."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        with contextlib.suppress(OSError):
            b.shutdown(socket.SHUT_WR)

    def cut_now(self) -> None:
        """Drop every connection silently from the node's side (no FIN reaches PostgreSQL first) and refuse more."""
        self.cut.set()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
            self._socks.clear()

    def restore(self) -> None:
        """Accept connections again."""
        self.cut.clear()

    def close(self) -> None:
        self.cut_now()
        self.listener.close()


def test_a_node_cut_from_the_database_stops_consuming_before_its_leases_lapse(
        mosquitto_factory: Callable[..., MosquittoBroker], node_factory: Callable[..., NodeRunner],
        stations: Stations, database_url: str) -> None:
    broker = mosquitto_factory()
    port = psycopg.conninfo.conninfo_to_dict(database_url)["port"]
    proxy = CuttableProxy(int(str(port)))
    url = database_url.replace(f":{port}/", f":{proxy.port}/")
    assert url != database_url
    node = node_factory(broker, "cut-node", stations.endpoints(free_port()), url=url)
    publisher = ReceiveTimePublisher(broker.port, rate_per_s=50)
    try:
        node.start()
        _wait(lambda: _all_held_by(database_url, {"cut-node"}), 120, "the node to take every lease", node.alive,
              every_s=0.5)

        def held_partitions() -> float | None:
            return node.metrics_labelled("aqnet_node_leases_held", kind="partition")

        _wait(lambda: held_partitions() == PARTITIONS, 30, "the node's metrics to show its partitions", node.alive)
        publisher.start()
        _wait(lambda: sum(stored(database_url).values()) > 50, 60, "readings stored", node.alive, every_s=0.5)
        proxy.cut_now()
        _wait(lambda: held_partitions() == 0, 60, "the node to stop consuming", node.alive, every_s=0.1)
        stopped_at = datetime.now(UTC)
        with psycopg.connect(database_url) as conn:
            lapse = conn.execute("SELECT min(expires_at) FROM node_leases WHERE owner = 'cut-node'").fetchone()
        assert lapse is not None and lapse[0] is not None
        # the order of two events, not a duration: it had stopped (at the latest when we saw it) before the first
        # of its leases lapsed by the database's clock
        assert stopped_at < lapse[0], (stopped_at, lapse[0])
        assert "stops consuming" in node.log_tail()
        time.sleep(LEASE_TTL_S)  # messages keep coming, queued in the partitions' sessions
        proxy.restore()  # the database answers again: the node takes its partitions back and drains them
        _wait(lambda: held_partitions() == PARTITIONS, 60, "the node to take its partitions back", node.alive,
              every_s=0.5)
        publisher.stop()
        ledger = publisher.ledger()
        _wait(lambda: sum(stored(database_url).values()) >= sum(ledger.values()), 120,
              "every acknowledged message stored", node.alive, every_s=0.5)
        time.sleep(2)
        got = stored(database_url)
        assert not ledger - got, f"{sum((ledger - got).values())} messages lost over the cut"
        assert not got - ledger, f"{sum((got - ledger).values())} messages stored twice over the cut"
        epochs = [epoch for kind, _, _, epoch in leases(database_url) if kind == "partition"]
        assert min(epochs) >= 2, epochs  # taken again after they lapsed, not renewed
        node.terminate()
    finally:
        publisher.close()
        proxy.close()
    assert "Traceback" not in node.log_tail(), node.log_tail()


def test_a_node_whose_partition_subscription_is_refused_exits_naming_topic_and_user(
        tmp_path: Path, database_url: str, mosquitto_factory: Callable[..., MosquittoBroker]) -> None:
    broker = mosquitto_factory(secure=True)
    issued = issue_credentials(broker.files, "MS01")  # a sensor's login: it may read nothing
    broker.reload()
    time.sleep(0.5)
    config = {
        "database": {"url": database_url},
        "mqtt": {"url": f"mqtt://MS01:{issued.password}@127.0.0.1:{broker.port}",
                 "client_id": f"aqnet-refusal-{tmp_path.name}"[:50]},
        "network": {"stations": {code: {"host": "127.0.0.1", "port": free_port()} for code in STATIONS}},
        "storage": {"spool_dir": str(tmp_path / "spool")},
        "http": http_listeners(),
        "alerts": alert_keys_in(tmp_path),
        "nodes": {"enabled": True, "node_id": "refused", "partitions": 2, "lease_ttl_s": LEASE_TTL_S,
                  "lease_renew_s": LEASE_RENEW_S},
    }
    path = tmp_path / "aqnet.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([sys.executable, "-m", "aqnet", "run", "--config", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the node kept running with a refused login:\n{out[-3000:]}")
    assert proc.returncode == EXIT_REFUSED, out[-3000:]
    assert "refused the subscription to 'aqnet/MS" in out and "for user MS01" in out, out[-3000:]
