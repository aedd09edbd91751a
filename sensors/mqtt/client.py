"""The MQTT connection: the only module that imports paho. I/O.

`MqttSubscriberClient` connects with MQTT 5 (clean start off, a session expiry, a Receive Maximum sized to the
ingest batch, manual acknowledgement), subscribes again on every connect, and hands each message to the asyncio
loop as an aqnet `Message`, so paho types never reach callers. A message is acknowledged only when the caller calls
`ack(message)` — after its readings are durable — so the broker redelivers anything not yet written after a crash.

paho runs its network loop in its own thread (`loop_start`); callbacks cross into the event loop with
`call_soon_threadsafe`. `MqttPublisherClient` is the simulators' and alert channels' publishing side.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["Message", "MqttPublisherClient", "MqttSubscriberClient", "MqttUrl", "parse_mqtt_url"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MqttUrl:
    """A broker address parsed from `mqtt://[user:password@]host:port`."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None


def parse_mqtt_url(url: str) -> MqttUrl:
    """Parse `mqtt://host:port`; raise ValueError naming the URL when it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"MQTT URL {url!r}: expected mqtt://host:port")
    return MqttUrl(parts.hostname, parts.port or 1883, parts.username, parts.password)


@dataclass(frozen=True, slots=True)
class Message:
    """One received MQTT message; `mid` and `qos` identify it for `ack`."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool
    received_at: datetime


class MqttSubscriberClient:
    """A persistent-session subscriber that delivers messages to `on_message` in the event loop.

    Args:
        url: broker URL, `mqtt://host:port`.
        client_id: stable client id (the broker keeps the session and unacknowledged messages under it).
        topics: subscription filters (`$share/<group>/...` splits the load between aqnet processes).
        on_message: called in the event loop for each message.
        on_connection: called in the event loop with True/False on connect/disconnect.
        receive_maximum: MQTT 5 Receive Maximum — how many unacknowledged QoS 1 messages the broker may send.
        session_expiry_s: how long the broker keeps the session while aqnet is away.
    """

    def __init__(self, url: str, *, client_id: str, topics: list[str], loop: asyncio.AbstractEventLoop,
                 on_message: Callable[[Message], None], on_connection: Callable[[bool], None] | None = None,
                 qos: int = 1, receive_maximum: int = 1000, session_expiry_s: int = 7 * 24 * 3600,
                 keepalive_s: int = 30, reconnect_min_s: int = 1, reconnect_max_s: int = 30,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._url = parse_mqtt_url(url)
        self._topics = topics
        self._loop = loop
        self._on_message = on_message
        self._on_connection = on_connection
        self._qos = qos
        self._clock = clock
        self._receive_maximum = receive_maximum
        self._session_expiry_s = session_expiry_s
        self._keepalive_s = keepalive_s
        self.connected = threading.Event()
        self._stopping = False
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5,
                                   manual_ack=True)
        if self._url.username:
            self._client.username_pw_set(self._url.username, self._url.password)
        self._client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message

    def start(self) -> None:
        """Connect asynchronously and start paho's network thread (it reconnects by itself)."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry_s
        props.ReceiveMaximum = self._receive_maximum
        self._client.connect_async(self._url.host, self._url.port, keepalive=self._keepalive_s,
                                   clean_start=False, properties=props)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread; unacknowledged messages stay with the broker."""
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def ack(self, message: Message) -> None:
        """Acknowledge `message` to the broker (call only once its readings are durable)."""
        if message.qos > 0:
            self._client.ack(message.mid, message.qos)

    # paho callbacks (network thread) -------------------------------------------------------------------
    def _handle_connect(self, client: paho.Client, userdata: object, flags: object, reason_code: object,
                        properties: object) -> None:
        if getattr(reason_code, "is_failure", False):
            log.error("MQTT %s:%s refused the connection: %s", self._url.host, self._url.port, reason_code)
            return
        for topic in self._topics:  # subscribe again on every connect: the broker may have lost the session
            client.subscribe(topic, qos=self._qos)
        self.connected.set()
        log.info("MQTT connected to %s:%s, subscribed to %s", self._url.host, self._url.port, self._topics)
        if self._on_connection:
            self._loop.call_soon_threadsafe(self._on_connection, True)

    def _handle_disconnect(self, client: paho.Client, userdata: object, flags: object, reason_code: object,
                           properties: object) -> None:
        self.connected.clear()
        if self._stopping:
            log.info("MQTT disconnected from %s:%s", self._url.host, self._url.port)
        else:
            log.warning("MQTT disconnected from %s:%s (%s); reconnecting", self._url.host, self._url.port,
                        reason_code)
        if self._on_connection and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_connection, False)

    def _handle_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        message = Message(msg.topic, bytes(msg.payload), msg.qos, msg.mid, bool(msg.retain), self._clock())
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_message, message)


class MqttPublisherClient:
    """A small publishing client (simulated microsensors, alert channel), MQTT 5, reconnecting by itself."""

    def __init__(self, url: str, *, client_id: str) -> None:
        self._url = parse_mqtt_url(url)
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        if self._url.username:
            self._client.username_pw_set(self._url.username, self._url.password)
        self._client.reconnect_delay_set(1, 10)
        self._client.max_queued_messages_set(10000)

    def start(self) -> None:
        """Connect asynchronously and start the network thread."""
        self._client.connect_async(self._url.host, self._url.port, keepalive=30)
        self._client.loop_start()

    def is_connected(self) -> bool:
        """True while connected to the broker."""
        return self._client.is_connected()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Queue one message; paho sends it when connected."""
        self._client.publish(topic, payload, qos=qos)

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()
