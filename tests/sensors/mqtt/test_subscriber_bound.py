"""The subscriber's queue is bounded (issue 16): what does not fit is counted, never kept, never acknowledged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sensors.mqtt.client import Message
from sensors.mqtt.subscriber import Intake, MqttSubscriber
from sensors.network import bundled_network

NOW = datetime(2026, 11, 23, 13, tzinfo=UTC)


class FakeClient:
    client_id = "aqnet-test"

    def __init__(self, on_message) -> None:  # type: ignore[no-untyped-def]
        self.on_message = on_message
        self.acked: list[int] = []

    def start(self) -> None: ...

    def ack(self, message: Message) -> None:
        self.acked.append(message.mid)


async def _noop(*args: object) -> None: ...


def _subscriber(max_pending: int) -> tuple[MqttSubscriber, FakeClient]:
    made: list[FakeClient] = []

    def factory(on_message):  # type: ignore[no-untyped-def]
        made.append(FakeClient(on_message))
        return made[0]

    sub = MqttSubscriber(factory, Intake(bundled_network(), tz=UTC), submit=_noop, reject=_noop,  # type: ignore[arg-type]
                         max_pending=max_pending)
    return sub, made[0]


async def test_messages_beyond_the_bound_are_counted_and_not_kept() -> None:
    sub, client = _subscriber(max_pending=3)
    for mid in range(1, 11):  # a flood (QoS 0 is outside the broker's in-flight window; QoS 1 should not happen)
        client.on_message(Message("aqnet/MS01/readings", b"{}", mid % 2, mid, False, NOW))
    assert sub.pending == 3 and sub.overflowed == 7
    assert client.acked == []  # nothing dropped is acknowledged: the broker keeps (and resends) a QoS 1 message


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pending must be >= 1"):
        _subscriber(max_pending=0)
