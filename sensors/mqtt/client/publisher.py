"""The publishing MQTT client (`MqttPublisherClient`: simulated microsensors, the alert channel), over paho. I/O.

Part of `sensors.mqtt.client` (the only package that imports paho). MQTT 5; publishing has no session to resume,
so paho's own reconnect and outgoing queue are enough here.
"""

from __future__ import annotations

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from sensors.mqtt.client.connection import parse_mqtt_url, tls_context

__all__ = ["MqttPublisherClient"]


class MqttPublisherClient:
    """A small publishing client (simulated microsensors, alert channel), MQTT 5, reconnecting by itself.

    Publishing has no session to resume, so paho's own reconnect and outgoing queue are enough here.
    """

    def __init__(self, url: str, *, client_id: str, ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None) -> None:
        self._url = parse_mqtt_url(url)
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        if self._url.username:
            self._client.username_pw_set(self._url.username, self._url.password)
        tls = tls_context(self._url, ca_file, cert_file, key_file)
        if tls is not None:
            self._client.tls_set_context(tls)
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
