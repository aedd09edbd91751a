"""alerts.delivery.channels.mqtt against a real Mosquitto: retained state topics, one message per transition, QoS 1
acknowledged, transient failures while the broker is down and recovery, permanent refusals, no leftover thread."""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from alerts.delivery.channels.mqtt import MqttAlertChannel
from alerts.delivery.notice import Channel, DeliveryError, Notice
from aqnet.localstack import free_port
from sensors.mqtt.broker import acl

T0 = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)


def make_notice(**changes: object) -> Notice:
    """A raised PM2.5 24 h prevention alert at sensor KEN; `changes` override fields."""
    base = Notice(
        alert_id=7, event_id=1, transition="raised", state="firing", rule_id="pm25-24h-levels",
        rule_description="PM2.5 24 h prevention / alert / emergency levels", kind="threshold", audience="officers",
        severity="warning", indicative=False, scope="sensor", scope_key="KEN", sensor_id="KEN",
        sensor_name="Kennedy", locality="Kennedy", variable="pm25", level="prevention", from_level=None,
        value=41.5, unit="µg/m³", threshold=37.0, comparison=">=", source="Resolución 2254 de 2017 (unverified)",
        period="24h", period_start=T0 - timedelta(hours=24), period_end=T0, coverage=0.92,
        started_at=T0, time=T0)
    return replace(base, **changes)  # type: ignore[arg-type]


@dataclass
class Received:
    topic: str
    body: dict[str, object]
    qos: int
    retain: bool


class Subscriber:
    """A plain paho subscriber collecting messages of `topic` (test side)."""

    def __init__(self, url_host: str, port: int, topic: str) -> None:
        self.messages: queue.Queue[Received] = queue.Queue()
        self._subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{time.monotonic_ns()}")
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self._client.on_message = lambda c, u, m: self.messages.put(
            Received(m.topic, json.loads(m.payload), m.qos, bool(m.retain)))
        self._client.connect(url_host, port)
        self._client.loop_start()
        assert self._subscribed.wait(10), "test subscriber: no SUBACK"

    def take(self, n: int, timeout_s: float = 5.0) -> list[Received]:
        """Exactly the next `n` messages (fails if fewer arrive)."""
        return [self.messages.get(timeout=timeout_s) for _ in range(n)]

    def none_within(self, timeout_s: float) -> bool:
        try:
            self.messages.get(timeout=timeout_s)
        except queue.Empty:
            return True
        return False

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def subscribe(mosquitto: object) -> Iterator[object]:
    made: list[Subscriber] = []

    def make(topic: str, port: int | None = None) -> Subscriber:
        sub = Subscriber("127.0.0.1", port or mosquitto.port, topic)  # type: ignore[attr-defined]
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.stop()


def _paho_threads(channel: MqttAlertChannel) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"paho-mqtt-client-{channel.client_id}" and t.is_alive()]


def _prefix(request: pytest.FixtureRequest) -> str:
    return f"test/{request.node.name}/alerts"


# pure ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["", "aqnet/+/alerts", "aqnet/#", "/"])
def test_topic_prefix_without_wildcards_required(prefix: str) -> None:
    with pytest.raises(ValueError, match="topic_prefix"):
        MqttAlertChannel("m", "mqtt://127.0.0.1:1", topic_prefix=prefix)


def test_bad_qos_and_url_refused() -> None:
    with pytest.raises(ValueError, match="qos"):
        MqttAlertChannel("m", "mqtt://127.0.0.1:1", qos=3)
    with pytest.raises(ValueError, match="MQTT URL"):
        MqttAlertChannel("m", "http://127.0.0.1:1")
    with pytest.raises(ValueError, match="not TLS"):
        MqttAlertChannel("m", "mqtt://127.0.0.1:1", ca_file="/etc/ssl/certs/ca-certificates.crt")


def test_state_topic_per_alert() -> None:
    channel = MqttAlertChannel("m", "mqtt://u:secret@127.0.0.1:1", topic_prefix="city/alerts/")
    assert channel.topic_for(42) == "city/alerts/42"
    assert channel.type == "mqtt" and channel.name == "m" and isinstance(channel, Channel)
    assert "secret" not in repr(channel._where)


# real broker -----------------------------------------------------------------------------------------------

@pytest.mark.integration
async def test_one_retained_message_per_transition_acknowledged(mosquitto: object, subscribe: object,
                                                                request: pytest.FixtureRequest) -> None:
    prefix = _prefix(request)
    live = subscribe(f"{prefix}/#")  # type: ignore[operator]
    channel = MqttAlertChannel("mqtt-test", mosquitto.url, topic_prefix=prefix, qos=1)  # type: ignore[attr-defined]
    try:
        await channel.send(make_notice())
        await channel.send(make_notice(event_id=2, transition="escalated", level="alert", from_level="prevention",
                                       severity="critical", value=60.0, threshold=56.0))
        await channel.send(make_notice(alert_id=8, scope_key="USM", sensor_id="USM"))
        got = live.take(3)
        assert [(m.topic, m.body["transition"]) for m in got] == [
            (f"{prefix}/7", "raised"), (f"{prefix}/7", "escalated"), (f"{prefix}/8", "raised")]
        assert all(m.qos == 1 for m in got)
        # alerts.delivery.messages JSON
        assert got[0].body["schema"] == "aqnet.alert/1" and got[0].body["alert_id"] == 7
        assert got[0].body["time"] == "2026-11-22T14:00:00+00:00"
        assert live.none_within(0.5), "more than one message per transition"
        # send() returned after the PUBACK: the broker holds the latest state, a new subscriber gets it at once
        late = subscribe(f"{prefix}/#")  # type: ignore[operator]
        retained = sorted(late.take(2), key=lambda m: m.topic)
        assert [(m.topic, m.retain, m.body["transition"], m.body["level"]) for m in retained] == [
            (f"{prefix}/7", True, "escalated", "alert"), (f"{prefix}/8", True, "raised", "prevention")]
        assert late.none_within(0.3)
        assert len(_paho_threads(channel)) == 1, "one kept connection between sends"
    finally:
        await channel.close()
    assert _paho_threads(channel) == []


@pytest.mark.integration
async def test_attack_retained_state_carries_no_live_link(mosquitto: object, subscribe: object,
                                                          request: pytest.FixtureRequest) -> None:
    """Issue 16: whoever may subscribe reads the retained state, long after it was published: it carries no
    acknowledgement link, neither as `ack_url` nor in the rendered message, whatever the notice held."""
    prefix = _prefix(request)
    channel = MqttAlertChannel("mqtt-test", mosquitto.url, topic_prefix=prefix, language="en")  # type: ignore[attr-defined]
    try:
        await channel.send(make_notice(ack_url="https://aq.example/api/v1/alerts/ack/SECRET-TOKEN"))
        [state] = subscribe(f"{prefix}/#").take(1)  # type: ignore[operator]
        assert state.retain and state.body["ack_url"] is None and state.body["message"]["text"]
        assert "SECRET-TOKEN" not in json.dumps(state.body) and "/alerts/ack/" not in json.dumps(state.body)
    finally:
        await channel.close()


@pytest.mark.integration
async def test_resolved_state_expires(mosquitto: object, subscribe: object, request: pytest.FixtureRequest) -> None:
    prefix = _prefix(request)
    channel = MqttAlertChannel("m", mosquitto.url, topic_prefix=prefix, resolved_expiry_s=1)  # type: ignore[attr-defined]
    try:
        await channel.send(make_notice(alert_id=1))
        await channel.send(make_notice(alert_id=2))
        await channel.send(make_notice(alert_id=2, event_id=3, transition="resolved", state="resolved",
                                       comparison="<", threshold=30.0, value=20.0))
        await asyncio.sleep(2.2)
        late = subscribe(f"{prefix}/#")  # type: ignore[operator]
        [only] = late.take(1)
        assert only.topic == f"{prefix}/1" and only.body["transition"] == "raised"
        assert late.none_within(0.5), "a resolved alert's retained state outlived its expiry"
    finally:
        await channel.close()


@pytest.mark.integration
async def test_broker_down_is_transient_then_delivered(mosquitto_factory: object,
                                                       request: pytest.FixtureRequest) -> None:
    broker = mosquitto_factory()  # type: ignore[operator]
    prefix = _prefix(request)
    channel = MqttAlertChannel("m", broker.url, topic_prefix=prefix, timeout_s=3)
    try:
        await channel.send(make_notice())  # connected, connection kept
        broker.stop()
        started = time.monotonic()
        with pytest.raises(DeliveryError) as lost:
            await channel.send(make_notice(event_id=2, transition="acknowledged", state="acknowledged"))
        assert not lost.value.permanent and "mqtt-" not in str(lost.value)
        with pytest.raises(DeliveryError) as refused:  # still down: connecting fails fast
            await channel.send(make_notice(event_id=2, transition="acknowledged", state="acknowledged"))
        assert not refused.value.permanent and "cannot connect" in str(refused.value)
        assert time.monotonic() - started < 3 * 2
        broker.start()
        await channel.send(make_notice(event_id=2, transition="acknowledged", state="acknowledged"))
        sub = Subscriber("127.0.0.1", broker.port, f"{prefix}/#")
        try:
            [state] = sub.take(1)
            assert state.body["transition"] == "acknowledged" and state.retain
        finally:
            sub.stop()
    finally:
        await channel.close()
    assert _paho_threads(channel) == []


@pytest.mark.integration
async def test_bad_credentials_are_permanent(mosquitto_factory: object) -> None:
    broker = mosquitto_factory(secure=True)  # type: ignore[operator]
    good = broker.url_for(acl.DAEMON_USER)
    channel = MqttAlertChannel("m", good.replace("@", "x@", 1))  # wrong password
    try:
        with pytest.raises(DeliveryError) as refused:
            await channel.send(make_notice())
        assert refused.value.permanent and "refused the connection" in str(refused.value)
        password = good.split("@", 1)[0].rsplit(":", 1)[1]
        assert password not in str(refused.value)  # issue 16: no password in the error
    finally:
        await channel.close()
    ok = MqttAlertChannel("m", good)
    try:
        await ok.send(make_notice())  # the daemon's own credentials may publish alerts
    finally:
        await ok.close()


@pytest.mark.integration
async def test_acl_denied_topic_is_permanent(mosquitto_factory: object) -> None:
    broker = mosquitto_factory(secure=True, service_users=(acl.DAEMON_USER,  # type: ignore[operator]
                                                           acl.SIMULATOR_USER))
    channel = MqttAlertChannel("m", broker.url_for(acl.SIMULATOR_USER))  # may publish readings only
    try:
        with pytest.raises(DeliveryError) as denied:
            await channel.send(make_notice())
        assert denied.value.permanent and "not authorized" in str(denied.value).lower()
    finally:
        await channel.close()


@pytest.mark.integration
async def test_silent_broker_times_out_without_blocking_the_loop() -> None:
    """A peer that accepts TCP but never answers CONNECT: transient error after timeout_s; the loop kept running."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    channel = MqttAlertChannel("m", f"mqtt://127.0.0.1:{port}", timeout_s=1.0)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as slow:
            await channel.send(make_notice())
        assert not slow.value.permanent and "CONNACK" in str(slow.value)
        assert 0.9 <= time.monotonic() - started < 3
        assert ticks >= 10, "send blocked the event loop"
    finally:
        ticker.cancel()
        await channel.close()
        server.close()
    assert _paho_threads(channel) == []


@pytest.mark.integration
async def test_unreachable_broker_is_transient_and_closed_channel_refuses() -> None:
    channel = MqttAlertChannel("m", f"mqtt://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(DeliveryError) as refused:
        await channel.send(make_notice())
    assert not refused.value.permanent and "cannot connect" in str(refused.value)
    await channel.close()
    with pytest.raises(DeliveryError, match="closed"):
        await channel.send(make_notice())


@pytest.mark.integration
async def test_concurrent_sends_all_delivered(mosquitto: object, subscribe: object,
                                              request: pytest.FixtureRequest) -> None:
    prefix = _prefix(request)
    live = subscribe(f"{prefix}/#")  # type: ignore[operator]
    channel = MqttAlertChannel("m", mosquitto.url, topic_prefix=prefix)  # type: ignore[attr-defined]
    try:
        await asyncio.gather(*(channel.send(make_notice(alert_id=i)) for i in range(1, 6)))
        assert sorted(m.topic for m in live.take(5)) == [f"{prefix}/{i}" for i in range(1, 6)]
        assert live.none_within(0.3)
    finally:
        await channel.close()
