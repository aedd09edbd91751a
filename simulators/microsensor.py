"""Simulated microsensors: each sends its model's payloads at its cadence of simulated time, faults included.

Two layers, like the drivers they exercise:
- `SimulatedMicrosensor` (pure): what one microsensor sends at a simulated instant — `step(t)` returns the
  `Outgoing` messages (MQTT topic or HTTP path, body, headers) in send order, with the scenario's faults applied.
  Its only state is what a real device keeps: messages it holds back (out of order) and readings it buffers
  while disconnected. Metadata randomness is seeded from (seed, sensor, t), so a run is reproducible.
- `MicrosensorFleet` (I/O): runs every microsensor on the injected clock, publishing over MQTT (QoS 1) and
  POSTing the airrohr "send to own API" kits to the daemon's `/intake/airrohr`. Device times are the scheduled
  simulated instants, so accelerated runs deliver complete series; sleeps go through `real_seconds`.

Formats (the sensor's device `profile`) and what each device sends (simulators.payloads):
- aqnet-json: `{"time", "values"}` on `aqnet/<id>/readings`; values in the canonical unit, PM per actual m³;
- airrohr: the firmware's `sensordatavalues` with `esp8266id`, on `airrohr/<sensor id>/data` (MQTT bridge) or as a
  POST with `X-Sensor: esp8266-<chip id>`; PM from an SDS011, T/RH(/P in Pa) from a BME280 or a DHT22;
- purpleair: a PA-II local `/json` with lasers A and B on `purpleair/<sensor id>/data`; its
  temperature and humidity are read inside the housing (warmer and drier than the air, as PurpleAir documents).
Low-cost PM reads high in humid air (`CitySignals.value(humidity_growth=True)`).

Faults (simulators.faults.FaultPlan), per sensor and simulated time:
- value faults (flatline, spike, negative, and dropout of one `variable`) through `FaultPlan.value`;
- dropout (no variable): the device sends nothing;
- garbage: the body is replaced by line noise; truncated: the body is cut short;
- duplicate: every message sent twice;
- out_of_order: messages held back `delay_s` (default 180 s) and sent after newer ones;
- clock_skew: device time off by `skew_s` (default +600 s: ahead). airrohr payloads carry no time (aqnet stamps
  them on receipt), so skew and out-of-order do not show in them;
- broker_disconnect: the device is offline from the broker. An aqnet board buffers its readings (at most
  `BUFFER_MAX`) and sends them as one aqnet JSON batch when it reconnects; airrohr and PurpleAir firmware
  do not buffer, so their readings of that time are lost. A broker_disconnect naming no sensors also drops the
  fleet's own MQTT connection and re-makes it when the fault ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import httpx

from sensors.clock import Clock, realtime
from sensors.mqtt.client import MqttPublisherClient
from sensors.network import MicrosensorLink, MicrosensorModel, bundled_microsensor_links, model_of
from sensors.sensor import Sensor
from simulators.faults import FaultKind, FaultPlan
from simulators.payloads import (
    airrohr_payload,
    aqnet_json_batch,
    aqnet_json_payload,
    garbage,
    purpleair_payload,
    truncated,
)
from simulators.signals import CitySignals

__all__ = ["AIRROHR_PATH", "BUFFER_MAX", "MicrosensorFleet", "Outgoing", "SimulatedMicrosensor",
           "microsensors_of"]

log = logging.getLogger(__name__)

#: the daemon's airrohr HTTP intake (aqnet/http/apps.py)
AIRROHR_PATH = "/intake/airrohr"
#: readings an aqnet board keeps while disconnected (a day at a 60 s cadence); older ones are dropped
BUFFER_MAX = 1440
#: PurpleAir's housing: "on average 8 °F higher than ambient" and humidity "on average 4 % lower" (PurpleAir
#: API field descriptions of current_temp_f / current_humidity)
_HOUSING_TEMP_F = 8.0
_HOUSING_RH_PCT = 4.0
_PM = ("pm1", "pm25", "pm10")
_DEFAULT_DELAY_S = 180.0
_DEFAULT_SKEW_S = 600.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message a microsensor sends: over MQTT to `topic`, or an HTTP POST to the path `topic`."""

    sensor_id: str
    transport: Literal["mqtt", "http"]
    topic: str
    payload: bytes
    time: datetime  #: the simulated instant the message was produced for
    headers: tuple[tuple[str, str], ...] = ()


def microsensors_of(sensors: Iterable[Sensor]) -> list[Sensor]:
    """The sensors that report by message (MQTT or HTTP), in order."""
    return [s for s in sensors if s.devices and s.devices[0].protocol in ("mqtt", "http")]


class SimulatedMicrosensor:
    """One microsensor's behaviour: `step(t)` → the messages it sends at simulated instant `t`. Pure."""

    def __init__(self, sensor: Sensor, signals: CitySignals, *, model: MicrosensorModel | None = None,
                 faults: FaultPlan | None = None, seed: int = 0) -> None:
        device = sensor.devices[0]
        if device.protocol not in ("mqtt", "http"):
            raise ValueError(f"microsensor {sensor.id}: device {device.id} is {device.protocol}, not mqtt/http")
        self.sensor = sensor
        self.format = device.profile
        self.transport: Literal["mqtt", "http"] = "http" if device.protocol == "http" else "mqtt"
        if model is None:  # the bundled model of this microsensor, else its format's default
            bundled = bundled_microsensor_links().get(sensor.id)
            link = bundled if bundled is not None and bundled.format == device.profile else MicrosensorLink(
                device.profile, device.protocol, device.hardware_serial)
            model = model_of(link)
        self.model = model
        self.serial = device.hardware_serial
        if self.format != "aqnet-json" and not self.serial:
            raise ValueError(f"microsensor {sensor.id}: format {self.format} needs a hardware serial")
        if self.format == "aqnet-json":
            assert device.topic is not None
            self.topic = device.topic
        elif self.transport == "http":
            self.topic = AIRROHR_PATH
        else:
            assert self.serial is not None
            self.topic = f"{self.format}/{sensor.id}/data"  # the login's topic (sensors.mqtt.broker.acl)
        self._signals = signals
        self._faults = faults or FaultPlan()
        self._seed = seed
        self._tz = ZoneInfo(signals.site.timezone)
        self._held: list[tuple[datetime, Outgoing]] = []
        self._buffer: list[tuple[datetime, dict[str, float | None]]] = []
        self.lost = 0  #: readings lost to disconnects (formats that do not buffer) or buffer overflow

    # -- values ------------------------------------------------------------------------------------------
    def _value(self, variable: str, t: datetime, convert: Callable[[float], float] = float,
               signal_variable: str | None = None) -> float | None:
        """The variable's value at `t` in the payload's unit, with the value faults of `variable` applied."""
        source = signal_variable or variable
        growth = source in _PM

        def signal(at: datetime) -> float:
            return convert(self._signals.value(self.sensor.id, source, at, humidity_growth=growth))
        value = self._faults.value(self.sensor.id, variable, t, signal)
        return None if value is None else float(value)

    def _pressure_hpa(self, mmhg: float) -> float:
        return mmhg * self._signals.mmhg_to_hpa

    def values(self, t: datetime) -> dict[str, float | None]:
        """The readings at `t` as the format carries them (aqnet JSON, airrohr: by variable code)."""
        if self.format == "aqnet-json":
            return {v: self._value(v, t) for v in self.sensor.variables}
        out: dict[str, float | None] = {}
        for instrument in self.model.channels:
            if instrument in ("SDS011", "PMS"):
                out["pm10"], out["pm25"] = self._value("pm10", t), self._value("pm25", t)
            elif instrument in ("BME280", "DHT22"):
                out["temperature"] = self._value("temperature", t)
                out["relativehumidity"] = self._value("relativehumidity", t)
                if instrument == "BME280":
                    out["pressure"] = self._value("pressure", t, lambda mmhg: self._pressure_hpa(mmhg) * 100)
        return out

    def _purpleair_values(self, t: datetime) -> tuple[dict[str, float | None], dict[str, float | None],
                                                      dict[str, float | None]]:
        # PM1 ≈ 0.7 × PM2.5 and laser B within ±4 % of laser A, slowly drifting: illustrative simulator choices
        a: dict[str, float | None] = {"pm25": self._value("pm25", t), "pm10": self._value("pm10", t)}
        a["pm1"] = self._value("pm1", t, lambda pm25: 0.7 * pm25, signal_variable="pm25")
        phase = int.from_bytes(hashlib.blake2b(self.sensor.id.encode(), digest_size=2).digest(), "big")
        ratio = 1 + 0.04 * math.sin(2 * math.pi * t.timestamp() / 21600 + phase)
        b = {code: None if v is None else v * ratio for code, v in a.items()}
        met = {"temperature": self._value("temperature", t, lambda c: c * 9 / 5 + 32 + _HOUSING_TEMP_F),
               "relativehumidity": self._value("relativehumidity", t, lambda rh: max(0.0, rh - _HOUSING_RH_PCT)),
               "pressure": self._value("pressure", t, self._pressure_hpa)}
        return a, (b if "b" in self.model.channels else None), met  # type: ignore[return-value]

    # -- messages ----------------------------------------------------------------------------------------
    def _body(self, device_t: datetime, rng: random.Random, values: dict[str, float | None] | None,
              t: datetime) -> bytes:
        if self.format == "aqnet-json":
            return aqnet_json_payload(device_t, values if values is not None else self.values(t), self._tz)
        if self.format == "airrohr":
            assert self.serial is not None
            return airrohr_payload(self.serial, self.model.channels, values or self.values(t), rng)
        if self.format == "purpleair":
            assert self.serial is not None
            a, b, met = self._purpleair_values(t)
            return purpleair_payload(self.serial, device_t, a, b, met, rng)
        raise ValueError(f"microsensor {self.sensor.id}: no simulator for payload format {self.format!r}")

    def _message(self, t: datetime, body: bytes) -> Outgoing:
        headers: tuple[tuple[str, str], ...] = ()
        if self.transport == "http":
            headers = (("X-Sensor", f"esp8266-{self.serial}"), ("Content-Type", "application/json"))
        return Outgoing(self.sensor.id, self.transport, self.topic, body, t, headers)

    def step(self, t: datetime) -> list[Outgoing]:
        """The messages sent at simulated instant `t` (its reading, plus any released or buffered ones)."""
        sid, plan = self.sensor.id, self._faults
        rng = random.Random(f"{self._seed}|{sid}|{t.timestamp()}")
        if any(f.kind is FaultKind.DROPOUT and f.variable is None for f in plan.active(sid, t)):
            return []  # silent: what it holds back stays held until it speaks again
        skew = plan.has(FaultKind.CLOCK_SKEW, sid, t)
        device_t = t + timedelta(seconds=float(skew.params.get("skew_s", _DEFAULT_SKEW_S))) if skew else t
        values = None if self.format == "purpleair" else self.values(t)
        if plan.has(FaultKind.BROKER_DISCONNECT, sid, t):
            if self.format == "aqnet-json" and values is not None:
                self._buffer.append((device_t, values))
                if len(self._buffer) > BUFFER_MAX:
                    del self._buffer[0]
                    self.lost += 1
            else:
                self.lost += 1
            return []
        out: list[Outgoing] = []
        if self._buffer:
            out.append(self._message(t, aqnet_json_batch(self._buffer, self._tz)))
            self._buffer = []
        body = self._body(device_t, rng, values, t)
        if plan.has(FaultKind.GARBAGE, sid, t):
            body = garbage(rng)
        elif plan.has(FaultKind.TRUNCATED, sid, t):
            body = truncated(body, rng)
        message = self._message(t, body)
        late = plan.has(FaultKind.OUT_OF_ORDER, sid, t)
        if late:
            self._held.append((t + timedelta(seconds=float(late.params.get("delay_s", _DEFAULT_DELAY_S))),
                               message))
        else:
            out.append(message)
            if plan.has(FaultKind.DUPLICATE, sid, t):
                out.append(message)
        released = [m for at, m in self._held if at <= t]
        self._held = [(at, m) for at, m in self._held if at > t]
        return out + released


class MicrosensorFleet:
    """Runs every microsensor of `sensors` at its cadence of simulated time until cancelled. I/O.

    Args:
        mqtt_url: the broker (`mqtt://host:port`).
        sensors: the network; the ones reporting over MQTT or HTTP are simulated.
        signals: the city's values (its episodes included).
        interval_s: each microsensor's cadence, in simulated seconds. Each one has its own phase inside the
            interval (from its id), so the fleet's messages are spread out, as in a real network.
        clock: simulated now (a sensors.clock.Clock, e.g. a SimClock).
        real_seconds: simulated seconds → real seconds to sleep (SimClock.real_seconds); default identity.
        faults: the scenario's fault plan.
        links: the microsensors' links, for their models (default: the bundled model, else the format's).
        http_url: the daemon's HTTP base URL (`http://host:port`) for the airrohr kits that POST; without it
            their messages are counted in `skipped` and not sent.
        seed: seeds the payloads' metadata.
        http_transport: an httpx transport to POST through (tests: httpx.ASGITransport over the app).
        http_credentials: sensor id → password of its HTTP basic credentials (the daemon's intake requires them,
            as the airrohr firmware's "send to own API" sends them); a kit without credentials POSTs without.
    """

    def __init__(self, mqtt_url: str, sensors: Iterable[Sensor], signals: CitySignals, *, interval_s: float = 60.0,
                 clock: Clock = realtime, real_seconds: Callable[[float], float] | None = None,
                 faults: FaultPlan | None = None, links: Mapping[str, MicrosensorLink] | None = None,
                 http_url: str | None = None, seed: int = 0, client_id: str = "aqnet-sim-microsensors",
                 max_sleep_s: float = 0.5, http_transport: httpx.AsyncBaseTransport | None = None,
                 http_credentials: Mapping[str, str] | None = None) -> None:
        if not interval_s > 0:
            raise ValueError(f"MicrosensorFleet: interval_s must be > 0, got {interval_s}")
        known = links or {}
        self._faults = faults or FaultPlan()
        self.devices = []
        for sensor in microsensors_of(sensors):
            link = known.get(sensor.id)
            model = model_of(link) if link is not None and link.format == sensor.devices[0].profile else None
            self.devices.append(SimulatedMicrosensor(sensor, signals, model=model, faults=self._faults, seed=seed))
        self._interval = timedelta(seconds=interval_s)
        self._clock = clock
        self._real_seconds = real_seconds or (lambda s: s)
        self._mqtt_url = mqtt_url
        self._client_id = client_id
        self._client: MqttPublisherClient | None = None
        self._http_url = http_url.rstrip("/") if http_url else None
        self._http_transport = http_transport
        self._http_credentials = dict(http_credentials or {})
        self._max_sleep_s = max_sleep_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self._http_slots = asyncio.Semaphore(16)
        self.published = 0  #: messages handed to MQTT or answered 2xx over HTTP
        self.by_sensor: Counter[str] = Counter()  #: messages sent, per sensor
        self.skipped = 0  #: messages not sent (no connection, no http_url)
        self.http_failures = 0  #: POSTs not answered 2xx
        self.reconnects = 0  #: fleet-wide broker disconnects made by a fault

    def _phase(self, sensor_id: str) -> timedelta:
        digest = hashlib.blake2b(sensor_id.encode(), digest_size=4).digest()
        return timedelta(seconds=int.from_bytes(digest, "big") % max(1, int(self._interval.total_seconds())))

    def _first_due(self, sensor_id: str, now: datetime) -> datetime:
        """The first scheduled instant at or after `now`: a multiple of the interval since the epoch, + phase."""
        epoch = datetime(1970, 1, 1, tzinfo=now.tzinfo)
        step = self._interval.total_seconds()
        phase = self._phase(sensor_id)
        k = math.ceil(((now - epoch) - phase).total_seconds() / step)
        return epoch + phase + timedelta(seconds=k * step)

    def _connect(self) -> None:
        self._client = MqttPublisherClient(self._mqtt_url, client_id=self._client_id)
        self._client.start()

    def _sync_connection(self, now: datetime) -> None:
        """Drop the fleet's connection during a broker_disconnect naming no sensors; re-make it after."""
        down = any(f.kind is FaultKind.BROKER_DISCONNECT and not f.sensors and f.start <= now < f.end
                   for f in self._faults.faults)
        if down and self._client is not None:
            log.info("simulated broker disconnect of every microsensor at %s", now.isoformat())
            self._client.stop()
            self._client = None
            self.reconnects += 1
        elif not down and self._client is None:
            self._connect()

    async def run(self) -> None:
        """Send on the cadence until cancelled; pending HTTP POSTs are awaited (up to 5 s) on the way out."""
        if self._http_url and any(d.transport == "http" for d in self.devices):
            # 35 s: the daemon answers once the readings are durable, or 503 after 30 s
            self._http = httpx.AsyncClient(base_url=self._http_url, timeout=35.0, transport=self._http_transport)
        now = self._clock()
        due = {d.sensor.id: self._first_due(d.sensor.id, now) for d in self.devices}
        try:
            while True:
                now = self._clock()
                self._sync_connection(now)
                for device in self.devices:
                    sid = device.sensor.id
                    while due[sid] <= now:
                        for message in device.step(due[sid]):
                            self._send(message)
                        due[sid] += self._interval
                    await asyncio.sleep(0)  # a fleet catching up never starves the loop (HTTP posts, others)
                wait_s = (min(due.values()) - now).total_seconds() if due else 1.0
                await asyncio.sleep(min(max(self._real_seconds(wait_s), 0.001), self._max_sleep_s))
        finally:
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=5)
            for task in self._tasks:
                task.cancel()
            if self._http is not None:
                await self._http.aclose()
            if self._client is not None:
                self._client.stop()
                self._client = None

    def _send(self, message: Outgoing) -> None:
        if message.transport == "mqtt":
            if self._client is None:
                self.skipped += 1
                return
            self._client.publish(message.topic, message.payload)
            self.published += 1
            self.by_sensor[message.sensor_id] += 1
            return
        if self._http is None:
            if not self.skipped:
                log.warning("microsensor %s: airrohr POST not sent: the fleet has no http_url", message.sensor_id)
            self.skipped += 1
            return
        task = asyncio.get_running_loop().create_task(self._post(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, message: Outgoing) -> None:
        assert self._http is not None
        async with self._http_slots:
            try:
                password = self._http_credentials.get(message.sensor_id)
                auth = (message.sensor_id, password) if password else httpx.USE_CLIENT_DEFAULT  # the client has none
                response = await self._http.post(message.topic, content=message.payload,
                                                  headers=dict(message.headers), auth=auth)
            except httpx.HTTPError as exc:
                self.http_failures += 1
                log.warning("microsensor %s: POST %s%s failed: %s", message.sensor_id, self._http_url,
                            message.topic, exc)
                return
        if response.is_success:
            self.published += 1
            self.by_sensor[message.sensor_id] += 1
        else:
            self.http_failures += 1
            log.warning("microsensor %s: POST %s answered %s: %s", message.sensor_id, message.topic,
                        response.status_code, response.text[:200])
