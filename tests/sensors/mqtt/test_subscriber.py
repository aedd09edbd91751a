"""The MQTT intake against a real Mosquitto: readings reach `submit` with an ack; a message not acknowledged
(not yet durable) is redelivered after a reconnect; a poison message is rejected by reason and acknowledged."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from paho.mqtt import publish

from aqnet.localstack import MosquittoBroker
from sensors.mqtt import subscriber as intake_mod
from sensors.mqtt.client import MqttSubscriberClient
from sensors.mqtt.subscriber import MqttSubscriber, Rejection
from sensors.network import bundled_network
from tests.fixtures.waiting import until

MS = {s.id: s for s in bundled_network() if s.kind == "microsensor"}
TZ = ZoneInfo("America/Bogota")


def _payload(pm25: float) -> bytes:
    return json.dumps({"time": "2026-11-23T08:00:00-05:00", "values": {"pm25": pm25, "temperature": 14.0}}).encode()


def _port(broker: MosquittoBroker) -> int:
    return int(broker.url.rsplit(":", 1)[1])


class Running:
    def __init__(self, broker: MosquittoBroker, client_id: str, *, ack: bool) -> None:
        self.readings: list = []
        self.rejections: list[Rejection] = []
        self.ack = ack
        loop = asyncio.get_running_loop()

        def factory(on_message):
            return MqttSubscriberClient(broker.url, client_id=client_id, topics=["aqnet/+/readings"], loop=loop,
                                        on_message=on_message, receive_maximum=100)

        async def submit(readings, ack_fn):
            self.readings.extend(readings)
            if self.ack:
                ack_fn()

        async def reject(rej: Rejection, ack_fn) -> None:
            self.rejections.append(rej)
            if self.ack:  # the dead letter is durable
                ack_fn()

        self.sub = MqttSubscriber(factory, intake_mod.Intake(MS.values(), tz=TZ), submit=submit, reject=reject)
        self.task = asyncio.create_task(self.sub.run())

    async def connected(self) -> None:
        for _ in range(100):
            if self.sub.client.connected.is_set():
                await asyncio.sleep(0.2)  # let the SUBACK arrive
                return
            await asyncio.sleep(0.05)
        raise AssertionError("subscriber did not connect")

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await asyncio.to_thread(self.sub.client.stop)  # the owner disconnects (run() leaves it to us)


async def test_unacknowledged_messages_are_redelivered_after_reconnect(mosquitto: MosquittoBroker) -> None:
    client_id = "aqnet-test-redelivery"
    first = Running(mosquitto, client_id, ack=False)  # a crash before the batch was durable
    await first.connected()
    for value in (1.0, 2.0, 3.0):
        publish.single("aqnet/MS01/readings", _payload(value), qos=1, hostname="127.0.0.1", port=_port(mosquitto))
    await until(lambda: len(first.readings) == 6, timeout_s=10)
    await first.stop()

    second = Running(mosquitto, client_id, ack=True)
    await second.connected()
    await until(lambda: len(second.readings) >= 6, timeout_s=10)
    await second.stop()
    pm = sorted(r.value for r in second.readings if r.variable == "pm25")
    assert pm == [1.0, 2.0, 3.0]
    assert all(r.sensor_id == "MS01" and r.device_id == "MS01" for r in second.readings)
    assert second.readings[0].time == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)

    third = Running(mosquitto, client_id, ack=True)  # acknowledged: nothing comes back
    await third.connected()
    await asyncio.sleep(1.0)
    await third.stop()
    assert third.readings == []


async def test_poison_and_unknown_sensor_messages_are_acknowledged_only_once_their_dead_letter_is_durable(
        mosquitto: MosquittoBroker) -> None:
    client_id = "aqnet-test-poison"
    first = Running(mosquitto, client_id, ack=False)  # a crash before the dead letters were durable
    await first.connected()
    port = _port(mosquitto)
    publish.single("aqnet/MS02/readings", b"\xff not json", qos=1, hostname="127.0.0.1", port=port)
    publish.single("aqnet/NOPE/readings", _payload(5.0), qos=1, hostname="127.0.0.1", port=port)
    await until(lambda: len(first.rejections) == 2, timeout_s=10)
    await first.stop()
    by_reason = {r.reason: r for r in first.rejections}
    assert by_reason["not_json"].sensor_id == "MS02"
    assert by_reason["unknown_sensor"].sensor_id == "NOPE"
    assert by_reason["not_json"].payload == b"\xff not json"

    second = Running(mosquitto, client_id, ack=True)  # not acknowledged: both come back, and are kept this time
    await second.connected()
    await until(lambda: len(second.rejections) == 2, timeout_s=10)
    await second.stop()
    assert sorted(r.reason for r in second.rejections) == ["not_json", "unknown_sensor"]

    third = Running(mosquitto, client_id, ack=True)  # acknowledged once durable: never redelivered
    await third.connected()
    await asyncio.sleep(1.0)
    await third.stop()
    assert third.rejections == [] and third.readings == []
