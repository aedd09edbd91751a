"""Microsensor intake over MQTT: topic → format decoder → identity → RawReadings with an ack. I/O glue.

The format of a message is the one whose topic template (`sensors.mqtt.payloads.TOPICS`) its topic matches;
identity comes from the topic or the payload (`sensors.mqtt.directory`). The readings go to
`submit(readings, ack)`; the ack runs only once they are durable (the pipeline calls it after the commit). A
message that cannot be decoded or attributed goes to `reject(rejection, ack)`, which keeps it as a dead letter and
runs the ack once that letter is durable: a poison message is never redelivered forever, and never silently
dropped. Receive-time readings carry their message's identity (`sensors.delivery`: session, packet id, digest,
DUP flag), so a message committed but not acknowledged is a duplicate when the broker sends it again.

Bounded: at most `max_pending` messages wait in memory. Acks go out only after the commit, so the broker's
in-flight window (the session's MQTT 5 Receive Maximum, `mqtt.receive_maximum`, or over MQTT 3.1.1 Mosquitto's
`max_inflight_messages`) normally holds the rest back; the bound itself is the client's (`MqttSubscriberClient`'s
`max_pending`, the daemon sets it to the Receive Maximum): once that many messages wait, its network thread stops
reading until `run` takes one (`taken()`), so TCP holds the broker back even when the broker sends past its
window (Mosquitto 2.0.11 does: eclipse-mosquitto/mosquitto#2301). No message is ever dropped: one dropped
unacknowledged would hold a slot of the broker's window until the next connection, and enough of them stall the
intake.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo

from sensors.delivery import Delivery, mqtt_delivery
from sensors.mqtt.client import Message, MqttSubscriberClient
from sensors.mqtt.directory import DeviceDirectory, Resolved, UnknownDeviceError, topic_matches
from sensors.mqtt.payloads import FORMATS, TOPICS, Decoder, PayloadError
from sensors.reading import RawReading
from sensors.sensor import Sensor

__all__ = ["Intake", "MqttSubscriber", "Rejection", "format_filters", "with_delivery"]

log = logging.getLogger(__name__)

#: messages handled between two turns given to the event loop's other tasks (`MqttSubscriber.run`)
YIELD_EVERY = 50


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that produced no readings: where it came from, which sensor (if known), and why."""

    source: str  #: "mqtt" or "http"
    topic: str  #: MQTT topic, or the HTTP path and sensor header
    sensor_id: str | None
    reason: str  #: metrics label: not_json, schema, bad_time, unknown_variable, bad_value, too_large,
    #: no_identity, unknown_sensor, unknown_device, identity_mismatch, unknown_format, device_time
    detail: str
    payload: bytes


Submit = Callable[[list[RawReading], Callable[[], None]], Awaitable[None]]
#: records a rejected message durably and then runs the ack it is given (never before)
Reject = Callable[[Rejection, Callable[[], None]], Awaitable[None]]


def with_delivery(resolved: Resolved, identify: Callable[[], Delivery | None]) -> Resolved:
    """`resolved` with the message's delivery identity on its receive-time readings (device-timestamped ones need
    none); `identify` (a digest of the message) is called only when some reading needs it. Pure."""
    if all(r.time_source != "received" for r in resolved.readings):
        return resolved
    delivery = identify()
    if delivery is None:
        return resolved
    readings = tuple(replace(r, delivery=delivery) if r.time_source == "received" else r for r in resolved.readings)
    return replace(resolved, readings=readings)


#: at most this many topics' formats are remembered by `Intake.format_of` (least recently used first out)
_FORMAT_MEMO_MAX = 100_000


def format_filters(formats: Iterable[str]) -> list[tuple[str, str]]:
    """(topic filter, format) for each format: its template with `{sensor_id}` as a `+` wildcard."""
    return [(TOPICS[name].replace("{sensor_id}", "+"), name) for name in formats]


class Intake:
    """Decode and attribute one message: shared by the MQTT subscriber and the HTTP intake. Pure."""

    def __init__(self, sensors: Iterable[Sensor], *, tz: tzinfo,
                 decoders: Mapping[str, Decoder] = FORMATS) -> None:
        self.directory = DeviceDirectory(sensors)
        self._tz = tz
        self._decoders = decoders
        self._filters = format_filters(decoders)
        #: topic → format, memoised (a topic per sensor; bounded: topics from unregistered senders)
        self._format_of = functools.lru_cache(maxsize=_FORMAT_MEMO_MAX)(self._match_format)

    def format_of(self, topic: str) -> str | None:
        """The payload format whose topic template `topic` matches."""
        return self._format_of(topic)

    def _match_format(self, topic: str) -> str | None:
        return next((name for filter_, name in self._filters if topic_matches(filter_, topic)), None)

    def resolve(self, topic: str, payload: bytes, message: Message | None, *, fmt: str | None = None,
                received_at: datetime | None = None) -> Resolved:
        """Readings of one message; raises PayloadError or UnknownDeviceError."""
        fmt = fmt or self.format_of(topic)
        if fmt is None:
            raise UnknownDeviceError("unknown_format", f"topic {topic!r} matches no payload format's template")
        received = received_at if message is None else message.received_at
        assert received is not None, "Intake.resolve: received_at is required without a message"
        decoded = self._decoders[fmt](topic, payload, now=received, tz=self._tz)
        return self.directory.resolve(topic, decoded, received)


class MqttSubscriber:
    """Routes messages of the subscribed topics through `Intake` to the pipeline."""

    def __init__(self, client_factory: Callable[[Callable[[Message], None]], MqttSubscriberClient],
                 intake: Intake, *, submit: Submit, reject: Reject,
                 on_unmapped: Callable[[str, int], None] | None = None,
                 on_message_seen: Callable[[Message], None] | None = None, max_pending: int = 1000) -> None:
        if max_pending < 1:
            raise ValueError(f"MQTT subscriber: max_pending must be >= 1, got {max_pending}")
        self.max_pending = max_pending  #: the client factory bounds its client with it
        self._intake = intake
        self._submit = submit
        self._reject = reject
        self._unmapped = on_unmapped
        self._seen = on_message_seen
        # unbounded here: the client stops reading at max_pending (module docstring)
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._client = client_factory(self._offer)
        self._started = False
        self._handled = 0

    @property
    def client(self) -> MqttSubscriberClient:
        """The underlying connection (for acknowledgement and status)."""
        return self._client

    @property
    def pending(self) -> int:
        """Messages received and not yet handled (liveness: pending work)."""
        return self._queue.qsize()

    def _offer(self, message: Message) -> None:
        """Queue one message from the client (its `max_pending` bounds how many wait)."""
        self._queue.put_nowait(message)

    @property
    def handled(self) -> int:
        """Messages taken through `handle` since start, whether or not it succeeded (liveness: progress)."""
        return self._handled

    async def run(self) -> None:
        """Connect (on the first call) and process messages until cancelled. The connection stays open after
        cancellation, so the acks of the last batches (sent when the pipeline flushes) still reach the broker:
        the owner calls `client.stop()` after flushing.

        When `handle` raises, the exception ends `run` (the owner logs it and calls `run` again: the connection
        and the queue stay as they are); the message in hand is not acknowledged, so the broker delivers it
        again at the next connection."""
        if not self._started:
            self._client.start()
            self._started = True
        while True:
            message = await self._queue.get()
            self._client.taken()
            try:
                await self.handle(message)
            finally:
                self._handled += 1
            if self._handled % YIELD_EVERY == 0:
                # a queue that is never empty nor full never suspends this loop: let the other tasks (the
                # pipeline's writes among them) run between runs of messages
                await asyncio.sleep(0)

    async def handle(self, message: Message) -> None:
        """Decode one message and submit its readings, or reject it."""
        if self._seen:
            self._seen(message)
        try:
            resolved = self._intake.resolve(message.topic, message.payload, message)
        except UnknownDeviceError as exc:
            await self._rejected(message, exc.sensor_id, exc.reason, exc.detail)
            return
        except PayloadError as exc:
            sensor_id = self._intake.directory.sensor_for_topic(message.topic)
            await self._rejected(message, sensor_id, exc.reason, exc.detail)
            return
        if resolved.unmapped and self._unmapped:
            self._unmapped(resolved.sensor_id, len(resolved.unmapped))
        if not resolved.readings:
            self._client.ack(message)
            return
        if message.qos > 0:  # a QoS 0 message is never redelivered (and has no packet id)
            resolved = with_delivery(resolved, lambda: mqtt_delivery(self._client.client_id, message.mid,
                                                                     message.topic, message.payload, dup=message.dup))
        await self._submit(list(resolved.readings), lambda: self._client.ack(message))

    async def _rejected(self, message: Message, sensor_id: str | None, reason: str, detail: str) -> None:
        log.warning("sensor %s: MQTT message on %s rejected (%s): %s", sensor_id or "?", message.topic, reason, detail)
        # acknowledged only once the dead letter is durable (in the database or the spool)
        await self._reject(Rejection("mqtt", message.topic, sensor_id, reason, detail, message.payload),
                           lambda: self._client.ack(message))
