"""The commissioning check behind `aqnet sensors test ID`: read every device of one sensor now, through the
daemon's own driver and ingest code, and judge the result. Shell (I/O orchestration) around the pure verdict
`ingest.commission.judge`; what it takes from storage is `storage.commission_store`.

Contract of `check_sensor(sensor, ...)`:
- Modbus devices are read once with `sensors.modbus.read.read_device` (the poller's own read) on links with
  no reconnect backoff; a failed read is a `Gap`, reported as "unreachable" with its reason, never raised.
- MQTT devices: one subscriber (the daemon's `MqttSubscriberClient`, a fresh client id, no lasting session)
  waits up to `wait_s` for a live (not retained) message per device on its topics and attributes it with the
  daemon's `Intake` (topic or hardware serial). On a shared topic (airrohr/+/data) other sensors' messages are
  skipped. A message of this sensor that cannot be decoded is reported as "rejected".
- HTTP devices push and cannot be pulled: the last stored readings (`last_stored`) are shown instead.
- Everything read goes through one `ingest.pipeline.Pipeline` (normalise, calibrations in force, QC), so the
  values and flags are the ones the daemon would store; nothing is written anywhere.
- The verdict is `ingest.commission.judge`'s (its docstring says when a check passes, warns or fails).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Literal

from ingest.calibration import CalibrationBook
from ingest.commission import CommissionReport, DeviceCheck, DeviceStatus, Rejected, judge
from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline
from ingest.reading import Reading
from sensors.modbus.link import LinkRegistry
from sensors.modbus.profile import Profile, load_profile
from sensors.modbus.read import read_device
from sensors.mqtt.client import Message, MqttSubscriberClient, parse_mqtt_url
from sensors.mqtt.directory import UnknownDeviceError
from sensors.mqtt.payloads import PayloadError
from sensors.mqtt.subscriber import Intake
from sensors.reading import Gap, RawReading
from sensors.sensor import MODBUS_PROTOCOLS, Device, Sensor
from storage.live_network import network_ranges

__all__ = ["MqttAccess", "check_sensor", "endpoint_of"]

#: Gap reasons (sensors.modbus.poller) meaning the device was not reached
_UNREACHED = frozenset({"timeout", "connection"})
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class MqttAccess:
    """How to reach the broker the microsensors publish to (the daemon's mqtt settings)."""

    url: str  #: mqtt[s]://[user:password@]host:port; the daemon's user under `aqnet up --secure`
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    protocol: Literal["auto", "5", "3.1.1"] = "auto"


# ---------------------------------------------------------------------------------------------- the check


def endpoint_of(device: Device, mqtt: MqttAccess | None = None) -> str:
    """Where a device is read, as a technician would write it (never a password)."""
    if device.protocol == "modbus-rtu":
        return f"{device.serial_port} unit {device.unit_id}"
    if device.protocol == "modbus-rtu-tcp":
        return f"{device.host}:{device.port} (RTU over TCP) unit {device.unit_id}"
    if device.protocol == "modbus-tcp":
        return f"{device.host}:{device.port} unit {device.unit_id}"
    if device.protocol == "mqtt":
        broker = str(parse_mqtt_url(mqtt.url)) if mqtt is not None else "(no broker)"
        return f"{broker} topic {device.topic}"
    return "HTTP push (POST /intake/airrohr)"


@dataclass(slots=True)
class _Capture:
    """The pipeline's sink and observer: keeps what it would write and what it would dead-letter."""

    readings: list[Reading] = field(default_factory=list)
    rejected: list[tuple[RawReading, str, str]] = field(default_factory=list)

    async def write(self, batch: Sequence[Reading], letters: Sequence[object] = ()) -> object:
        self.readings.extend(batch)  # refusals reach the report through the observer (`rejected_reading`)
        return None

    def rejected_reading(self, raw: RawReading, reason: str, detail: str) -> None:
        self.rejected.append((raw, reason, detail))


class _Observer:
    def __init__(self, capture: _Capture) -> None:
        self._capture = capture

    def written(self, batch: Sequence[Reading], result: object, seconds: float) -> None:
        return None

    def write_failed(self, error: Exception, attempt: int) -> None:
        return None

    def rejected(self, raw: RawReading, reason: str, detail: str) -> None:
        self._capture.rejected_reading(raw, reason, detail)


async def _ingest(sensor: Sensor, raws: list[RawReading], *, clock: Clock, calibrations: CalibrationBook | None,
                  ranges: dict[tuple[str, str], tuple[float, float]], skew_tolerance_s: float) -> _Capture:
    """Run the readings once through the daemon's pipeline into a capturing sink."""
    capture = _Capture()
    pipeline = Pipeline(capture, conditions=ConditionsBook([sensor]), observer=_Observer(capture), clock=clock,
                        ranges=ranges, batch_max=1, batch_max_age_s=0.05, clock_skew_tolerance_s=skew_tolerance_s,
                        calibrations=calibrations)
    if raws:
        await pipeline.submit(raws)  # one submission: met readings first, as the daemon's drivers submit
    pipeline.close()
    await pipeline.run()
    return capture


async def _read_modbus(devices: list[Device], profiles: dict[str, Profile], clock: Clock, timeout_s: float
                       ) -> dict[str, list[RawReading] | Gap | ValueError]:
    """One read of each device, in order (devices behind one gateway share its link, as in the daemon)."""
    links = LinkRegistry(timeout_s=timeout_s, backoff_initial_s=0.0, backoff_max_s=0.0)
    results: dict[str, list[RawReading] | Gap | ValueError] = {}
    try:
        for d in devices:
            try:
                results[d.id] = await read_device(links.link_for(d), d, profiles[d.profile], clock)
            except ValueError as exc:  # conditions the profile requires and the registry does not state, …
                results[d.id] = exc
    finally:
        await links.close()
    return results


@dataclass(slots=True)
class _Heard:
    raws: list[RawReading] | None = None
    rejected: Rejected | None = None


async def _listen_mqtt(sensor: Sensor, devices: list[Device], access: MqttAccess, *, wait_s: float, tz: tzinfo,
                       clock: Clock) -> tuple[dict[str, _Heard], str | None]:
    """Wait up to wait_s for one usable message per device; (what each device sent, broker error if never up)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Message] = asyncio.Queue()
    intake = Intake([sensor], tz=tz)
    client = MqttSubscriberClient(
        access.url, client_id=f"aqnet-test-{sensor.id}-{secrets.token_hex(4)}",
        topics=sorted({d.topic for d in devices if d.topic}), loop=loop, on_message=queue.put_nowait,
        session_expiry_s=0, protocol=access.protocol, ca_file=access.ca_file, cert_file=access.cert_file,
        key_file=access.key_file, reconnect_min_s=0.5, reconnect_max_s=2.0, clock=clock)
    heard: dict[str, _Heard] = {d.id: _Heard() for d in devices}
    deadline = loop.time() + wait_s
    client.start()
    try:
        while any(h.raws is None for h in heard.values()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                message = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                break
            client.ack(message)
            if message.retain:  # an old message kept by the broker: not a live reading
                continue
            _attribute(intake, message, devices, heard)
    finally:
        await asyncio.to_thread(client.stop)
    status = client.status()
    broker_error = None if status.connections else (status.last_error or "no connection within the wait")
    return heard, broker_error


def _attribute(intake: Intake, message: Message, devices: list[Device], heard: dict[str, _Heard]) -> None:
    try:
        resolved = intake.resolve(message.topic, message.payload, message)
    except UnknownDeviceError:
        return  # another sensor's hardware on a shared topic
    except PayloadError as exc:
        if intake.directory.sensor_for_topic(message.topic) is None:
            return  # a shared topic: the message names no identity we could check
        for d in devices:
            if d.topic == message.topic and heard[d.id].raws is None:
                heard[d.id].rejected = Rejected("", exc.reason, f"message on {message.topic}: {exc.detail}")
        return
    for r in resolved.readings:
        h = heard.get(r.device_id)
        if h is not None:
            h.raws = [*(h.raws or []), r]
            h.rejected = None


async def check_sensor(sensor: Sensor, *, lifecycle: str, clock: Clock, calibrations: CalibrationBook | None = None,
                       mqtt: MqttAccess | None = None, wait_s: float = 30.0, timeout_s: float = 2.0,
                       tz: tzinfo = UTC, skew_tolerance_s: float = 300.0, profiles_dir: Path | None = None,
                       last_stored: Callable[[Device], Awaitable[list[Reading]]] | None = None) -> CommissionReport:
    """Read every device of `sensor` now and judge it (see the module docstring); never raises for a device
    that cannot be read."""
    checked_at = clock()
    problems: dict[str, tuple[DeviceStatus, str]] = {}
    profiles: dict[str, Profile] = {}
    modbus: list[Device] = []
    for d in sensor.devices:
        if d.protocol not in MODBUS_PROTOCOLS:
            continue
        try:
            profiles[d.profile] = profiles.get(d.profile) or load_profile(d.profile, profiles_dir)
            modbus.append(d)
        except (ValueError, OSError) as exc:
            problems[d.id] = ("error", f"profile {d.profile}: {exc}")
    raws: dict[str, list[RawReading]] = {}
    for device_id, got in (await _read_modbus(modbus, profiles, clock, timeout_s)).items():
        if isinstance(got, Gap):
            problems[device_id] = ("unreachable" if got.reason in _UNREACHED else "failed",
                                   f"{got.reason}: {got.detail}")
        elif isinstance(got, ValueError):
            problems[device_id] = ("error", str(got))
        else:
            raws[device_id] = got
    heard_rejections: dict[str, Rejected] = {}
    mqtt_devices = [d for d in sensor.devices if d.protocol == "mqtt"]
    if mqtt_devices and mqtt is None:
        for d in mqtt_devices:
            problems[d.id] = ("error", "no MQTT broker to listen to: give --mqtt-url or --config")
    elif mqtt_devices and mqtt is not None:
        heard, broker_error = await _listen_mqtt(sensor, mqtt_devices, mqtt, wait_s=wait_s, tz=tz, clock=clock)
        for d in mqtt_devices:
            h = heard[d.id]
            if h.raws is not None:
                raws[d.id] = h.raws
            elif broker_error is not None:
                problems[d.id] = ("unreachable", f"MQTT broker {parse_mqtt_url(mqtt.url)}: {broker_error}")
            elif h.rejected is not None:
                problems[d.id] = ("rejected", h.rejected.detail)
                heard_rejections[d.id] = h.rejected
            else:
                problems[d.id] = ("no_message", (f"no message on {d.topic} within {wait_s:g} s: is it powered, "
                                                "online, and publishing there with its credentials?"))
    ranges = network_ranges([sensor], profiles)
    capture = await _ingest(sensor, [r for rs in raws.values() for r in rs], clock=clock, calibrations=calibrations,
                            ranges=ranges, skew_tolerance_s=skew_tolerance_s)
    checks: list[DeviceCheck] = []
    for d in sensor.devices:
        endpoint = endpoint_of(d, mqtt)
        if d.protocol == "http":
            stored = await last_stored(d) if last_stored is not None else []
            checks.append(DeviceCheck(d.id, d.protocol, endpoint, "not_pullable",
                                      "pushes over HTTP and cannot be read on demand", tuple(stored), stored=True))
            continue
        readings = tuple(r for r in capture.readings if r.device_id == d.id)
        rejected = tuple(Rejected(raw.variable, reason, detail) for raw, reason, detail in capture.rejected
                         if raw.device_id == d.id)
        if d.id in heard_rejections:
            rejected = (*rejected, heard_rejections[d.id])
        status, detail = problems.get(d.id, ("ok", ""))
        reported = {r.variable for r in readings} | {r.variable for r in rejected}
        missing = tuple(v for v in d.variables if v not in reported) if status == "ok" else ()
        checks.append(DeviceCheck(d.id, d.protocol, endpoint, status, detail, readings, rejected, missing))
    verdict, findings = judge(checks)
    return CommissionReport(sensor.id, sensor.name, sensor.kind, lifecycle, checked_at, tuple(checks), verdict,
                            findings)


