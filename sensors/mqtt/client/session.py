"""The subscriber's persistent MQTT session (`MqttSubscriberClient`), over paho. I/O.

`MqttSubscriberClient` keeps one persistent session with the broker and hands each message to the asyncio loop as
an aqnet `Message`, so paho types never reach callers. Its contract:

- **Durability.** QoS 1 with manual acknowledgement: a message is acknowledged only when the caller calls
  `ack(message)`, after its readings are durable, so the broker redelivers (DUP set, `Message.dup`) anything not
  yet written when aqnet crashed. An ack is sent only on the connection that delivered the message: after a
  reconnect the broker may reuse that packet id for another message, so a late ack is dropped (the broker
  redelivers the message and the database drops the duplicate row).
- **Session.** MQTT 5 with clean start off, a session expiry and a Receive Maximum (how many unacknowledged
  messages the broker may send: size it to the ingest batch). A broker that refuses MQTT 5 (CONNACK "unsupported
  protocol version") gets MQTT 3.1.1 with clean_session=False; its in-flight window and session lifetime are
  then the broker's settings, which one WARNING names.
- **Reconnection is aqnet's policy, not paho's.** One thread per client connects, runs paho's `loop()`, and on
  any failure or loss waits `Backoff.delay_s(n)` (exponential, jittered by an injected `random.Random`) before
  the next attempt; the first failure is logged at ERROR, repeats at DEBUG, recovery at INFO. Every connect
  subscribes again. `status()` shows the state and the attempt counters; `stop()` returns promptly.
- **Subscriptions are checked.** The SUBACK's reason codes are read (MQTT 5: ≥ 0x80, e.g. 0x87 "not
  authorized"; MQTT 3.1.1: 0x80): `subscribed` (an asyncio future in the client's loop) resolves once the first
  connection's subscriptions are all granted, or fails with `SubscriptionRefused` naming the topic, the username
  and the broker's reason, so the daemon can refuse to start. A refusal on a later reconnect is logged at ERROR
  and kept in `status()` (`state` "refused", `refused` and `last_error` name the topic and the user); the client
  stays connected for the subscriptions the broker granted.
- **Read access is proven, not assumed** (Mosquitto grants every SUBACK and applies its ACL only when delivering):
  on the first connection, once every SUBACK is granted, one probe per filter must come back within
  `verify_read_s` (`sensors.mqtt.client.probes`), or `subscribed` fails with SubscriptionRefused.
- **Security.** Username/password from the URL; `mqtts://` URLs use TLS (system CAs or `ca_file`, client
  certificate with `cert_file`/`key_file`).

Part of `sensors.mqtt.client` (the only package that imports paho); the URL, TLS, backoff and message values it
uses are `sensors.mqtt.client.connection`'s, its paho calls `sensors.mqtt.client.wire`'s; the publishing side is
`sensors.mqtt.client.publisher`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from sensors.mqtt.client import wire
from sensors.mqtt.client.connection import (
    Backoff,
    ClientStatus,
    Message,
    MqttUrl,
    Protocol,
    SubscriptionRefused,
    parse_mqtt_url,
    tls_context,
)
from sensors.mqtt.client.probes import PROBE_PREFIX, ReadProbes
from sensors.redact import redact_url

__all__ = ["MqttSubscriberClient"]

log = logging.getLogger("sensors.mqtt.client")  # the client's log lines keep their logger name

_UNSUPPORTED_PROTOCOL_VERSION = 132  # MQTT 5 CONNACK reason 0x84; paho maps a 3.1.1 CONNACK code 1 to it too


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: object) -> None:
    """Run `fn(*args)` in the event loop from the network thread; nothing once the loop is closed."""
    if not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # closed between the check and the call
            loop.call_soon_threadsafe(fn, *args)


class MqttSubscriberClient:
    """A persistent-session subscriber that delivers messages to `on_message` in the event loop.

    Args:
        url: broker URL, `mqtt://[user:password@]host:port` or `mqtts://...` for TLS.
        client_id: stable client id (the broker keeps the session and unacknowledged messages under it).
        topics: subscription filters (`$share/<group>/<filter>` splits the load between aqnet processes).
        on_message: called in the event loop for each message.
        on_connection: called in the event loop with True/False on connect/disconnect.
        receive_maximum: MQTT 5 Receive Maximum: how many unacknowledged QoS 1 messages the broker may send.
        max_pending: how many messages may be handed to `on_message` and not yet `taken()` (None: no bound).
            When that many wait, the network thread waits too before it reads the next packet: TCP holds the
            broker back, whatever its in-flight accounting does (Mosquitto 2.0.11 sends past the Receive
            Maximum: eclipse-mosquitto/mosquitto#2301), and no message is ever dropped unacknowledged.
        session_expiry_s: how long the broker keeps the session while aqnet is away (MQTT 5).
        reconnect_min_s, reconnect_max_s: the reconnect backoff (see `Backoff`).
        rng: randomness of the backoff jitter (a seeded `random.Random` in tests).
        protocol: "auto" (MQTT 5, falling back to 3.1.1 when the broker refuses 5), "5" or "3.1.1".
        ca_file, cert_file, key_file: TLS trust anchor and client certificate for mqtts:// URLs.
        clock: wall clock for `Message.received_at`; monotonic: clock for `last_message_at`.
    """

    def __init__(self, url: str, *, client_id: str, topics: list[str], loop: asyncio.AbstractEventLoop,
                 on_message: Callable[[Message], None], on_connection: Callable[[bool], None] | None = None,
                 qos: int = 1, receive_maximum: int = 1000, session_expiry_s: int = 7 * 24 * 3600,
                 keepalive_s: int = 30, reconnect_min_s: float = 1, reconnect_max_s: float = 30,
                 rng: random.Random | None = None, protocol: Protocol = "auto", ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None, connect_timeout_s: float = 5.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic, verify_read_s: float | None = 10.0,
                 max_pending: int | None = None) -> None:
        if not client_id:
            raise ValueError(f"MQTT {redact_url(url)}: a persistent session needs a client_id")
        if not 1 <= receive_maximum <= 65535:
            raise ValueError(f"MQTT {redact_url(url)}: receive_maximum: expected 1..65535, got {receive_maximum}")
        if protocol not in ("auto", "5", "3.1.1"):
            raise ValueError(f"MQTT {redact_url(url)}: protocol: expected auto, 5 or 3.1.1, got {protocol!r}")
        self._url = parse_mqtt_url(url)
        self._tls = tls_context(self._url, ca_file, cert_file, key_file)
        self._client_id = client_id
        self._topics = list(topics)
        self._loop = loop
        self._on_message = on_message
        self._on_connection = on_connection
        self._qos = qos
        self._clock = clock
        self._monotonic = monotonic
        self._receive_maximum = receive_maximum
        self._session_expiry_s = session_expiry_s
        self._keepalive_s = keepalive_s
        self._connect_timeout_s = connect_timeout_s
        self._backoff = Backoff(reconnect_min_s, reconnect_max_s)
        self._rng = rng or random.Random()
        self._protocol_choice = protocol
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._ack_lock = threading.Lock()  # an ack and a new connection's start never interleave
        self._acks: list[int] = []  #: QoS 1 packet ids acknowledged and not yet handed to paho (`flush_acks`)
        if max_pending is not None and max_pending < 1:
            raise ValueError(f"MQTT {redact_url(url)}: max_pending must be >= 1, got {max_pending}")
        #: one slot per message handed over and not yet taken (the network thread's backpressure)
        self._slots = threading.BoundedSemaphore(max_pending) if max_pending else None
        self.held_back_s = 0.0  #: seconds the network thread waited for a free slot (the broker held back)
        #: messages handed over by the network thread, not yet passed to `on_message` in the event loop; one
        #: wake-up of the loop carries every message that arrived before it runs (`_hand_over`)
        self._inbox: collections.deque[Message] = collections.deque()
        self._wake_posted = False
        self._thread: threading.Thread | None = None
        self._state = "new"
        self._connection = 0
        self._attempts = 0
        self._connections = 0
        self._failures = 0
        self._last_error: str | None = None
        self._attempt_error: str | None = None
        self._last_message_at: float | None = None
        self._session_present: bool | None = None
        self._fallback_pending = False
        self._pending_subs: dict[int, str] = {}  #: SUBSCRIBE mid → topic, until its SUBACK
        self._refused: tuple[str, ...] = ()
        self._verify_read_s = verify_read_s
        self._read_probes = ReadProbes(self._url.username, verify_read_s, monotonic)
        #: the first connection's subscription outcome: None when all granted, SubscriptionRefused otherwise
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self._client = self._new_paho("3.1.1" if protocol == "3.1.1" else "5")

    # public surface -----------------------------------------------------------------------------------
    @property
    def url(self) -> MqttUrl:
        """The broker address (its `str` omits the password)."""
        return self._url

    @property
    def client_id(self) -> str:
        """The session's client id (a redelivered message comes back on it, with its packet id)."""
        return self._client_id

    @property
    def protocol(self) -> str:
        """The MQTT version in use: "5", or "3.1.1" (configured, or after the broker refused 5)."""
        return self._protocol

    @property
    def connection_attempts(self) -> int:
        """Connects tried since start (each TCP + CONNECT, successful or not)."""
        return self._attempts

    @property
    def last_message_at(self) -> float | None:
        """`monotonic()` when the last message arrived (None before the first): the watchdog's input."""
        return self._last_message_at

    def seconds_since_last_message(self, now: float | None = None) -> float | None:
        """Seconds since the last message (None before the first); `now` defaults to `monotonic()`."""
        last = self._last_message_at
        return None if last is None else (self._monotonic() if now is None else now) - last

    def status(self) -> ClientStatus:
        """A snapshot of the connection state and counters."""
        return ClientStatus(self._state, self._protocol, self._attempts, self._connections, self._failures,
                            self._last_error, self._last_message_at, self._session_present, self._refused)

    def start(self) -> None:
        """Start the connection thread: it connects, and reconnects with backoff until `stop()`."""
        if self._thread is not None:
            raise RuntimeError(f"MQTT {self._url} client {self._client_id}: already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"aqnet-mqtt-{self._client_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Disconnect and end the connection thread; unacknowledged messages stay with the broker.

        Returns within about `timeout_s` (default: the connect timeout + 1 s), even while a connect is pending.
        """
        self.flush_acks()  # before the DISCONNECT
        self._stop.set()
        with self._ack_lock:
            client = self._client
        client.disconnect()  # queues DISCONNECT and wakes the network thread's select()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._connect_timeout_s + 1 if timeout_s is None else timeout_s)
            if thread.is_alive():
                log.warning("MQTT %s: network thread still busy after stop (a connect is pending)", self._url)
        self._thread = None
        self._state = "stopped"

    def ack(self, message: Message) -> None:
        """Acknowledge `message` to the broker (call only once its readings are durable).

        An ack for a message of an earlier connection is dropped: the broker redelivers that message.
        """
        if message.qos == 0:
            return
        with self._ack_lock:
            if message.connection not in (0, self._connection):
                log.debug("MQTT %s: ack of message %d from connection %d dropped (now %d); the broker redelivers it",
                          self._url, message.mid, message.connection, self._connection)
                return
            if message.qos != 1:
                self._client.ack(message.mid, message.qos)
                return
            self._acks.append(message.mid)
            if len(self._acks) > 1:
                return  # a flush is already due
        try:
            in_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            in_loop = False
        if in_loop:
            self._loop.call_soon(self.flush_acks)  # the acks of this turn of the loop (a batch's) go out together
        else:
            self.flush_acks()

    def flush_acks(self) -> None:
        """Send the PUBACKs `ack` has gathered, in order, as one write (`wire.queue_pubacks`). `ack` arranges it
        (at the end of the event loop's turn, so a batch's acks go out together); `stop` calls it first."""
        with self._ack_lock:
            mids, self._acks = self._acks, []
            if mids:
                wire.queue_pubacks(self._client, mids)

    # the connection thread ----------------------------------------------------------------------------
    def _new_paho(self, protocol: str) -> paho.Client:
        self._protocol = protocol
        client = wire.new_client(protocol, self._client_id, self._url, self._tls, self._connect_timeout_s)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        client.on_publish = self._handle_publish
        return client

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._ack_lock:
                self._connection += 1
                self._acks = []  # gathered for the connection that ended: the broker sends those messages again
                client = self._client
            self._attempts += 1
            self._state = "connecting"
            self._attempt_error = None
            accepted_before = self._connections
            self._connect_and_loop(client)
            if self._stop.is_set():
                break
            if self._fallback_pending:
                self._fall_back_to_311()
                continue
            self._last_error = self._attempt_error or "connection lost"
            if self._connections > accepted_before:
                self._failures = 0  # the connection was up: start the backoff again from the bottom
            self._failures += 1
            delay = self._backoff.delay_s(self._failures, self._rng)
            self._log_failure(delay)
            self._state = "backoff"
            self._stop.wait(delay)
        self._close(self._client)
        self._state = "stopped"

    def _connect_and_loop(self, client: paho.Client) -> None:
        try:
            wire.connect(client, self._url, self._protocol, keepalive_s=self._keepalive_s,
                         session_expiry_s=self._session_expiry_s, receive_maximum=self._receive_maximum)
        except OSError as exc:  # refused, unreachable, DNS, TLS handshake or certificate, timeout
            self._attempt_error = f"{type(exc).__name__}: {exc}"
            return
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not self._stop.is_set():
            rc = client.loop(timeout=1.0)
            self._check_probes()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and self._attempt_error is None:
            self._attempt_error = paho.error_string(rc)

    def _close(self, client: paho.Client) -> None:
        """Send DISCONNECT if the socket is still open (the session stays with the broker)."""
        wire.close(client)
        self.connected.clear()

    def _fall_back_to_311(self) -> None:
        self._fallback_pending = False
        log.warning(
            "MQTT broker %s refused MQTT 5 (unsupported protocol version): using MQTT 3.1.1 with a persistent "
            "session (clean_session=False). MQTT 3.1.1 has no Receive Maximum or session expiry, so the broker's "
            "settings decide how many unacknowledged messages it sends and how long it keeps the session: set its "
            "in-flight window to at least %d (Mosquitto: max_inflight_messages %d) and its session lifetime to "
            "cover outages (Mosquitto: persistent_client_expiration), or throughput drops to one window per commit",
            self._url, self._receive_maximum, self._receive_maximum)
        with self._ack_lock:
            self._client = self._new_paho("3.1.1")

    def _log_failure(self, delay: float) -> None:
        what = self._last_error or "connection lost"
        if self._failures == 1:
            log.error("MQTT %s (client %s): %s; reconnecting in %.1f s (attempt %d)", self._url, self._client_id,
                      what, delay, self._attempts + 1)
        else:
            log.debug("MQTT %s (client %s): %s; reconnecting in %.1f s (attempt %d)", self._url, self._client_id,
                      what, delay, self._attempts + 1)

    # paho callbacks (the connection thread) -----------------------------------------------------------
    def _handle_connect(self, client: paho.Client, userdata: object, flags: Any, reason_code: Any,
                        properties: object) -> None:
        if reason_code.is_failure:
            if (reason_code.value == _UNSUPPORTED_PROTOCOL_VERSION and self._protocol == "5"
                    and self._protocol_choice == "auto"):
                self._fallback_pending = True
            self._attempt_error = f"broker refused the connection: {reason_code}"
            return
        self._connections += 1
        self._session_present = bool(flags.session_present)
        self._pending_subs.clear()
        for topic in self._topics:  # subscribe again on every connect: the broker may have lost the session
            mid = wire.subscribe(client, topic, self._protocol, self._qos)
            if mid is not None:
                self._pending_subs[mid] = topic
        if self._connections > 1 and not self._session_present:
            log.warning("MQTT %s: the broker had no session for client %s (expired, or the broker restarted "
                        "without persistence): messages published while aqnet was away are lost",
                        self._url, self._client_id)
        log.info("MQTT %s to %s as %s (MQTT %s, session %s, attempt %d), subscribing to %s",
                 "connected" if self._connections == 1 else "reconnected", self._url, self._client_id,
                 self._protocol, "resumed" if self._session_present else "new", self._attempts, self._topics)
        self._failures = 0
        self._last_error = None
        self._state = "connected"
        self.connected.set()
        if self._on_connection:
            _post(self._loop, self._on_connection, True)

    def _handle_subscribe(self, client: paho.Client, userdata: object, mid: int, reason_codes: list[Any],
                          properties: object) -> None:
        topic = self._pending_subs.pop(mid, None)
        if topic is None:
            return
        failure = next((rc for rc in reason_codes if rc.is_failure), None)
        first = self._connections == 1
        if failure is None:
            log.info("MQTT %s: subscribed to %s (user %s)", self._url, topic, self._url.username or "anonymous")
            self._refused = tuple(t for t in self._refused if t != topic)
            if first and not self._pending_subs and not self._refused:
                self._start_probes(client)
            if not self._refused and self._state == "refused":
                self._state = "connected"
            return
        self._refuse(topic, str(failure), first)

    def _refuse(self, topic: str, reason: str, first: bool) -> None:
        error = SubscriptionRefused(self._url, topic, self._url.username, reason)
        self._refused = (*(t for t in self._refused if t != topic), topic)
        self._last_error = str(error)
        self._state = "refused"
        log.error("%s", error)
        if first:
            _post(self._loop, self._resolve_subscribed, error)

    def _start_probes(self, client: paho.Client) -> None:
        """Publish one read-access probe per probe-able filter (first connection only)."""
        self._read_probes.start(self._topics, lambda topic, payload: client.publish(topic, payload, qos=1).mid)
        self._probes_settled()

    def _probes_settled(self) -> None:
        if not self._read_probes.pending and not self._refused and self._connections == 1:
            _post(self._loop, self._resolve_subscribed, None)

    def _check_probes(self) -> None:
        """Probes not back by the deadline: the broker accepted the subscription but delivers nothing."""
        for filter_, topic in self._read_probes.overdue():
            self._refuse(filter_, f"it accepted the subscription but delivered nothing published to {topic} "
                         f"within {self._verify_read_s:g} s (no read access in its ACL)", True)

    def _handle_publish(self, client: paho.Client, userdata: object, mid: int, reason_code: Any,
                        properties: object) -> None:
        refused = self._read_probes.published(mid, bool(reason_code.is_failure))
        if refused is None:
            return
        filter_, topic = refused
        log.warning("MQTT %s: read access to %s for user %s not checked: the broker refused the probe publish to "
                    "%s (%s)", self._url, filter_, self._url.username or "anonymous", topic, reason_code)
        self._probes_settled()

    def _resolve_subscribed(self, error: SubscriptionRefused | None) -> None:
        """In the event loop: settle `subscribed` once (the first refusal or the first complete grant wins)."""
        if self.subscribed.done():
            return
        if error is None:
            self.subscribed.set_result(None)
        else:
            self.subscribed.set_exception(error)

    def _handle_disconnect(self, client: paho.Client, userdata: object, flags: object, reason_code: Any,
                           properties: object) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if not was_connected:
            return
        if self._stop.is_set():
            log.info("MQTT disconnected from %s", self._url)
        else:
            self._attempt_error = f"disconnected: {reason_code}"
            log.warning("MQTT disconnected from %s (%s)", self._url, reason_code)
        if self._on_connection:
            _post(self._loop, self._on_connection, False)

    def _handle_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        if bytes(msg.payload).startswith(PROBE_PREFIX):  # our read-access probe (or another aqnet process's)
            if msg.qos:
                client.ack(msg.mid, msg.qos)
            filter_ = self._read_probes.came_back(msg.topic, bytes(msg.payload))
            if filter_ is not None:
                log.info("MQTT %s: read access to %s verified (user %s)", self._url, filter_,
                         self._url.username or "anonymous")
                self._probes_settled()
            return
        self._last_message_at = self._monotonic()
        if self._read_probes.pending:  # a delivery proves read access to its filters; the probes may queue behind
            for filter_ in self._read_probes.delivered(msg.topic):
                log.info("MQTT %s: read access to %s verified by a delivery (user %s)", self._url, filter_,
                         self._url.username or "anonymous")
            self._probes_settled()
        if self._slots is not None and not self._slots.acquire(blocking=False):
            # max_pending messages wait: stop reading (the broker's TCP window fills and it holds back)
            waited_from = self._monotonic()
            while not self._slots.acquire(timeout=0.25):
                if self._stop.is_set():  # not handed over, not acknowledged: the broker sends it again
                    return
            self.held_back_s += self._monotonic() - waited_from
        message = Message(msg.topic, bytes(msg.payload), msg.qos, msg.mid, bool(msg.retain), self._clock(),
                          dup=bool(msg.dup), connection=self._connection)
        self._hand_over(message)

    def _hand_over(self, message: Message) -> None:
        """Network thread: queue `message` for the event loop, waking the loop only when no wake-up is on its
        way (a wake-up is a write to the loop's self-pipe: one per burst of messages, not one per message)."""
        self._inbox.append(message)
        if not self._wake_posted:
            self._wake_posted = True
            _post(self._loop, self._deliver_inbox)

    def _deliver_inbox(self) -> None:
        """Event loop: pass every queued message to `on_message`, in arrival order."""
        self._wake_posted = False  # first: a message appended from now on posts a wake-up of its own
        inbox, deliver = self._inbox, self._on_message
        while inbox:
            deliver(inbox.popleft())

    def taken(self) -> None:
        """One message handed to `on_message` has been taken for handling: its slot is free again."""
        if self._slots is not None:
            self._slots.release()
