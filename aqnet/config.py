"""The daemon's settings: one immutable, validated object loaded from a YAML file.

Errors name the file and the key path: `aqnet.yaml: mqtt.url: expected mqtt://host:port, got 'x'`. Every key is
documented in README's "Configuration" section (a test checks it).
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerts.signing import MAX_ACK_LINK_TTL_H
from sensors.clock import Clock, SimClock, realtime
from sensors.mqtt.client import parse_mqtt_url
from sensors.network import MicrosensorLink, StationLink, bundled_network
from sensors.redact import redact_url
from sensors.sensor import Sensor

__all__ = ["ConfigError", "HttpSettings", "ListenerSettings", "Settings", "load_settings"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str  #: libpq URL of the TimescaleDB database
    pool_min_size: Annotated[int, Field(ge=1)] = 1
    pool_max_size: Annotated[int, Field(ge=1)] = 4
    #: how long a request waits for a pooled connection before it fails (psycopg_pool's `timeout`)
    pool_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    migrate_on_start: bool = True


class MqttSettings(_Section):
    url: str  #: mqtt://[user:password@]host:port, or mqtts:// for TLS
    topics: list[str] = ["aqnet/+/readings", "airrohr/+/data", "purpleair/+/data"]
    client_id: str = "aqnet-ingest"
    receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 1000
    session_expiry_s: Annotated[int, Field(ge=0)] = 7 * 24 * 3600
    protocol: Literal["auto", "5", "3.1.1"] = "auto"  #: auto: MQTT 5, falling back to 3.1.1 if refused
    ca_file: str | None = None  #: mqtts: CA bundle to verify the broker
    cert_file: str | None = None  #: mqtts: client certificate
    key_file: str | None = None  #: mqtts: client key
    reconnect_min_s: Annotated[float, Field(gt=0)] = 1.0  #: first reconnect delay (doubles, with jitter)
    reconnect_max_s: Annotated[float, Field(gt=0)] = 30.0

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, v: str) -> str:
        try:
            parse_mqtt_url(v)
        except ValueError:
            raise ValueError(f"expected mqtt://host:port or mqtts://host:port, got {redact_url(v)!r}") from None
        return v


class ModbusSettings(_Section):
    poll_interval_s: Annotated[float, Field(gt=0)] = 10.0
    timeout_s: Annotated[float, Field(gt=0)] = 2.0


class IngestSettings(_Section):
    batch_max: Annotated[int, Field(ge=1)] = 200  #: submissions (messages or station polls) per batch
    batch_max_age_s: Annotated[float, Field(gt=0)] = 1.0
    queue_max: Annotated[int, Field(ge=1)] = 10_000
    clock_skew_tolerance_s: Annotated[float, Field(ge=0)] = 300.0  #: device time ahead of receipt → CLOCK_SKEW
    #: a device time further back than this is refused (dead letter `device_time`): ingest/plausibility.py
    device_time_past_days: Annotated[float, Field(gt=0)] = 30.0
    #: a device time further ahead than this is refused (dead letter `device_time`); within it: CLOCK_SKEW
    device_time_future_s: Annotated[float, Field(ge=0)] = 86_400.0
    calibration_refresh_s: Annotated[float, Field(gt=0)] = 300.0  #: how often calibrations are reloaded


class StorageSettings(_Section):
    spool_dir: str = "var/spool"  #: store-and-forward spool: batches kept on disk while the database is unreachable
    spool_max_bytes: Annotated[int, Field(gt=0)] = 1 << 30  #: bound on the spool's files; full: intake stops acking
    spool_near_full_fraction: Annotated[float, Field(gt=0, le=1)] = 0.8  #: alarm (log + metric) from here on
    replay_retry_s: Annotated[float, Field(gt=0)] = 2.0  #: pause between replay attempts while the database is down
    unreachable_after_s: Annotated[float, Field(gt=0)] = 10.0  #: a write without an answer this long → spool it


class ListenerSettings(_Section):
    """One HTTP listener (aqnet.http_server): where it binds, its TLS files and its bounds."""

    host: str = "127.0.0.1"  #: bind address; 0.0.0.0 only behind a firewall that admits who must reach it
    port: Annotated[int, Field(ge=0, le=65535)]  #: 0: a free port (tests)
    tls_cert_file: str | None = None  #: PEM certificate (chain): the listener speaks HTTPS
    tls_key_file: str | None = None  #: its PEM private key
    max_body_bytes: Annotated[int, Field(ge=0)] = 1 << 20  #: larger request bodies: 413, refused while streaming
    limit_concurrency: Annotated[int, Field(ge=1)] = 64  #: connections + requests at once; beyond: 503
    timeout_keep_alive_s: Annotated[int, Field(ge=1)] = 5  #: an idle keep-alive connection is closed after this
    header_timeout_s: Annotated[float, Field(gt=0)] = 10.0  #: the request line and headers must arrive within this
    body_timeout_s: Annotated[float, Field(gt=0)] = 30.0  #: each part of the body must arrive within this: else 408
    max_header_bytes: Annotated[int, Field(ge=1024)] = 16384  #: request line + headers (h11); beyond: 400

    @model_validator(mode="after")
    def _tls(self) -> ListenerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        return self


class IntakeListener(ListenerSettings):
    """The devices' listener: small bodies (an airrohr POST is under 2 KiB)."""

    port: Annotated[int, Field(ge=0, le=65535)] = 9110
    max_body_bytes: Annotated[int, Field(ge=0)] = 64 << 10


class ApiListener(ListenerSettings):
    port: Annotated[int, Field(ge=0, le=65535)] = 9109


class InternalListener(ListenerSettings):
    port: Annotated[int, Field(ge=0, le=65535)] = 9108  #: Prometheus scrapes here


_MOVED = ("http.host and http.port are replaced by one listener per audience: http.intake (devices' POSTs), "
          "http.api (the /api/v1 API) and http.internal (/metrics, /status, /healthz, /readyz, /docs); "
          "move {key} to http.internal.{key} (the metrics port) and give http.intake.port and http.api.port")


class HttpSettings(_Section):
    """The daemon's HTTP listeners (aqnet.http): each audience on its own address. To add one (the open-data API
    of a later issue), add a ListenerSettings field here and its app to aqnet.http.LISTENERS."""

    intake: IntakeListener = IntakeListener()  #: /intake/… (devices)
    api: ApiListener = ApiListener()  #: /api/v1/… (bearer tokens)
    internal: InternalListener = InternalListener()  #: /metrics /status /healthz /readyz /docs
    #: proxies (IP addresses or networks) whose X-Forwarded-For / Forwarded header names the client; from any
    #: other peer these headers are ignored and the client is the peer
    trusted_proxies: list[str] = []
    auth_failures_per_minute: Annotated[int, Field(ge=1)] = 20  #: per client; beyond: 429 until the minute passes
    auth_pool_size: Annotated[int, Field(ge=1)] = 2  #: database connections for credential lookups (not ingest's)
    auth_cache_s: Annotated[float, Field(ge=0)] = 60.0  #: a verified credential is trusted this long without lookup
    #: a device POST answers 503 ("send again") when its readings are not durable within this many seconds
    durable_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    #: a POST whose body equals one the same device sent at most this long before is that POST again (a retry);
    #: keep it below the devices' send interval (airrohr: 145 s by default). sensors/delivery.py
    redelivery_window_s: Annotated[float, Field(ge=0)] = 60.0

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("host", "port"):
                if key in data:
                    raise ValueError(_MOVED.format(key=key))
        return data

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"expected an IP address or network such as 10.0.0.5 or 10.0.0.0/24, "
                                 f"got {item!r}") from None
        return v

    @model_validator(mode="after")
    def _distinct(self) -> HttpSettings:
        seen: dict[tuple[str, int], str] = {}
        for name, listener in self.listeners().items():
            key = (listener.host, listener.port)
            if listener.port and key in seen:
                raise ValueError(f"{name} and {seen[key]} both listen on {listener.host}:{listener.port}: "
                                 "give each listener its own port")
            seen[key] = name
        return self

    def listeners(self) -> dict[str, ListenerSettings]:
        """Listener name → its settings, for every listener field."""
        return {name: value for name, value in self if isinstance(value, ListenerSettings)}


class Endpoint(_Section):
    protocol: Literal["modbus-tcp", "modbus-rtu-tcp", "modbus-rtu"] = "modbus-tcp"
    host: str | None = None  #: modbus-tcp, modbus-rtu-tcp: the gateway
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    serial_port: str | None = None  #: modbus-rtu: the RS-485 adapter, e.g. /dev/ttyUSB0
    baudrate: Annotated[int, Field(gt=0)] | None = None  #: modbus-rtu line settings (default 19200 8E1)
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] | None = None
    bytesize: Literal[7, 8] | None = None
    poll_interval_s: Annotated[float, Field(gt=0)] | None = None  #: this station's cadence (default modbus.*)

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


class MicrosensorSettings(_Section):
    format: Literal["aqnet-json", "airrohr", "purpleair"] = "aqnet-json"  #: payload format
    transport: Literal["mqtt", "http"] = "mqtt"  #: http: airrohr's "send to own API" POST to /intake/airrohr
    hardware_serial: str | None = None  #: airrohr esp8266id, PurpleAir MAC (required by those formats)
    devices: dict[str, list[str]] = {}  #: device suffix → payload channels; empty: one device, every channel

    @model_validator(mode="after")
    def _identity(self) -> MicrosensorSettings:
        if self.format != "aqnet-json" and not self.hardware_serial:
            raise ValueError(f"format {self.format} identifies the device by hardware_serial: give it")
        if self.transport == "http" and self.format != "airrohr":
            raise ValueError("transport http is the airrohr intake: format must be airrohr")
        return self


class NetworkSettings(_Section):
    timezone: str = "America/Bogota"  #: the network's standard time zone (reference.json site)
    bundled: bool = True  #: use the bundled 19 stations + 25 microsensors
    stations: dict[str, Endpoint] = {}  #: station code → Modbus TCP gateway
    microsensor_cadence_s: Annotated[float, Field(gt=0)] = 60.0  #: expected interval between MQTT readings
    microsensors: dict[str, MicrosensorSettings] = {}  #: microsensor id → format and identity (default aqnet JSON)

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


class SchedulerSettings(_Section):
    averages_every_s: Annotated[float, Field(gt=0)] = 60.0  #: how often the averages/indices/alerts job runs
    settle_s: Annotated[float, Field(ge=0)] = 120.0  #: wait this long after a window ends (data in flight)
    lookback_h: Annotated[int, Field(ge=1)] = 72  #: catch-up after downtime computes at most this many past hours
    leader_check_s: Annotated[float, Field(gt=0)] = 5.0  #: how often a standby tries to take the jobs' leader lock


class ClockSettings(_Section):
    """Simulated time shared by `aqnet up --speed X`'s simulators and daemon (sensors.clock.SimClock)."""

    speed: Annotated[float, Field(ge=1)] = 1.0  #: 1: the wall clock; X > 1: simulated time runs X× faster
    sim_origin: datetime | None = None  #: simulated time at wall_origin (required when speed > 1)
    wall_origin: float | None = None  #: Unix time at which simulated time was sim_origin

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
        assert self.sim_origin is not None and self.wall_origin is not None
        return SimClock(self.sim_origin, self.wall_origin, self.speed)


class DeadLetterSettings(_Section):
    max_rows: Annotated[int, Field(ge=1)] = 100_000  #: bound of dead_letters: the oldest beyond it are deleted
    #: bound of dead_letters in bytes (payloads, readings, errors): the oldest beyond it are deleted
    max_bytes: Annotated[int, Field(ge=1)] = 512 * 1024 * 1024
    max_age_days: Annotated[float, Field(gt=0)] = 90.0  #: letters received longer ago are deleted
    prune_every_s: Annotated[float, Field(gt=0)] = 60.0


class RegistrySettings(_Section):
    """How the running daemon follows the sensor registry (storage.live_network)."""

    refresh_s: Annotated[float, Field(gt=0)] = 2.0  #: how often registry_version is checked (wall-clock seconds)
    maintenance_lookback_s: Annotated[float, Field(ge=0)] = 7 * 24 * 3600.0  #: windows ended longer ago: not loaded


class ChannelFilter(_Section):
    """Which alert transitions a channel receives (every condition must hold)."""

    audience: list[Literal["officers", "technicians"]] = ["officers"]  #: officers: air quality; technicians: equipment
    indicative: Literal["include", "exclude", "only"] = "include"  #: microsensor (indicative) alerts
    min_severity: Literal["info", "warning", "critical"] = "info"
    transitions: list[Literal["raised", "escalated", "unacknowledged", "acknowledged", "resolved"]] = [
        "raised", "escalated", "unacknowledged", "acknowledged", "resolved"]
    localities: list[str] = []  #: only alerts in these localities (empty: all)
    language: Literal["es", "en"] | None = None  #: message language; default alerts.language


class WebhookChannel(ChannelFilter):
    type: Literal["webhook"]
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    url: str  #: http(s) URL the JSON is POSTed to
    secret_file: str | None = None  #: HMAC-SHA256 key for the X-Aqnet-Signature header; default alerts.signing_key_file
    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    headers: dict[str, str] = {}


class EmailChannel(ChannelFilter):
    type: Literal["email"]
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    host: str  #: SMTP server
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    starttls: bool = True  #: upgrade with STARTTLS before authenticating (refuse to send if the server cannot)
    ca_file: str | None = None  #: CA bundle that signs the server's certificate (default: the system's)
    username: str | None = None
    password_file: str | None = None
    sender: str  #: From address
    to: list[str] = Field(min_length=1)
    timeout_s: Annotated[float, Field(gt=0)] = 20.0


class MqttChannel(ChannelFilter):
    type: Literal["mqtt"]
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    url: str | None = None  #: broker; default mqtt.url
    topic_prefix: str = "aqnet/alerts"  #: retained state per alert at <prefix>/<alert id>
    qos: Literal[0, 1, 2] = 1
    timeout_s: Annotated[float, Field(gt=0)] = 10.0


class AlertmanagerChannel(ChannelFilter):
    type: Literal["alertmanager"]
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    url: str  #: Alertmanager base URL, e.g. http://127.0.0.1:9093 (alerts are POSTed to /api/v2/alerts)
    timeout_s: Annotated[float, Field(gt=0)] = 10.0


AlertChannel = Annotated[WebhookChannel | EmailChannel | MqttChannel | AlertmanagerChannel,
                         Field(discriminator="type")]


class AlertsSettings(_Section):
    """Alert rules and their delivery (alerts.evaluate, alerts.dispatch)."""

    rules_file: str | None = None  #: alert rules YAML; the bundled defaults (alerts/default_rules.yaml) when absent
    language: Literal["es", "en"] = "es"  #: default message language
    dashboard_url: str | None = None  #: Grafana base URL for evidence links, e.g. http://grafana:3000
    public_url: str | None = None  #: aqnet's HTTP API as officers reach it, for signed acknowledgement links
    #: default HMAC key of webhook signatures (channels without secret_file); created if missing. Never signs links
    signing_key_file: str = "var/alert-signing.key"
    #: HMAC key of acknowledgement links only (no channel's secret); created if missing
    link_key_file: str = "var/alert-link.key"
    #: how long a signed acknowledgement link stays valid; at most alerts.signing.MAX_ACK_LINK_TTL_H (168 h)
    ack_link_ttl_h: Annotated[float, Field(gt=0, le=MAX_ACK_LINK_TTL_H)] = 72.0
    escalate_unacknowledged_after_min: Annotated[float, Field(ge=0)] = 60.0  #: 0: never; rules may override
    dispatch_every_s: Annotated[float, Field(gt=0)] = 5.0  #: how often the outbox is delivered
    max_attempts: Annotated[int, Field(ge=1)] = 8  #: failed deliveries before the dead letter
    retry_min_s: Annotated[float, Field(gt=0)] = 5.0  #: first retry delay (doubles, with jitter)
    retry_max_s: Annotated[float, Field(gt=0)] = 900.0
    alertmanager_repost_s: Annotated[float, Field(gt=0)] = 60.0  #: active alerts are re-posted this often
    channels: list[AlertChannel] = []

    @model_validator(mode="after")
    def _names(self) -> AlertsSettings:
        names = [c.name for c in self.channels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"channels: duplicate names {dup}")
        link = _same_file_key(self.link_key_file)
        if link == _same_file_key(self.signing_key_file):
            raise ValueError(f"link_key_file: {self.link_key_file} is also signing_key_file: acknowledgement links "
                             "need a key of their own (whoever verifies webhooks could otherwise make links)")
        for c in self.channels:
            if isinstance(c, WebhookChannel) and c.secret_file and _same_file_key(c.secret_file) == link:
                raise ValueError(f"channels[{c.name}].secret_file: {c.secret_file} is alerts.link_key_file: a "
                                 "webhook's secret must not be the acknowledgement-link key")
        return self


def _same_file_key(path: str) -> str:
    """A comparable form of a key file's path (resolved, without touching the file)."""
    return str(Path(path).expanduser().resolve(strict=False))


class RetentionSettings(_Section):
    """TimescaleDB housekeeping (storage.retention): whole chunks older than these are dropped. 0: keep forever."""

    measurements_days: Annotated[int, Field(ge=0)] = 0  #: raw readings
    averages_days: Annotated[int, Field(ge=0)] = 0  #: 1h/8h/24h/day/year averages
    indices_days: Annotated[int, Field(ge=0)] = 0
    compress_after_days: Annotated[int, Field(ge=0)] = 7  #: Timescale-licensed edition only: compress older chunks
    every_s: Annotated[float, Field(gt=0)] = 3600.0  #: how often the housekeeping job runs


class SupervisionSettings(_Section):
    """How the daemon's long-running tasks are supervised and its health is judged (aqnet.tasks, aqnet.health)."""

    restart_min_s: Annotated[float, Field(gt=0)] = 1.0  #: first delay before restarting a task that died
    restart_max_s: Annotated[float, Field(gt=0)] = 60.0  #: the delay doubles per failure, up to this
    restart_jitter: Annotated[float, Field(ge=0, le=1)] = 0.5  #: delay drawn from [d·(1-jitter), d]
    max_restarts: Annotated[int, Field(ge=0)] = 5  #: more failures of one task within restart_window_s: exit
    restart_window_s: Annotated[float, Field(gt=0)] = 300.0
    intake_stall_s: Annotated[float, Field(gt=0)] = 120.0  #: work pending with no progress this long: not live
    job_stuck_s: Annotated[float, Field(gt=0)] = 1800.0  #: a scheduler job running this long: scheduler down
    job_error_limit: Annotated[int, Field(ge=1)] = 5  #: a job failing this often in a row: scheduler down
    readiness_timeout_s: Annotated[float, Field(gt=0)] = 2.0  #: /readyz: the database must answer within this

    @model_validator(mode="after")
    def _backoff(self) -> SupervisionSettings:
        if self.restart_min_s > self.restart_max_s:
            raise ValueError(f"restart_min_s ({self.restart_min_s}) must not exceed restart_max_s "
                             f"({self.restart_max_s})")
        return self


class Settings(_Section):
    database: DatabaseSettings
    mqtt: MqttSettings
    network: NetworkSettings = NetworkSettings()
    modbus: ModbusSettings = ModbusSettings()
    ingest: IngestSettings = IngestSettings()
    storage: StorageSettings = StorageSettings()
    http: HttpSettings = HttpSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    dead_letters: DeadLetterSettings = DeadLetterSettings()
    clock: ClockSettings = ClockSettings()
    registry: RegistrySettings = RegistrySettings()
    alerts: AlertsSettings = AlertsSettings()
    retention: RetentionSettings = RetentionSettings()
    supervision: SupervisionSettings = SupervisionSettings()


class ConfigError(ValueError):
    """Invalid configuration; `errors` holds one `file: key.path: message` line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def settings_from_dict(data: Any, source: str = "<config>") -> Settings:
    """Validate `data`; raise ConfigError listing every problem with its key path."""
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(root)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            lines.append(f"{source}: {where}: {msg}")
        raise ConfigError(lines) from None


def load_settings(path: Path) -> Settings:
    """Load and validate the YAML settings file at `path`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    return settings_from_dict(data, str(path))


def settings_to_yaml(settings: Settings) -> str:
    """Render settings as YAML (what `aqnet up` writes for `aqnet run`)."""
    return yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
