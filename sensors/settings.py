"""The sensors stage's settings sections: `mqtt`, `modbus`, `network`, `clock`. Pure (sensors).

Pydantic models of the daemon's YAML file, validated at the edge.

Every field carries its description (README's "Configuration" table); `aqnet.config.Settings` composes these
sections, under the same keys, with the other stages' (`ingest.settings`, `storage.settings`, `alerts.settings`).
`Section` is the base of every section: frozen, unknown keys refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sensors.clock import Clock, SimClock, realtime
from sensors.mqtt.client import parse_mqtt_url
from sensors.network import MicrosensorLink, StationLink, bundled_network
from sensors.redact import redact_url
from sensors.sensor import Sensor

__all__ = ["ClockSettings", "Endpoint", "MicrosensorSettings", "ModbusSettings", "MqttSettings", "NetworkSettings",
           "Section"]


class Section(BaseModel):
    """The base of every settings section: frozen, and an unknown key is an error (never ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(Section):
    url: str = Field(description="`mqtt://[user:password@]host:port`.")
    topics: list[str] = Field(default=["aqnet/+/readings", "airrohr/+/data", "purpleair/+/data"], description=(
        "Subscriptions, one per payload format's topic template (`$share/<group>/…` splits load between aqnet "
        "processes)."))
    share_group: str = Field(default="aqnet", pattern=r"^[^/+#]+$", description=(
        "The shared-subscription group of the intake processes when `ingest.processes` > 1: each filter of "
        "`mqtt.topics` is subscribed as `$share/<share_group>/<filter>`."))
    client_id: str = Field(default="aqnet-ingest", description=(
        "Stable client id: the broker keeps the session under it."))
    receive_maximum: Annotated[int, Field(ge=1, le=65535)] = Field(default=1000, description=(
        "MQTT 5 Receive Maximum: unacknowledged messages the broker may send at once."))
    session_expiry_s: Annotated[int, Field(ge=0)] = Field(default=7 * 24 * 3600, description=(
        "How long the broker keeps the session while aqnet is away."))
    verify_read_s: Annotated[float, Field(ge=1)] = Field(default=30.0, description=(
        "How long the start-up read-access probes may take to come back (each message delivered meanwhile counts "
        "for its filters) before the daemon refuses to start, naming the topic and the user: long enough for a "
        "restart under load behind a session's backlog, short enough to say soon that a login cannot read."))
    protocol: Literal["auto", "5", "3.1.1"] = Field(default="auto", description=(
        "`auto` (MQTT 5, falling back to 3.1.1 when the broker refuses it), `5` or `3.1.1`."))
    ca_file: str | None = Field(default=None, description="mqtts: CA bundle that verifies the broker.")
    cert_file: str | None = Field(default=None, description="mqtts: client certificate.")
    key_file: str | None = Field(default=None, description="mqtts: client key.")
    reconnect_min_s: Annotated[float, Field(gt=0)] = Field(default=1.0, description=(
        "First reconnect delay: it doubles up to `mqtt.reconnect_max_s`, with jitter."))
    reconnect_max_s: Annotated[float, Field(gt=0)] = Field(default=30.0, description="Longest reconnect delay.")

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, v: str) -> str:
        try:
            parse_mqtt_url(v)
        except ValueError:
            raise ValueError(f"expected mqtt://host:port or mqtts://host:port, got {redact_url(v)!r}") from None
        return v


class ModbusSettings(Section):
    poll_interval_s: Annotated[float, Field(gt=0)] = Field(default=10.0, description="How often each station is read.")
    timeout_s: Annotated[float, Field(gt=0)] = Field(default=2.0, description="Per-request timeout.")


class Endpoint(Section):
    protocol: Literal["modbus-tcp", "modbus-rtu-tcp", "modbus-rtu"] = Field(default="modbus-tcp", description=(
        "How the station's analysers are reached: a Modbus TCP gateway, RTU framed over TCP (serial-to-Ethernet "
        "gateway), or an RS-485 bus."))
    host: str | None = Field(default=None, description="modbus-tcp, modbus-rtu-tcp: the gateway's address.")
    port: Annotated[int, Field(ge=1, le=65535)] | None = Field(default=None, description=(
        "modbus-tcp, modbus-rtu-tcp: the gateway's port."))
    serial_port: str | None = Field(default=None, description="modbus-rtu: the RS-485 adapter, e.g. /dev/ttyUSB0.")
    baudrate: Annotated[int, Field(gt=0)] | None = Field(default=None, description=(
        "modbus-rtu: line speed (default 19200)."))
    parity: Literal["N", "E", "O"] | None = Field(default=None, description=(
        "modbus-rtu: parity, N, E or O (default E)."))
    stopbits: Literal[1, 2] | None = Field(default=None, description="modbus-rtu: stop bits, 1 or 2 (default 1).")
    bytesize: Literal[7, 8] | None = Field(default=None, description="modbus-rtu: data bits, 7 or 8 (default 8).")
    poll_interval_s: Annotated[float, Field(gt=0)] | None = Field(default=None, description=(
        "This station's own poll interval (default `modbus.poll_interval_s`)."))

    @model_validator(mode="after")
    def _link(self) -> Endpoint:
        if self.protocol == "modbus-rtu":
            if not self.serial_port:
                raise ValueError("modbus-rtu needs serial_port")
            if self.host or self.port:
                raise ValueError("modbus-rtu takes serial_port, not host/port")
        else:
            if not self.host or not self.port:
                raise ValueError(f"{self.protocol} needs host and port")
            if any(v is not None for v in (self.serial_port, self.baudrate, self.parity, self.stopbits,
                                           self.bytesize)):
                raise ValueError(f"{self.protocol} takes host and port, not serial line settings")
        return self


class MicrosensorSettings(Section):
    format: Literal["aqnet-json", "airrohr", "purpleair"] = Field(default="aqnet-json", description=(
        "Payload format: aqnet-json, airrohr or purpleair."))
    transport: Literal["mqtt", "http"] = Field(default="mqtt", description=(
        "mqtt, or http: airrohr's \"send to own API\" POST to /intake/airrohr."))
    hardware_serial: str | None = Field(default=None, description=(
        "The device's own identity in its payload (airrohr esp8266id, PurpleAir MAC), required by those formats."))
    devices: dict[str, list[str]] = Field(default={}, description=(
        "Device suffix → the payload channels it takes; empty: one device with every channel."))

    @model_validator(mode="after")
    def _identity(self) -> MicrosensorSettings:
        if self.format != "aqnet-json" and not self.hardware_serial:
            raise ValueError(f"format {self.format} identifies the device by hardware_serial: give it")
        if self.transport == "http" and self.format != "airrohr":
            raise ValueError("transport http is the airrohr intake: format must be airrohr")
        return self


class NetworkSettings(Section):
    timezone: str = Field(default="America/Bogota", description=(
        "The network's standard time zone (device times without offset, daily periods)."))
    bundled: bool = Field(default=True, description="Use the bundled 19 stations and 25 microsensors.")
    stations: dict[str, Endpoint] = Field(default={}, description=(
        "Station code → how its analysers are reached: `{host, port}` of a Modbus TCP gateway; `{protocol: "
        "modbus-rtu-tcp, host, port}` for RTU framed over TCP (serial-to-Ethernet gateways); `{protocol: "
        "modbus-rtu, serial_port, baudrate, parity, stopbits, bytesize}` for an RS-485 bus (default 19200 8E1); "
        "optional `poll_interval_s`."))
    microsensor_cadence_s: Annotated[float, Field(gt=0)] = Field(default=60.0, description=(
        "Expected interval between a microsensor's messages (hourly completeness)."))
    microsensors: dict[str, MicrosensorSettings] = Field(default={}, description=(
        "Microsensor id → `{format: aqnet-json|airrohr|purpleair, transport: mqtt|http, hardware_serial, devices: "
        "{suffix: [channels]}}` (default aqnet JSON on its topic)."))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


    def station_links(self) -> dict[str, StationLink]:
        """Station code → how its analysers are reached, as `sensors.network` takes it."""
        return {code: StationLink(**e.model_dump(exclude={"poll_interval_s"})) for code, e in self.stations.items()}

    def microsensor_links(self) -> dict[str, MicrosensorLink]:
        """Microsensor id → its payload format, transport, identity and channel split."""
        return {sid: MicrosensorLink(m.format, m.transport, m.hardware_serial,
                                     tuple((k, tuple(v)) for k, v in m.devices.items()))
                for sid, m in self.microsensors.items()}

    def configured_sensors(self) -> list[Sensor]:
        """The network this configuration describes (the bundled one at its endpoints, or none): what the daemon
        seeds the registry with and what the simulators serve."""
        if not self.bundled:
            return []
        return bundled_network(self.station_links(), microsensor_links=self.microsensor_links())


class ClockSettings(Section):
    """Simulated time shared by `aqnet up --speed X`'s simulators and daemon (sensors.clock.SimClock)."""

    speed: Annotated[float, Field(ge=1)] = Field(default=1.0, description=(
        "Simulated time runs this many times faster than the wall clock (`aqnet up --speed` sets it)."))
    sim_origin: datetime | None = Field(default=None, description=(
        "Simulated time (with its UTC offset) at `clock.wall_origin`; required when `clock.speed` > 1."))
    wall_origin: float | None = Field(default=None, description=(
        "Unix time at which simulated time was `clock.sim_origin`."))

    @model_validator(mode="after")
    def _origin(self) -> ClockSettings:
        if self.speed > 1 and (self.sim_origin is None or self.wall_origin is None):
            raise ValueError("speed > 1 needs sim_origin and wall_origin")
        if self.sim_origin is not None and self.sim_origin.tzinfo is None:
            raise ValueError("sim_origin: expected a time with its UTC offset")
        return self

    def clock(self) -> Clock:
        """The clock these settings describe."""
        if self.speed == 1 and self.sim_origin is None:
            return realtime
        assert self.sim_origin is not None
        assert self.wall_origin is not None
        return SimClock(self.sim_origin, self.wall_origin, self.speed)
