"""Microsensor intake over MQTT: topic → device → payload decoder → RawReadings with an ack. I/O glue.

Each message becomes a list of `RawReading` handed to `submit(readings, ack)`; the ack runs only once the
readings are durable (the pipeline calls it after the sink commits). A message that cannot be decoded, or comes
from an unknown sensor, goes to `reject(...)` (counted by reason and kept as a dead letter by the daemon) and is
acknowledged after that: a poison message is never redelivered forever, and never silently dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import tzinfo

from sensors.mqtt.client import Message, MqttSubscriberClient
from sensors.mqtt.payloads import FORMATS, PayloadError
from sensors.reading import RawReading
from sensors.sensor import Device

__all__ = ["MqttSubscriber", "Rejection"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that produced no readings: where it came from, which sensor (if known), and why."""

    source: str  #: "mqtt"
    topic: str
    sensor_id: str | None
    reason: str  #: metrics label: not_json, schema, bad_time, unknown_variable, bad_value, too_large, unknown_sensor
    detail: str
    payload: bytes


Submit = Callable[[list[RawReading], Callable[[], None]], Awaitable[None]]
Reject = Callable[[Rejection], Awaitable[None]]


def sensor_id_from_topic(topic: str) -> str | None:
    """The `<sensor_id>` of `aqnet/<sensor_id>/readings`, or None for another shape."""
    parts = topic.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "aqnet" and parts[2] == "readings" else None


class MqttSubscriber:
    """Routes messages of the subscribed topics to the registered devices' payload decoders."""

    def __init__(self, client_factory: Callable[[Callable[[Message], None]], MqttSubscriberClient],
                 devices_by_topic: Mapping[str, Device], *, submit: Submit, reject: Reject, tz: tzinfo,
                 on_message_seen: Callable[[], None] | None = None) -> None:
        self._devices = dict(devices_by_topic)
        self._submit = submit
        self._reject = reject
        self._tz = tz
        self._seen = on_message_seen
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._client = client_factory(self._queue.put_nowait)

    @property
    def client(self) -> MqttSubscriberClient:
        """The underlying connection (for acknowledgement and status)."""
        return self._client

    async def run(self) -> None:
        """Connect and process messages until cancelled."""
        self._client.start()
        try:
            while True:
                message = await self._queue.get()
                await self.handle(message)
        finally:
            self._client.stop()

    async def handle(self, message: Message) -> None:
        """Decode one message and submit its readings, or reject it."""
        if self._seen:
            self._seen()
        device = self._devices.get(message.topic)
        if device is None:
            sid = sensor_id_from_topic(message.topic)
            await self._rejected(message, sid, "unknown_sensor",
                                 f"no registered sensor publishes to topic {message.topic!r}")
            return
        decoder = FORMATS.get(device.profile)
        if decoder is None:
            await self._rejected(message, device.sensor_id, "schema", f"unknown payload format {device.profile!r}")
            return
        try:
            readings = decoder(message.topic, message.payload, sensor_id=device.sensor_id, device_id=device.id,
                               now=message.received_at, tz=self._tz)
        except PayloadError as exc:
            await self._rejected(message, device.sensor_id, exc.reason, str(exc))
            return
        if not readings:
            self._client.ack(message)
            return
        await self._submit(readings, lambda: self._client.ack(message))

    async def _rejected(self, message: Message, sensor_id: str | None, reason: str, detail: str) -> None:
        log.warning("sensor %s: MQTT message on %s rejected (%s): %s", sensor_id or "?", message.topic, reason, detail)
        await self._reject(Rejection("mqtt", message.topic, sensor_id, reason, detail, message.payload))
        self._client.ack(message)
