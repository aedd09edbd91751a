"""Simulated microsensors: publish aqnet JSON readings over MQTT on a cadence. I/O.

Each microsensor of the network publishes `{"time": ..., "values": {...}}` on its device topic every
`interval_s`, with values from `simulators.signals` (µg/m³ at local conditions for PM, as low-cost sensors
measure). QoS 1, so a broker restart or a slow consumer loses nothing the broker accepted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sensors.mqtt.client import MqttPublisherClient
from sensors.sensor import Sensor
from simulators.signals import CitySignals

__all__ = ["MicrosensorFleet", "aqnet_json_payload"]

log = logging.getLogger(__name__)


def aqnet_json_payload(sensor: Sensor, signals: CitySignals, t: datetime) -> bytes:
    """One aqnet JSON message for `sensor` at time `t` (pure)."""
    # low-cost PM sensors read high in humid air (simulators.signals humidity growth)
    values = {v: round(signals.value(sensor.id, v, t, humidity_growth=True), 2) for v in sensor.variables}
    return json.dumps({"time": t.isoformat(timespec="seconds"), "values": values}).encode()


class MicrosensorFleet:
    """Publishes for every MQTT sensor in `sensors` every `interval_s` until stopped."""

    def __init__(self, mqtt_url: str, sensors: Sequence[Sensor], signals: CitySignals, *, interval_s: float = 10.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), client_id: str = "aqnet-sim-microsensors"
                 ) -> None:
        self._sensors = [s for s in sensors if s.devices and s.devices[0].protocol == "mqtt"]
        self._signals = signals
        self._interval_s = interval_s
        self._clock = clock
        self._client = MqttPublisherClient(mqtt_url, client_id=client_id)
        self.published = 0

    async def run(self) -> None:
        """Publish on the cadence until cancelled."""
        self._client.start()
        try:
            while True:
                self.publish_once()
                await asyncio.sleep(self._interval_s)
        finally:
            self._client.stop()

    def publish_once(self) -> None:
        """Publish one message for every microsensor, stamped with the clock's now."""
        now = self._clock().replace(microsecond=0)
        for sensor in self._sensors:
            topic = sensor.devices[0].topic
            assert topic is not None
            self._client.publish(topic, aqnet_json_payload(sensor, self._signals, now))
            self.published += 1
