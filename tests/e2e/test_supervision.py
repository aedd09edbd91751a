"""Issue 15, "no silent stall": no task of the daemon dies silently. Against real TimescaleDB and Mosquitto.

A. An in-process daemon whose supervised tasks are killed in turn by an injected exception (a test subclass of
   `aqnet.tasks.TaskSupervisor` makes the task's coroutine raise, and holds the restart until the test has looked):
   while a task is down `/healthz` answers 503 naming it and `aqnet_task_up{task=…}` is 0; after the restart it
   answers 200, `aqnet_task_restarts_total` counted it, and a message published afterwards is stored. The
   pipeline and the scheduler cannot be restarted: killing either stops the daemon, which raises
   `TaskFailedError` (`aqnet run` exits 1).
B. The measured stall, in spirit: rejecting a malformed message hits the pool's timeout (the dead-letter insert
   during a database outage); the exception escaped the MQTT subscriber task and intake stayed dead while
   `aqnet_mqtt_connected` said 1. Now the task is restarted and later good messages are stored.
C. A plain database outage with spooling (a subprocess daemon, its own TimescaleDB cluster stopped) keeps
   `/healthz` at 200 — spooling is progress — while `/readyz` answers 503 until the database is back.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from paho.mqtt import publish
from prometheus_client import CollectorRegistry
from psycopg_pool import PoolTimeout

import aqnet.daemon.core
from aqnet.config import settings_from_dict
from aqnet.daemon import Daemon, TaskFailedError
from aqnet.localstack import MosquittoBroker, TimescaleCluster, free_port
from aqnet.tasks import TaskSupervisor
from tests.e2e.test_db_outage import SpoolingDaemon
from tests.e2e.test_mqtt_durability import STATIONS, LedgerPublisher, _wait
from tests.fixtures.listeners import alert_keys_in, http_listeners

pytestmark = pytest.mark.integration


class InjectedFaultError(RuntimeError):
    """The exception the test makes a task's coroutine raise."""


class FaultySupervisor(TaskSupervisor):
    """The daemon's supervisor, with a fault switch per task and a gate that holds restarts until opened."""

    last: FaultySupervisor | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, sleep=self._gated_sleep, **kwargs)
        self.faults: dict[str, asyncio.Event] = {}
        self.gate = asyncio.Event()
        self.gate.set()
        FaultySupervisor.last = self

    async def _gated_sleep(self, seconds: float) -> None:
        await self.gate.wait()

    def start(self, name: str, factory: Callable[[], Awaitable[None]], **kwargs: Any) -> asyncio.Task[None]:
        fault = self.faults.setdefault(name, asyncio.Event())

        async def faulty() -> None:
            inner = asyncio.ensure_future(factory())
            trigger = asyncio.ensure_future(fault.wait())
            try:
                await asyncio.wait({inner, trigger}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                trigger.cancel()
                if not inner.done() and not fault.is_set():
                    inner.cancel()  # cancelled from outside: pass it on
            if not fault.is_set():
                return inner.result()
            fault.clear()
            inner.cancel()
            await asyncio.gather(inner, return_exceptions=True)
            raise InjectedFaultError(f"injected into task {name}")

        return super().start(name, faulty, **kwargs)


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Live:
    def __init__(self, daemon: Daemon, task: asyncio.Task[None], url: str, broker: MosquittoBroker) -> None:
        self.daemon = daemon
        self.task = task
        self.url = url
        self.port = broker.port
        self.base = f"http://127.0.0.1:{daemon.settings.http.internal.port}"
        self.n = 0
        self.start = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)

    @property
    def supervisor(self) -> FaultySupervisor:
        assert FaultySupervisor.last is not None
        return FaultySupervisor.last

    def metric(self, name: str, task: str) -> float | None:
        return self.daemon.metrics.registry.get_sample_value(name, {"task": task})

    async def http(self, path: str) -> tuple[int, dict[str, Any]]:
        return await asyncio.to_thread(_get, self.base + path)

    async def publish(self, payload: bytes | None = None, sensor: str = "MS01") -> datetime:
        """Publish one aqnet JSON message (or `payload`); returns its reading time."""
        self.n += 1
        t = self.start + timedelta(seconds=self.n)
        body = payload if payload is not None else json.dumps({"time": t.isoformat(), "values": {"pm25": 12.5}})
        await asyncio.to_thread(publish.single, f"aqnet/{sensor}/readings", body, qos=1, hostname="127.0.0.1",
                                port=self.port)
        return t

    async def stored(self, t: datetime) -> bool:
        async with await psycopg.AsyncConnection.connect(self.url) as conn:
            cur = await conn.execute("SELECT count(*) FROM measurements WHERE sensor_id = 'MS01' AND time = %s",
                                     (t,))
            row = await cur.fetchone()
        return bool(row and row[0])


async def _eventually(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 60.0,
                      daemon_task: asyncio.Task[None] | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        if daemon_task is not None and daemon_task.done():
            daemon_task.result()
            raise AssertionError(f"the daemon stopped while waiting for {what}")
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def live(tmp_path: Path, database_url: str, mosquitto: MosquittoBroker,
               monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Live]:
    monkeypatch.setattr(aqnet.daemon.core, "TaskSupervisor", FaultySupervisor)
    settings = settings_from_dict({
        "database": {"url": database_url},
        "mqtt": {"url": mosquitto.url, "client_id": f"aqnet-{tmp_path.name}"[:60]},
        # the stations point at ports where nothing listens: only the microsensors deliver
        "network": {"stations": {code: {"host": "127.0.0.1", "port": free_port()} for code in STATIONS}},
        "modbus": {"poll_interval_s": 60.0, "timeout_s": 0.5},
        "ingest": {"batch_max_age_s": 0.2},
        "http": http_listeners(),
        "storage": {"spool_dir": str(tmp_path / "spool")},
        "alerts": alert_keys_in(tmp_path),
        "scheduler": {"averages_every_s": 3600},
        "supervision": {"restart_min_s": 0.05, "restart_max_s": 0.2, "max_restarts": 5},
    })
    daemon = Daemon(settings, registry=CollectorRegistry())
    task = asyncio.create_task(daemon.run(), name="daemon")
    h = Live(daemon, task, database_url, mosquitto)
    try:
        await _eventually(lambda: asyncio.sleep(0, daemon.mqtt_status().get("state") == "connected"
                                                and len(daemon.http_servers) == len(settings.http.listeners())
                                                and all(s.started for s in daemon.http_servers.values())),
                          "the daemon running and subscribed", 60, task)
        await asyncio.sleep(0.5)  # the subscription is acknowledged just after the connection
        yield h
    finally:
        daemon.stop()
        await asyncio.wait({task}, timeout=60)
        if not task.done():
            task.cancel()


async def _message_gets_stored(h: Live, what: str) -> None:
    t = await h.publish()
    await _eventually(lambda: h.stored(t), f"a message published {what} stored", 60, h.task)


@pytest.mark.parametrize("name", ["mqtt", "spool-replay", "registry", "http-intake", "http-api"])
async def test_a_killed_task_fails_liveness_while_down_then_is_restarted_and_work_continues(
        live: Live, name: str) -> None:
    await _message_gets_stored(live, "before the fault")
    assert (await live.http("/healthz"))[0] == 200
    sv = live.supervisor
    sv.gate.clear()  # hold the restart so the down state can be seen (no timing involved)
    if name.startswith("http-"):  # cancelling uvicorn would leave its socket open: it is made to return instead
        live.daemon.http_servers[name.removeprefix("http-")].should_exit = True
    else:
        sv.faults[name].set()
    await _eventually(lambda: asyncio.sleep(0, name in sv.down()), f"task {name} down", 30, live.task)
    assert live.metric("aqnet_task_up", name) == 0
    if not name.startswith("http-"):
        code, body = await live.http("/healthz")
        assert code == 503 and body["status"] == "fail"
        assert f"injected into task {name}" in body["reasons"][f"task {name}"]
        assert (await live.http("/readyz"))[0] == 200  # the database answers: readiness is another question
    sv.gate.set()
    await _eventually(lambda: asyncio.sleep(0, live.metric("aqnet_task_up", name) == 1.0),
                      f"task {name} restarted", 30, live.task)
    assert live.metric("aqnet_task_restarts_total", name) == 1.0
    await _eventually(lambda: asyncio.sleep(0, not sv.down()), "no task down", 30, live.task)
    code, body = await _eventually(lambda: live.http("/healthz"), "/healthz answering", 30, live.task)
    assert (code, body) == (200, {"status": "ok", "reasons": {}})
    await _message_gets_stored(live, f"after the restart of {name}")
    assert not live.task.done()


@pytest.mark.parametrize("name", ["pipeline", "scheduler"])
async def test_a_task_that_cannot_be_restarted_stops_the_daemon_with_a_failure(live: Live, name: str) -> None:
    await _message_gets_stored(live, "before the fault")
    live.supervisor.faults[name].set()
    with pytest.raises(TaskFailedError, match=f"task {name} is down for good") as failed:
        await asyncio.wait_for(asyncio.shield(live.task), 60)
    assert failed.value.task == name and "not restartable" in failed.value.reason
    assert live.metric("aqnet_task_up", name) == 0
    assert live.metric("aqnet_task_restarts_total", name) == 0


async def test_a_task_dying_too_often_stops_the_daemon(live: Live) -> None:
    sv = live.supervisor
    for n in range(1, 7):  # supervision.max_restarts = 5
        sv.faults["registry"].set()
        await _eventually(lambda: asyncio.sleep(0, not sv.faults["registry"].is_set()), "the fault to land", 30)
        if n < 6:
            await _eventually(lambda n=n: asyncio.sleep(0, live.metric("aqnet_task_restarts_total", "registry") == n
                                                        and "registry" not in sv.down()),
                              f"restart {n}", 30, live.task)
    with pytest.raises(TaskFailedError, match="registry.*failed 6 times within 300 s"):
        await asyncio.wait_for(asyncio.shield(live.task), 60)


async def test_an_exception_while_handling_a_message_does_not_leave_intake_dead(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """The measured stall, in spirit: an exception escaped the subscriber task (then: the dead-letter insert of a
    rejected message timing out in the pool — rejections now travel through the pipeline and never wait on the pool,
    tests/e2e/test_fault_loops.py) and intake stopped while aqnet_mqtt_connected stayed 1. Whatever escapes now,
    the task is restarted and later messages are stored."""
    from sensors.mqtt.subscriber import Intake

    real = Intake.resolve
    failures = [PoolTimeout("couldn't get a connection after 30.00 sec"), RuntimeError("a decoder bug")]

    def resolve(self: Intake, *args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop(0)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Intake, "resolve", resolve)
    await live.publish(b"{not json")
    await live.publish(json.dumps({"time": live.start.isoformat(), "values": {"pm25": 1}}).encode(),
                       sensor="NOSUCH")
    await _eventually(lambda: asyncio.sleep(0, (live.metric("aqnet_task_restarts_total", "mqtt") or 0) >= 2),
                      "the MQTT intake restarted twice", 60, live.task)
    assert live.daemon.metrics.registry.get_sample_value("aqnet_mqtt_connected") == 1.0
    for _ in range(3):
        await _message_gets_stored(live, "after exceptions escaped the subscriber")
    assert not live.task.done()


# ------------------------------------------------------------------------------------------------ C

@pytest.fixture
def outage_daemon(tmp_path: Path, cluster: TimescaleCluster,
                  mosquitto_factory: Callable[..., MosquittoBroker]) -> Iterator[SpoolingDaemon]:
    runner = SpoolingDaemon(tmp_path, cluster.url, mosquitto_factory())
    config = yaml.safe_load(runner.config_path.read_text())
    config["supervision"] = {"intake_stall_s": 3.0, "readiness_timeout_s": 1.0}
    runner.config_path.write_text(yaml.safe_dump(config))
    yield runner
    if runner.proc is not None and runner.proc.poll() is None:
        runner.proc.kill()
        runner.proc.wait()


def test_database_outage_with_spooling_is_alive_but_not_ready(outage_daemon: SpoolingDaemon,
                                                              cluster: TimescaleCluster) -> None:
    d = outage_daemon
    base = f"http://127.0.0.1:{d.http_port}"
    publisher = LedgerPublisher(d.broker.port, rate_per_s=20)
    try:
        d.start()
        d.wait_connected()
        assert _get(f"{base}/healthz")[0] == 200 and _get(f"{base}/readyz")[0] == 200
        publisher.start()
        cluster.stop()
        _wait(lambda: (d.metric("aqnet_storage_spool_bytes") or 0) > 0, 60, "spooling", d.alive)
        _wait(lambda: _get(f"{base}/readyz")[0] == 503, 60, "/readyz to fail", d.alive)
        code, body = _get(f"{base}/readyz")
        assert code == 503 and "database" in body["reasons"]
        # spooling goes on well past supervision.intake_stall_s (3 s): liveness holds throughout
        spooled = d.metric("aqnet_storage_spool_bytes") or 0
        _wait(lambda: (d.metric("aqnet_storage_spool_bytes") or 0) > spooled, 60, "the spool to grow", d.alive)
        checks = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            code, body = _get(f"{base}/healthz")
            assert (code, body) == (200, {"status": "ok", "reasons": {}}), body
            checks += 1
            time.sleep(0.5)
        assert checks >= 5
        cluster.start()
        _wait(lambda: _get(f"{base}/readyz")[0] == 200, 120, "/readyz once the database is back", d.alive)
        _wait(lambda: d.metric("aqnet_storage_spool_bytes") == 0.0, 120, "the spool to drain", d.alive)
        assert _get(f"{base}/healthz")[0] == 200
        publisher.stop()
        d.terminate()
    finally:
        publisher.close()
