"""The MQTT connection's settings and values, without paho: the broker URL, TLS, the reconnect backoff, a received
`Message`, a subscriber's `ClientStatus` and `SubscriptionRefused`. Pure, except `tls_context`, which reads the
certificate files it is given.

Part of `sensors.mqtt.client`, which re-exports these names; the paho clients (`session`, `publisher`) take them.
"""

from __future__ import annotations

import random
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import unquote, urlsplit

from sensors.redact import redact_url

__all__ = ["Backoff", "ClientStatus", "Message", "MqttUrl", "Protocol", "SubscriptionRefused", "parse_mqtt_url",
           "redact_url", "tls_context"]

#: the MQTT protocol a subscriber speaks: "auto" tries MQTT 5 and falls back to 3.1.1 when the broker refuses it
Protocol = Literal["auto", "5", "3.1.1"]
_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}


@dataclass(frozen=True, slots=True)
class MqttUrl:
    """A broker address parsed from `mqtt[s]://[user:password@]host[:port]`."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False  #: mqtts:// (or ssl://)

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"  # never the password


def parse_mqtt_url(url: str) -> MqttUrl:
    """Parse `mqtt://host:port` or `mqtts://host:port` (default ports 1883 / 8883); ValueError names the URL
    without its password."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ValueError(f"MQTT URL {redact_url(url)!r}: expected mqtt://host:port or mqtts://host:port")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"MQTT URL {redact_url(url)!r}: port: expected 1..65535") from None
    tls = _SCHEMES[parts.scheme]
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return MqttUrl(parts.hostname, port or (8883 if tls else 1883), username, password, tls)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: doubling from `min_s` up to `max_s`, jittered. Pure.

    Attempt n (1 = the first retry) waits a uniform draw from [c/2, c] with c = min(max_s, min_s·2ⁿ), never below
    `min_s`: e.g. min 1 s, max 30 s → 1–2 s, 2–4 s, 4–8 s, 8–16 s, 15–30 s, 15–30 s, … The jitter keeps
    several aqnet processes (or a restarted broker's many clients) from reconnecting in lockstep.
    """

    min_s: float = 1.0
    max_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.min_s <= self.max_s:
            raise ValueError(f"MQTT reconnect backoff: expected 0 < min_s <= max_s, got {self.min_s}, {self.max_s}")

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (>= 1)."""
        ceiling = min(self.max_s, self.min_s * 2.0 ** min(max(attempt, 1), 64))
        return rng.uniform(max(self.min_s, ceiling / 2), max(self.min_s, ceiling))


@dataclass(frozen=True, slots=True)
class Message:
    """One received MQTT message; `mid`, `qos` and `connection` identify it for `ack`."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool
    received_at: datetime
    dup: bool = False  #: the broker's DUP flag: a redelivery of a message not acknowledged before
    connection: int = 0  #: which connection of the client delivered it (0: unknown, acked on the current one)


class SubscriptionRefused(RuntimeError):
    """The broker refused a subscription (SUBACK failure): `topic`, `username` and the broker's `reason`."""

    def __init__(self, url: MqttUrl, topic: str, username: str | None, reason: str) -> None:
        super().__init__(f"MQTT {url}: the broker refused the subscription to {topic!r} for user "
                         f"{username or '(anonymous)'}: {reason}; grant that user read access to the topic in the "
                         "broker's ACL (aqnet broker daemon-user) or fix mqtt.topics / the username in mqtt.url")
        self.topic = topic
        self.username = username
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ClientStatus:
    """A snapshot of a subscriber connection, for /status and metrics."""

    state: str  #: new, connecting, connected, backoff, stopped
    protocol: str  #: "5" or "3.1.1"
    connection_attempts: int  #: TCP/MQTT connects tried since start
    connections: int  #: connects the broker accepted
    consecutive_failures: int
    last_error: str | None
    last_message_at: float | None  #: time.monotonic() of the last message, None before the first
    session_present: bool | None  #: the broker still had our session at the last connect
    refused: tuple[str, ...] = ()  #: topics whose subscription the broker refused at the last connect


def tls_context(url: MqttUrl, ca_file: str | None, cert_file: str | None, key_file: str | None,
                 ) -> ssl.SSLContext | None:
    """The TLS context for an mqtts:// URL (None for mqtt://); file options on a plain URL are an error."""
    if not url.tls:
        given = [n for n, v in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file)) if v]
        if given:
            raise ValueError(f"MQTT {url}: {', '.join(given)} given but the URL is not TLS; use mqtts://")
        return None
    if key_file and not cert_file:
        raise ValueError(f"MQTT {url}: key_file given without cert_file")
    context = ssl.create_default_context(cafile=ca_file)  # verifies the broker's certificate and host name
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context
