"""Stage 1, the MQTT clients: the only package that imports paho, whose types never reach callers. I/O.

Index: `sensors.mqtt.client.connection` (broker URL, TLS, backoff, `Message`, `ClientStatus`,
`SubscriptionRefused`; no paho), `.probes` (the read-access probes; no paho), `.session` (`MqttSubscriberClient`:
one persistent, checked, manually acknowledged session), `.publisher` (`MqttPublisherClient`).
"""

from __future__ import annotations

from sensors.mqtt.client.connection import (
    Backoff,
    ClientStatus,
    Message,
    MqttUrl,
    SubscriptionRefused,
    parse_mqtt_url,
    redact_url,
    tls_context,
)
from sensors.mqtt.client.probes import probe_topic
from sensors.mqtt.client.publisher import MqttPublisherClient
from sensors.mqtt.client.session import MqttSubscriberClient

__all__ = ["Backoff", "ClientStatus", "Message", "MqttPublisherClient", "MqttSubscriberClient", "MqttUrl",
           "SubscriptionRefused", "parse_mqtt_url", "probe_topic", "redact_url", "tls_context"]
