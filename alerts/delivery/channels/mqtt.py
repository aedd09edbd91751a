"""The MQTT alert channel: each alert's latest transition as a retained message on its own state topic. I/O.

`MqttAlertChannel.send(notice)` publishes `alerts.delivery.messages.notice_payload(notice)` (the webhook's JSON, UTF-8)
RETAINED at `<topic_prefix>/<alert_id>` with the configured QoS and returns once the broker acknowledged it (QoS 1:
PUBACK; QoS 2: PUBCOMP; QoS 0: written to the socket), so a dashboard or a script that subscribes later receives
every alert's current state at once, and a subscriber that stays connected receives one message per transition.
A resolved alert's state message carries an MQTT 5 message expiry (`resolved_expiry_s`, 7 days by default) so
the broker forgets resolved alerts instead of keeping one retained message per alert forever. The state carries
no acknowledgement link (`ack_url` null, none in the rendered message): a retained message is read by every
client the ACL lets subscribe (dashboards, scripts, integrations), long after it was published, and a live link
there would let any of them acknowledge.

Connection: one paho client per channel, connected lazily by the first `send`, kept between sends (paho's
network thread answers keepalives), dropped after any failure and connected afresh by the next `send`: paho's own
reconnect and resend are off, because the outbox (alerts.delivery.dispatch) owns retries — a publish that timed out is
retried by the outbox, never also by paho. MQTT 5 (clean start); a broker that refuses 5 gets 3.1.1.
Every blocking step runs in a worker thread (`asyncio.to_thread`) under `timeout_s`, never in the event loop.

Errors (`DeliveryError`): broker unreachable, connection lost, no acknowledgement in time → transient (retried);
the broker refusing our credentials or authorisation (CONNACK "bad user name or password" / "not authorized", a
PUBACK "not authorized" for an ACL-denied topic) → permanent: retrying cannot help until the configuration
changes. `close()` disconnects and joins paho's network thread, so no thread outlives the channel.

`probe()` checks, before any alert exists, that the broker lets this login publish under the prefix: it publishes
an empty, non-retained QoS 1 message to `<topic_prefix>/probe` and waits for the PUBACK. Mosquitto 2 answers an
ACL-denied QoS 1 publish of an MQTT 5 client with PUBACK "not authorized", which `probe` raises as a permanent
DeliveryError naming the topic and the username (the daemon then refuses to start). Over MQTT 3.1.1 a broker
drops a denied publish silently, so there a probe proves the login only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from dataclasses import replace
from datetime import tzinfo
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from alerts.delivery.messages import DEFAULT_TZ, Language, notice_payload
from alerts.delivery.notice import DeliveryError, Notice
from sensors.mqtt.client import parse_mqtt_url, tls_context
from sensors.redact import redact

__all__ = ["PROBE_TOPIC", "MqttAlertChannel"]

log = logging.getLogger(__name__)

_UNSUPPORTED_PROTOCOL_VERSION = 132  # MQTT 5 CONNACK reason 0x84 (paho maps a 3.1.1 CONNACK code 1 to it too)
# CONNACK / PUBACK reason codes no retry can fix (MQTT 5.0 §2.4, table 2-6): 134 bad user name or password,
# 135 not authorized (also an ACL-denied publish), 138 banned, 140 bad authentication method, 144 topic name
# invalid, 153 payload format invalid. Others (e.g. 137 server busy, 151 quota exceeded) are transient.
_PERMANENT_REASONS = frozenset({134, 135, 138, 140, 144, 153})
#: the last level of the start-up probe's topic, `<topic_prefix>/probe` (alert ids are numbers: never this)
PROBE_TOPIC = "probe"


def _payload(notice: Notice, language: Language | None, tz: str | tzinfo) -> bytes:
    """The message body: the webhook JSON of `alerts.delivery.messages` (stable keys, ISO times), UTF-8; no ack link."""
    body = notice_payload(replace(notice, ack_url=None), language=language, tz=tz)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _Connection:
    """One paho client and its network thread (the channel builds a new one after any failure)."""

    def __init__(self, client: paho.Client) -> None:
        self.client = client
        self.connack = threading.Event()  #: CONNACK received (accepted or refused)
        self.refused: ReasonCode | None = None
        self.lost = threading.Event()  #: the connection dropped after it was up
        self.acks: dict[int, ReasonCode] = {}  #: mid → PUBACK/PUBCOMP reason (MQTT 5)
        self.thread: threading.Thread | None = None


class MqttAlertChannel:
    """Alert transitions as retained JSON state messages on `<topic_prefix>/<alert_id>`.

    Args:
        name: the configured channel name (alert_outbox.channel).
        url: broker, `mqtt://[user:password@]host[:port]` or `mqtts://...` (as `sensors.mqtt.client` parses it).
        topic_prefix: the state topics' prefix (no wildcards); the alert id is appended.
        qos: 0, 1 or 2; `send` waits for the broker's acknowledgement of that QoS.
        timeout_s: how long one `send` may take, connecting included.
        client_id: MQTT client id (default `aqnet-alerts-<name>-<random>`; the session is clean, so any id works).
        ca_file, cert_file, key_file: TLS trust anchor and client certificate for mqtts:// URLs.
        keepalive_s: MQTT keepalive of the kept connection.
        resolved_expiry_s: MQTT 5 message expiry of a resolved alert's retained state (None: kept forever).
        language: also include the rendered message (`message.subject`, `message.text`) in this language.
        tz: the network's time zone for that message's local times.
    """

    type = "mqtt"

    def __init__(self, name: str, url: str, *, topic_prefix: str = "aqnet/alerts", qos: int = 1,
                 timeout_s: float = 10.0, client_id: str | None = None, ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None, keepalive_s: int = 30,
                 resolved_expiry_s: int | None = 7 * 24 * 3600, language: Language | None = None,
                 tz: str | tzinfo = DEFAULT_TZ) -> None:
        self.name = name
        self._url = parse_mqtt_url(url)
        where = f"alert channel {name} (MQTT {self._url})"
        prefix = topic_prefix.rstrip("/")
        if not prefix or any(c in prefix for c in "+#\0"):
            raise ValueError(f"{where}: topic_prefix: expected a topic without wildcards, got {topic_prefix!r}")
        if qos not in (0, 1, 2):
            raise ValueError(f"{where}: qos: expected 0, 1 or 2, got {qos!r}")
        if not timeout_s > 0:
            raise ValueError(f"{where}: timeout_s: expected > 0, got {timeout_s!r}")
        if resolved_expiry_s is not None and resolved_expiry_s <= 0:
            raise ValueError(f"{where}: resolved_expiry_s: expected > 0 or None, got {resolved_expiry_s!r}")
        self._where = where
        self._tls = tls_context(self._url, ca_file, cert_file, key_file)
        self.topic_prefix = prefix
        self.qos = qos
        self.timeout_s = float(timeout_s)
        self.client_id = client_id or f"aqnet-alerts-{name}-{secrets.token_hex(4)}"
        self._keepalive_s = keepalive_s
        self._resolved_expiry_s = resolved_expiry_s
        self._language: Language | None = language
        self._tz = tz
        self._protocol = paho.MQTTv5
        self._lock = threading.Lock()  # one send or close at a time owns the connection
        # sends queue here, in the event loop, rather than each holding a worker thread while it waits for _lock
        self._queue = asyncio.Lock()
        self._conn: _Connection | None = None
        self._closed = False

    def topic_for(self, alert_id: int) -> str:
        """The retained state topic of one alert: `<topic_prefix>/<alert_id>`."""
        return f"{self.topic_prefix}/{alert_id}"

    async def send(self, notice: Notice) -> None:
        """Publish the notice retained on its alert's state topic and wait for the broker's acknowledgement."""
        expiry = self._resolved_expiry_s if notice.transition == "resolved" else None
        body = _payload(notice, self._language, self._tz)
        async with self._queue:
            await asyncio.to_thread(self._publish, self.topic_for(notice.alert_id), body, expiry)

    async def probe(self) -> None:
        """Publish an empty non-retained QoS 1 message to `<topic_prefix>/probe` and wait for the broker's ack;
        DeliveryError (permanent when the broker refused the login or the topic) naming topic and username."""
        topic = f"{self.topic_prefix}/{PROBE_TOPIC}"
        try:
            async with self._queue:
                await asyncio.to_thread(self._publish, topic, b"", None, retain=False, qos=max(self.qos, 1))
        except DeliveryError as exc:
            raise DeliveryError(f"{exc} (start-up probe: publish to {topic} as user "
                                f"{self._url.username or '(anonymous)'})", permanent=exc.permanent) from None

    async def close(self) -> None:
        """Disconnect and join the network thread (waits for a send in progress, at most its timeout)."""
        await asyncio.to_thread(self._close)

    # worker-thread side --------------------------------------------------------------------------------
    def _close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()

    def _publish(self, topic: str, payload: bytes, expiry_s: int | None, *, retain: bool = True,
                 qos: int | None = None) -> None:
        qos = self.qos if qos is None else qos
        with self._lock:
            if self._closed:
                raise DeliveryError(f"{self._where}: channel closed")
            deadline = time.monotonic() + self.timeout_s
            conn = self._connected(deadline)
            properties = None
            if self._protocol == paho.MQTTv5:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho ships no hints here
                properties.ContentType = "application/json"
                if expiry_s is not None:
                    properties.MessageExpiryInterval = expiry_s
            try:
                info = conn.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
            except ValueError as exc:  # invalid topic, payload too large
                raise DeliveryError(f"{self._where}: cannot publish to {topic}: {exc}", permanent=True) from None
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._drop()
                raise DeliveryError(f"{self._where}: publish to {topic} failed: {paho.error_string(info.rc)}; "
                                    "reconnecting on the next attempt")
            while not info.is_published():
                remaining = deadline - time.monotonic()
                if conn.lost.is_set() or remaining <= 0:
                    self._drop()
                    lost = conn.lost.is_set()
                    what = "connection lost" if lost else f"no acknowledgement within {self.timeout_s:g} s"
                    raise DeliveryError(f"{self._where}: publish to {topic} (QoS {qos}): {what}; "
                                        "reconnecting on the next attempt")
                info.wait_for_publish(min(remaining, 0.1))
            reason = conn.acks.pop(info.mid, None)
            if reason is not None and reason.is_failure:
                raise DeliveryError(f"{self._where}: the broker refused the message on {topic}: {reason}",
                                    permanent=reason.value in _PERMANENT_REASONS)

    def _connected(self, deadline: float) -> _Connection:
        """The kept connection, or a new one (MQTT 5, else 3.1.1 when the broker refuses 5)."""
        conn = self._conn
        if conn is not None and conn.client.is_connected() and not conn.lost.is_set():
            return conn
        self._drop()
        conn = self._connect(deadline)
        if (conn.refused is not None and conn.refused.value == _UNSUPPORTED_PROTOCOL_VERSION
                and self._protocol == paho.MQTTv5):
            log.warning("%s: the broker refused MQTT 5; using MQTT 3.1.1 (no message expiry on resolved alerts)",
                        self._where)
            self._drop()
            self._protocol = paho.MQTTv311
            conn = self._connect(deadline)
        if conn.refused is not None:
            reason = conn.refused
            self._drop()
            raise DeliveryError(f"{self._where}: the broker refused the connection: {reason}",
                                permanent=reason.value in _PERMANENT_REASONS)
        return conn

    def _connect(self, deadline: float) -> _Connection:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=self._protocol,
                             reconnect_on_failure=False)
        conn = _Connection(client)
        self._conn = conn
        if self._url.username:
            client.username_pw_set(self._url.username, self._url.password)
        if self._tls is not None:
            client.tls_set_context(self._tls)
        client.connect_timeout = max(0.1, deadline - time.monotonic())

        def on_connect(c: paho.Client, userdata: object, flags: object, reason: ReasonCode, props: object) -> None:
            if reason.is_failure:
                conn.refused = reason
            conn.connack.set()

        def on_disconnect(c: paho.Client, userdata: object, flags: object, reason: Any, props: object) -> None:
            conn.lost.set()
            conn.connack.set()  # a connection closed before its CONNACK wakes the waiting send

        def on_publish(c: paho.Client, userdata: object, mid: int, reason: ReasonCode, props: object) -> None:
            conn.acks[mid] = reason

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        try:
            if self._protocol == paho.MQTTv5:
                client.connect(self._url.host, self._url.port, keepalive=self._keepalive_s, clean_start=True)
            else:
                client.connect(self._url.host, self._url.port, keepalive=self._keepalive_s)
        except OSError as exc:  # refused, unreachable, DNS, TLS handshake or certificate, timeout
            self._drop()
            raise DeliveryError(redact(f"{self._where}: cannot connect: {type(exc).__name__}: {exc}")) from None
        client.loop_start()
        conn.thread = client._thread  # noqa: SLF001 - paho keeps no public handle; joined in _drop, so no thread outlives us
        if not conn.connack.wait(max(0.0, deadline - time.monotonic())):
            self._drop()
            raise DeliveryError(f"{self._where}: no CONNACK within {self.timeout_s:g} s")
        if conn.refused is None and conn.lost.is_set():
            self._drop()
            raise DeliveryError(f"{self._where}: the broker closed the connection before accepting it")
        if conn.refused is None:
            log.info("%s: connected as %s", self._where, self.client_id)
        return conn

    def _drop(self) -> None:
        """Disconnect the current connection (if any) and join its network thread."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        client = conn.client
        client.disconnect()  # the network thread sends DISCONNECT (if connected) and leaves its loop
        client.loop_stop()
        thread = conn.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
            if thread.is_alive():
                log.warning("%s: paho network thread still running after disconnect", self._where)
