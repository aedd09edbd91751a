"""Stage 1, the MQTT side: the broker clients (paho, inside `sensors.mqtt.client`), the payload formats, the
device directory that maps a message to its sensor and devices, and the subscriber that turns messages into
RawReadings. Pure, except `client` and `subscriber`.

Index: `sensors.mqtt.client` (a package: MqttSubscriberClient, MqttPublisherClient, Message), `.payloads` (a
package: FORMATS, decoders), `.directory` (DeviceDirectory), `.subscriber` (MqttSubscriber, Intake).
"""

from __future__ import annotations

from sensors.mqtt.client import Message, MqttPublisherClient, MqttSubscriberClient, SubscriptionRefused
from sensors.mqtt.directory import DeviceDirectory, UnknownDeviceError
from sensors.mqtt.subscriber import Intake, MqttSubscriber, Rejection

__all__ = ["DeviceDirectory", "Intake", "Message", "MqttPublisherClient", "MqttSubscriber", "MqttSubscriberClient",
           "Rejection", "SubscriptionRefused", "UnknownDeviceError"]
