"""`aqnet sensors credentials ID` against a real Mosquitto in secure mode and a real registry (TimescaleDB).

What Mosquitto does with the files is observed from outside, over MQTT 5: a publish it refuses is answered
with PUBACK reason code 0x87 "Not authorized" and never reaches a subscriber; a refused login gets CONNACK 0x87
(or 0x86, bad user name or password).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from aqnet.localstack import MosquittoBroker
from sensors.mqtt.broker.acl import DAEMON_USER, SIMULATOR_USER
from sensors.mqtt.broker.credentials import BrokerFiles, parse_password_file
from sensors.mqtt.client import parse_mqtt_url
from sensors.network import bundled_network
from simulators.payloads import aqnet_json_payload
from storage.registry import add_sensor, audit_log, set_lifecycle, spec_from_sensor

NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87
ACCEPTED = {0, 16}  # 0x00 success, 0x10 no matching subscribers (accepted, nobody listening)
REFUSED_LOGIN = {134, 135}  # 0x86 bad user name or password, 0x87 not authorized


class Client:
    """A paho MQTT 5 client recording CONNACK, PUBACK reason codes, messages and disconnects."""

    def __init__(self, broker: MosquittoBroker, username: str | None, password: str | None, name: str) -> None:
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=paho.MQTTv5,
                             reconnect_on_failure=False)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.connack: int | None = None
        self.connected = threading.Event()
        self.answered = threading.Event()
        self.disconnected = threading.Event()
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()
        self.c.on_publish = self._on_publish
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", broker.port)
        self.c.loop_start()
        assert self.answered.wait(10), "no CONNACK"

    def _on_connect(self, c: paho.Client, u: object, f: object, rc: paho.ReasonCode, p: object) -> None:
        self.connack = rc.value
        if not rc.is_failure:
            self.connected.set()
        self.answered.set()

    def _on_publish(self, c: paho.Client, u: object, mid: int, rc: paho.ReasonCode, p: object) -> None:
        with self._cond:
            self.pubacks[mid] = rc.value
            self._cond.notify_all()

    def _on_message(self, c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.c.publish(topic, payload, qos=1)
        with self._cond:
            assert self._cond.wait_for(lambda: info.mid in self.pubacks, 10), f"no PUBACK for {topic}"
            return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.c.on_subscribe = lambda c, u, mid, rcs, p: done.set()
        self.c.subscribe(topic, qos=1)
        assert done.wait(10)

    def wait_for(self, predicate: Callable[[list[tuple[str, bytes]]], bool], timeout_s: float = 10) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.messages), timeout_s)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(broker: MosquittoBroker, username: str | None, password: str | None, name: str) -> Client:
        made.append(Client(broker, username, password, name))
        return made[-1]

    yield make
    for c in made:
        c.close()


def aqnet(*args: str) -> tuple[int, str, str]:
    import subprocess

    res = subprocess.run([sys.executable, "-m", "aqnet", *args], capture_output=True, text=True, timeout=120,
                         check=False)
    return res.returncode, res.stdout, res.stderr


async def register(url: str, *sensor_ids: str) -> None:
    by_id = {s.id: s for s in bundled_network()}
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for sid in sensor_ids:
            await add_sensor(conn, spec_from_sensor(by_id[sid]), actor="technician")


def issue(url: str, broker: MosquittoBroker, sensor_id: str, *extra: str) -> dict:
    code, out, err = aqnet("sensors", "credentials", sensor_id, "--url", url, "--broker-dir", str(broker.conf_dir),
                           "--json", "--actor", "ana", *extra)
    assert code == 0, err
    return json.loads(out)


def secret(url: str) -> str | None:
    return parse_mqtt_url(url).password


def payload(value: float) -> bytes:
    return aqnet_json_payload(datetime.now(UTC), {"pm25": value}, ZoneInfo("America/Bogota"))


async def test_a_sensor_publishes_to_its_own_topic_and_is_refused_on_another(
        database_url: str, mosquitto_factory: Callable[..., MosquittoBroker], clients: Callable[..., Client]) -> None:
    await register(database_url, "MS01", "MS02")
    broker = mosquitto_factory(secure=True)
    issued = issue(database_url, broker, "MS01")
    assert issued["username"] == "MS01" and issued["topics"] == ["aqnet/MS01/readings"]
    assert issued["reloaded_pid"] == broker.pid and issued["warning"] is None
    daemon = clients(broker, DAEMON_USER, secret(broker.url_for(DAEMON_USER)), "daemon")
    assert daemon.connack == 0
    daemon.subscribe("aqnet/+/readings")
    ms01 = clients(broker, "MS01", issued["password"], "ms01")
    assert ms01.connack == 0
    assert ms01.publish("aqnet/MS01/readings", payload(1)) == 0
    assert ms01.publish("aqnet/MS02/readings", payload(2)) == NOT_AUTHORIZED  # another sensor's topic
    assert ms01.publish("aqnet/MS01/readings", payload(3)) == 0
    assert daemon.wait_for(lambda m: len(m) >= 2)
    time.sleep(0.3)
    assert [t for t, _ in daemon.messages] == ["aqnet/MS01/readings", "aqnet/MS01/readings"]
    assert [json.loads(p)["values"]["pm25"] for _, p in daemon.messages] == [1, 3]
    # a sensor may not read others' readings either: its subscription is granted nothing
    ms01.subscribe("aqnet/#")
    assert ms01.publish("aqnet/MS01/readings", payload(4)) == 0
    assert daemon.wait_for(lambda m: len(m) >= 3)
    assert not ms01.wait_for(bool, timeout_s=0.5)
    # no anonymous clients, no wrong passwords, no credentials for MS02 yet
    assert clients(broker, None, None, "anon").connack in REFUSED_LOGIN
    assert clients(broker, "MS01", "guess", "guess").connack in REFUSED_LOGIN
    assert clients(broker, "MS02", issued["password"], "ms02-borrowed").connack in REFUSED_LOGIN
    # only the hash is kept; the audit log says who issued what, without the password
    text = BrokerFiles.in_dir(broker.conf_dir).password_file.read_text()
    assert issued["password"] not in text and set(parse_password_file(text)) == {DAEMON_USER, "MS01"}
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        entry = (await audit_log(conn, sensor_id="MS01"))[0]
    assert (entry.actor, entry.action) == ("ana", "credentials.issue")
    assert entry.after == {"mqtt_username": "MS01", "topics": ["aqnet/MS01/readings"]}
    assert issued["password"] not in json.dumps(entry.model_dump(mode="json"))


async def test_regenerated_credentials_apply_after_sighup_without_restart(
        database_url: str, mosquitto_factory: Callable[..., MosquittoBroker], clients: Callable[..., Client]) -> None:
    await register(database_url, "MS01", "MS02")
    broker = mosquitto_factory(secure=True)
    pid = broker.pid
    first = issue(database_url, broker, "MS01")
    old = clients(broker, "MS01", first["password"], "ms01-old")
    assert old.connack == 0
    second = issue(database_url, broker, "MS01")  # regenerated while the broker runs
    assert second["password"] != first["password"] and second["reloaded_pid"] == pid
    # the reload drops the connection made with the old password; the old password no longer logs in
    assert old.disconnected.wait(10)
    deadline = time.monotonic() + 10
    while clients(broker, "MS01", first["password"], f"ms01-retry-{time.monotonic()}").connack == 0:
        assert time.monotonic() < deadline, "the old password still works after the reload"
        await asyncio.sleep(0.2)
    assert clients(broker, "MS01", second["password"], "ms01-new").connack == 0
    # a sensor first given credentials while the broker runs can publish at once
    ms02 = issue(database_url, broker, "MS02")
    new = clients(broker, "MS02", ms02["password"], "ms02")
    assert new.connack == 0 and new.publish("aqnet/MS02/readings", payload(5)) in ACCEPTED
    assert new.publish("aqnet/MS01/readings", payload(6)) == NOT_AUTHORIZED
    # revoking takes them away the same way
    code, out, err = aqnet("sensors", "credentials", "MS02", "--url", database_url, "--broker-dir",
                           str(broker.conf_dir), "--revoke")
    assert code == 0 and "revoked" in out, err
    assert new.disconnected.wait(10)
    assert clients(broker, "MS02", ms02["password"], "ms02-again").connack in REFUSED_LOGIN
    assert broker.pid == pid and broker.running  # never restarted


async def test_credentials_and_service_users_survive_a_broker_restart(
        database_url: str, mosquitto_factory: Callable[..., MosquittoBroker], clients: Callable[..., Client]) -> None:
    await register(database_url, "MS01")
    broker = mosquitto_factory(secure=True, service_users=(DAEMON_USER, SIMULATOR_USER))
    issued = issue(database_url, broker, "MS01")
    daemon_url, sim_url = broker.url_for(DAEMON_USER), broker.url_for(SIMULATOR_USER)
    broker.stop()
    broker.start()
    assert broker.url_for(DAEMON_USER) == daemon_url and broker.url_for(SIMULATOR_USER) == sim_url
    assert clients(broker, "MS01", issued["password"], "ms01").connack == 0
    sim = clients(broker, SIMULATOR_USER, secret(sim_url), "sim")
    assert sim.connack == 0
    assert sim.publish("aqnet/MS01/readings", payload(1)) == 16  # 0x10: accepted, no subscriber
    assert sim.publish("alerts/x", payload(1)) == NOT_AUTHORIZED
    # started again without the simulators: their user is gone
    broker.stop()
    broker.service_users = (DAEMON_USER,)
    broker.start()
    assert clients(broker, SIMULATOR_USER, secret(sim_url), "sim2").connack in REFUSED_LOGIN


async def test_only_live_mqtt_microsensors_get_credentials(
        database_url: str, mosquitto_factory: Callable[..., MosquittoBroker]) -> None:
    await register(database_url, "USQ", "MS01")
    broker = mosquitto_factory(secure=True)
    args = ("--url", database_url, "--broker-dir", str(broker.conf_dir))
    code, _, err = aqnet("sensors", "credentials", "USQ", *args)
    assert code == 1 and "sensor USQ is a station: MQTT credentials are for microsensors" in err
    code, _, err = aqnet("sensors", "credentials", "NOPE", *args)
    assert code == 1 and "sensor NOPE: not in the registry" in err
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await set_lifecycle(conn, "MS01", "retired", actor="technician", reason="stolen")
    code, _, err = aqnet("sensors", "credentials", "MS01", *args)
    assert code == 1 and "retired" in err and "Traceback" not in err
    files = BrokerFiles.in_dir(broker.conf_dir)
    assert set(parse_password_file(files.password_file.read_text())) == {DAEMON_USER}


async def test_without_a_running_broker_the_files_are_written_and_the_user_told(
        database_url: str, tmp_path: Path) -> None:
    await register(database_url, "MS03")
    code, out, err = aqnet("sensors", "credentials", "MS03", "--url", database_url, "--broker-dir",
                           str(tmp_path / "mosquitto"))
    assert code == 0, err
    assert "password" in out and "publish   aqnet/MS03/readings" in out
    assert "no running broker" in err
    assert set(parse_password_file((tmp_path / "mosquitto" / "passwd").read_text())) == {"MS03"}


async def test_commissioning_check_listens_as_the_daemon_on_a_secure_broker(
        database_url: str, mosquitto_factory: Callable[..., MosquittoBroker], clients: Callable[..., Client]) -> None:
    await register(database_url, "MS01")
    broker = mosquitto_factory(secure=True)
    issued = issue(database_url, broker, "MS01")
    ms01 = clients(broker, "MS01", issued["password"], "ms01")
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            ms01.c.publish("aqnet/MS01/readings", payload(9.5), qos=1)
            stop.wait(0.3)

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        code, out, err = await asyncio.to_thread(
            aqnet, "sensors", "test", "MS01", "--url", database_url, "--mqtt-url", broker.url_for(DAEMON_USER),
            "--wait", "20", "--json")
    finally:
        stop.set()
        thread.join()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["verdict"] == "WARN"  # pm25 only: pm10, temperature and relative humidity are registered too
    (device,) = doc["devices"]
    assert device["status"] == "ok" and device["missing"] == ["pm10", "temperature", "relativehumidity"]
    assert [r["raw_value"] for r in device["readings"]] == [9.5]
    assert secret(broker.url_for(DAEMON_USER)) not in out + err  # the URL is shown without its password
    # with a wrong password the broker refuses the check's own connection: reported, not crashed
    code, out, err = aqnet("sensors", "test", "MS01", "--url", database_url, "--mqtt-url",
                           f"mqtt://{DAEMON_USER}:wrong@127.0.0.1:{broker.port}", "--wait", "2")
    assert code == 1 and "Traceback" not in err
    assert "unreachable: MQTT broker mqtt://127.0.0.1:" in out and "refused" in out
