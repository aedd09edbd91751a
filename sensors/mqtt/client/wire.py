"""The paho calls of a persistent subscriber session: a client for MQTT 5 or 3.1.1, the CONNECT with the session's
properties, a SUBSCRIBE, a clean close. I/O (paho); part of `sensors.mqtt.client`, used by its `session`.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Sequence

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from sensors.mqtt.client.connection import MqttUrl

__all__ = ["close", "connect", "new_client", "queue_pubacks", "subscribe"]

#: PUBACK's fixed header byte (MQTT 3.1.1 § 3.4, MQTT 5 § 3.4): packet type 4, no flags
_PUBACK = 0x40


def new_client(protocol: str, client_id: str, url: MqttUrl, tls: ssl.SSLContext | None,
               connect_timeout_s: float) -> paho.Client:
    """A paho client with manual acks and no reconnect of its own: MQTT 5, or 3.1.1 with clean_session=False."""
    if protocol == "5":
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5,
                             reconnect_on_failure=False, manual_ack=True)
    else:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311,
                             clean_session=False, reconnect_on_failure=False, manual_ack=True)
    if url.username:
        client.username_pw_set(url.username, url.password)
    if tls is not None:
        client.tls_set_context(tls)
    client.connect_timeout = connect_timeout_s
    # paho writes from the calling thread when no loop thread of its own runs; this no-op makes every
    # write (acks from the event loop included) wake our select() instead, so one thread owns the socket
    client.on_socket_register_write = lambda c, u, s: None
    return client


def connect(client: paho.Client, url: MqttUrl, protocol: str, *, keepalive_s: int, session_expiry_s: int,
            receive_maximum: int) -> None:
    """CONNECT (blocking); MQTT 5 with clean start off, the session expiry and the Receive Maximum. OSError when
    refused, unreachable, or the TLS handshake fails."""
    if protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho types no __init__
        props.SessionExpiryInterval = session_expiry_s
        props.ReceiveMaximum = receive_maximum
        client.connect(url.host, url.port, keepalive=keepalive_s, clean_start=False, properties=props)
    else:
        client.connect(url.host, url.port, keepalive=keepalive_s)


def subscribe(client: paho.Client, topic: str, protocol: str, qos: int) -> int | None:
    """SUBSCRIBE to `topic`; its packet id (None when paho could not send it)."""
    if protocol == "5":  # retained messages only for a new subscription, not on every reconnect
        _, mid = client.subscribe((topic, SubscribeOptions(
            qos=qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)))
    else:
        _, mid = client.subscribe(topic, qos=qos)
    return mid


def queue_pubacks(client: paho.Client, mids: Sequence[int]) -> None:
    """Queue a PUBACK for each QoS 1 packet id in `mids`, in order, as one write.

    `paho.Client.ack` queues each PUBACK as a packet of its own and wakes the network thread for each (a system
    call from the acknowledging thread, then a send per PUBACK on the network thread): a batch of hundreds of
    messages paid that hundreds of times. Here the PUBACKs (4 bytes each, success: MQTT 5 § 3.4.2.1 lets the reason
    code and properties be left out) go into paho's write queue as one packet, with one wake-up. That queue is
    paho 2.x's `Client._packet_queue` (pinned `paho-mqtt>=2.2,<3`); without it, one `ack` per packet id."""
    queue = getattr(client, "_packet_queue", None)
    if queue is None or len(mids) == 1:
        for mid in mids:
            client.ack(mid, 1)
        return
    packet = b"".join(struct.pack("!BBH", _PUBACK, 2, mid) for mid in mids)
    queue(_PUBACK, packet, 0, 0)


def close(client: paho.Client) -> None:
    """Send DISCONNECT if the socket is still open (the session stays with the broker)."""
    for _ in range(5):
        if client.socket() is None:
            break
        client.disconnect()
        if client.loop(timeout=0.2) != MQTTErrorCode.MQTT_ERR_SUCCESS:
            break
