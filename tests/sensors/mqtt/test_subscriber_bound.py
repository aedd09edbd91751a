"""The subscriber's bound (issue 16, then issue 19's flood): at most `max_pending` messages wait, and none is ever
dropped — the client's network thread stops reading instead, so TCP holds the broker back even when the broker
sends past its Receive Maximum (Mosquitto 2.0.11 does after a PUBACK: eclipse-mosquitto/mosquitto#2301)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from aqnet.localstack import MosquittoBroker
from sensors.mqtt.client import Message, MqttSubscriberClient
from sensors.mqtt.subscriber import Intake, MqttSubscriber
from sensors.network import bundled_network

NOW = datetime(2026, 11, 23, 13, tzinfo=UTC)


class FakeClient:
    client_id = "aqnet-test"

    def __init__(self, on_message) -> None:  # type: ignore[no-untyped-def]
        self.on_message = on_message
        self.acked: list[int] = []
        self.taken_count = 0

    def start(self) -> None: ...

    def ack(self, message: Message) -> None:
        self.acked.append(message.mid)

    def taken(self) -> None:
        self.taken_count += 1


def _subscriber(max_pending: int, submit: Callable[..., object]) -> tuple[MqttSubscriber, FakeClient]:
    made: list[FakeClient] = []

    def factory(on_message):  # type: ignore[no-untyped-def]
        made.append(FakeClient(on_message))
        return made[0]

    sub = MqttSubscriber(factory, Intake(bundled_network(), tz=UTC), submit=submit, reject=submit,  # type: ignore[arg-type]
                         max_pending=max_pending)
    return sub, made[0]


async def test_the_subscriber_keeps_every_message_it_is_handed_and_frees_a_slot_per_message_taken() -> None:
    handled: list[int] = []

    async def submit(readings: object, ack: Callable[[], None]) -> None:
        handled.append(len(handled))

    sub, client = _subscriber(3, submit)
    for mid in range(1, 11):
        client.on_message(Message("aqnet/MS01/readings", b'{"values": {"pm25": 1}}', 1, mid, False, NOW))
    assert sub.pending == 10  # nothing dropped: the client, not the subscriber, stops at the bound
    task = asyncio.create_task(sub.run())
    for _ in range(100):
        await asyncio.sleep(0)
    task.cancel()
    assert sub.pending == 0 and sub.handled == 10 and client.taken_count == 10


def test_the_bound_must_be_positive() -> None:
    async def submit(*args: object) -> None: ...

    with pytest.raises(ValueError, match="max_pending must be >= 1"):
        _subscriber(0, submit)


@pytest.mark.integration
async def test_the_client_stops_reading_at_max_pending_and_loses_nothing(
        mosquitto_factory: Callable[..., MosquittoBroker]) -> None:
    broker = mosquitto_factory()
    got: list[Message] = []
    loop = asyncio.get_running_loop()
    client = MqttSubscriberClient(broker.url, client_id="bound", topics=["aqnet/+/readings"], loop=loop,
                                  on_message=got.append, receive_maximum=1000, max_pending=3, verify_read_s=None)
    client.start()
    try:
        await asyncio.wait_for(asyncio.shield(client.subscribed), 15)
        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="flood", protocol=paho.MQTTv5)
        pub.connect("127.0.0.1", int(broker.url.rsplit(":", 1)[1]))
        pub.loop_start()
        infos = [pub.publish("aqnet/MS01/readings", str(i).encode(), qos=1) for i in range(20)]
        for info in infos:
            info.wait_for_publish(10)
        await asyncio.sleep(1.0)
        assert len(got) == 3  # three handed over, none taken: the network thread waits
        deadline = time.monotonic() + 30
        delivered: list[bytes] = []
        while len(delivered) < 20 and time.monotonic() < deadline:
            if len(got) > len(delivered):
                message = got[len(delivered)]
                delivered.append(message.payload)
                client.taken()
                client.ack(message)
            else:
                await asyncio.sleep(0.02)
        assert delivered == [str(i).encode() for i in range(20)], "every message, once, in order"
        assert client.held_back_s > 0
        pub.loop_stop()
        pub.disconnect()
    finally:
        await asyncio.to_thread(client.stop)


async def test_the_subscriber_lets_other_tasks_run_during_a_run_of_messages() -> None:
    """A queue that is never empty nor full never suspends `run`: it yields every YIELD_EVERY messages, so the
    pipeline's writes (other tasks) are not starved while a backlog is handled."""
    from sensors.mqtt.subscriber import YIELD_EVERY

    async def submit(readings: object, ack: Callable[[], None]) -> None:  # never suspends, as a queue with room
        pass

    sub, client = _subscriber(1000, submit)
    for mid in range(1, 4 * YIELD_EVERY + 1):
        client.on_message(Message("aqnet/MS01/readings", b'{"values": {"pm25": 1}}', 1, mid, False, NOW))
    seen: list[int] = []

    async def other() -> None:
        seen.append(sub.handled)

    task = asyncio.create_task(sub.run())
    side = asyncio.create_task(other())
    await side
    for _ in range(100):
        await asyncio.sleep(0)
    task.cancel()
    assert seen == [YIELD_EVERY]
    assert sub.handled == 4 * YIELD_EVERY


async def test_the_network_thread_hands_a_burst_over_with_one_wake_up_in_order() -> None:
    """One write to the loop's self-pipe per burst, not per message; every message delivered once, in order."""
    import threading

    loop = asyncio.get_running_loop()
    got: list[Message] = []
    client = MqttSubscriberClient("mqtt://127.0.0.1:1", client_id="burst", topics=["t"], loop=loop,
                                  on_message=got.append, verify_read_s=None)
    wake_ups: list[int] = []
    deliver = client._deliver_inbox

    def counting() -> None:
        wake_ups.append(len(client._inbox))
        deliver()

    client._deliver_inbox = counting  # type: ignore[method-assign]
    messages = [Message("t", str(i).encode(), 1, i + 1, False, NOW) for i in range(500)]
    thread = threading.Thread(target=lambda: [client._hand_over(m) for m in messages])
    thread.start()
    thread.join()  # the loop does not run meanwhile: the whole burst waits behind one wake-up
    for _ in range(10):
        await asyncio.sleep(0)
    assert got == messages
    assert wake_ups == [500]
    client._hand_over(messages[0])  # the next burst wakes the loop again
    for _ in range(10):
        await asyncio.sleep(0)
    assert wake_ups == [500, 1] and len(got) == 501
