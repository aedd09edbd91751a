"""The daemon's settings: one immutable, validated object loaded from a YAML file. Shell (aqnet).

`Settings` composes each stage's sections (`sensors.settings`, `ingest.settings`, `storage.settings`,
`alerts.settings`) with the shell's own (`http`, `supervision`), each under its YAML key. Errors name the file and
the key path: `aqnet.yaml: mqtt.url: expected mqtt://host:port, got 'x'`. Every field carries its description,
and every key is documented in README's "Configuration" section (a test checks it).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from alerts.opendata.settings import ExportsSettings
from alerts.settings import AlertsSettings, HealthSettings, SchedulerSettings
from ingest.settings import IngestSettings
from ingest.zero_span_settings import ZeroSpanSettings
from sensors.settings import ClockSettings, ModbusSettings, MqttSettings, NetworkSettings, Section
from storage.nodes.settings import NodesSettings
from storage.settings import DatabaseSettings, DeadLetterSettings, RegistrySettings, RetentionSettings, StorageSettings

__all__ = ["ApiListener", "ConfigError", "ConsoleSettings", "HttpSettings", "IntakeListener", "InternalListener",
           "ListenerSettings", "OpenDataSettings", "PublicListener", "PublicSettings", "Settings",
           "SupervisionSettings", "load_settings", "settings_from_dict", "settings_to_yaml"]


class ListenerSettings(Section):
    """One HTTP listener (aqnet.http.server): where it binds, its TLS files and its bounds."""

    host: str = Field(default="127.0.0.1", description=(
        "Bind address of this listener; 0.0.0.0 only behind a firewall that admits who must reach it."))
    port: Annotated[int, Field(ge=0, le=65535)] = Field(description=(
        "Port of this listener (0: a free port, for tests)."))
    tls_cert_file: str | None = Field(default=None, description=(
        "PEM certificate (chain): this listener speaks HTTPS (uvicorn `ssl_certfile`); give it with "
        "`tls_key_file`."))
    tls_key_file: str | None = Field(default=None, description="Its PEM private key.")
    max_body_bytes: Annotated[int, Field(ge=0)] = Field(default=1 << 20, description=(
        "A larger request body is answered 413 at once (by its Content-Length) or as soon as the streamed body "
        "passes it; the connection is closed, the rest never read."))
    limit_concurrency: Annotated[int, Field(ge=1)] = Field(default=64, description=(
        "Connections and requests at once; beyond, 503."))
    timeout_keep_alive_s: Annotated[int, Field(ge=1)] = Field(default=5, description=(
        "An idle keep-alive connection is closed after this."))
    header_timeout_s: Annotated[float, Field(gt=0)] = Field(default=10.0, description=(
        "The request line and headers must arrive within this of the first byte, else the connection is closed "
        "(slow loris)."))
    body_timeout_s: Annotated[float, Field(gt=0)] = Field(default=30.0, description=(
        "Each part of the body must arrive within this, else 408."))
    max_header_bytes: Annotated[int, Field(ge=1024)] = Field(default=16384, description=(
        "Request line and headers at most this large (h11), else 400."))

    @model_validator(mode="after")
    def _tls(self) -> ListenerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        return self


class IntakeListener(ListenerSettings):
    """The devices' listener: small bodies (an airrohr POST is under 2 KiB)."""

    port: Annotated[int, Field(ge=0, le=65535)] = Field(default=9110, description=(
        "Port of the device intake listener (`/intake/…`, HTTP basic per device)."))
    max_body_bytes: Annotated[int, Field(ge=0)] = Field(default=64 << 10, description=(
        "A larger request body is answered 413 at once (an airrohr POST is under 2 KiB); the connection is "
        "closed, the rest never read."))


class ApiListener(ListenerSettings):
    port: Annotated[int, Field(ge=0, le=65535)] = Field(default=9109, description=(
        "Port of the API listener (`/api/v1/…`, bearer tokens)."))


class InternalListener(ListenerSettings):
    port: Annotated[int, Field(ge=0, le=65535)] = Field(default=9108, description=(
        "Port of the internal listener (`/metrics`, `/status`, `/healthz`, `/readyz`, `/docs`): Prometheus "
        "scrapes here."))


class PublicListener(ListenerSettings):
    """The open-data listener: read-only, no login (aqnet.public); requests carry no body."""

    port: Annotated[int, Field(ge=0, le=65535)] = Field(default=9111, description=(
        "Port of the public open-data listener (`/v1/…`, no login, read-only, rate-limited per client)."))
    max_body_bytes: Annotated[int, Field(ge=0)] = Field(default=4096, description=(
        "A larger request body is answered 413 at once (the public API reads no body; every write is 405)."))


_MOVED = ("http.host and http.port are replaced by one listener per audience: http.intake (devices' POSTs), "
          "http.api (the /api/v1 API) and http.internal (/metrics, /status, /healthz, /readyz, /docs); "
          "move {key} to http.internal.{key} (the metrics port) and give http.intake.port and http.api.port")


class HttpSettings(Section):
    """The daemon's HTTP listeners (aqnet.http): each audience on its own address. To add one, add a
    ListenerSettings field here and its app to aqnet.http.apps.LISTENERS."""

    intake: IntakeListener = Field(default=IntakeListener(), description=(
        "The device intake listener (`/intake/…`, HTTP basic per device)."))
    api: ApiListener = Field(default=ApiListener(), description="The API listener (`/api/v1/…`, bearer tokens).")
    internal: InternalListener = Field(default=InternalListener(), description=(
        "The internal listener (`/metrics`, `/status`, `/healthz`, `/readyz`, `/docs`, `/openapi.json`)."))
    public: PublicListener = Field(default=PublicListener(), description=(
        "The public open-data listener (`/v1/…`, no login, read-only; `public` has its rate and cache settings)."))
    trusted_proxies: list[str] = Field(default=[], description=(
        "IP addresses or networks of reverse proxies whose `X-Forwarded-For` / `Forwarded` names the client (for "
        "the failure limit); from any other peer these headers are ignored."))
    auth_failures_per_minute: Annotated[int, Field(ge=1)] = Field(default=20, description=(
        "Failed authentications (intake or API) per client address per minute; beyond, 429 with `Retry-After` "
        "before any credential is checked."))
    auth_pool_size: Annotated[int, Field(ge=1)] = Field(default=2, description=(
        "Database connections for credential lookups — their own pool, so a flood of made-up tokens never takes "
        "ingest's connections."))
    auth_cache_s: Annotated[float, Field(ge=0)] = Field(default=60.0, description=(
        "A verified device credential is trusted this long without a lookup (so a revoked one may work this "
        "long)."))
    durable_timeout_s: Annotated[float, Field(gt=0)] = Field(default=30.0, description=(
        'A device POST is answered 503 ("send again") when its readings are not durable within this long.'))
    redelivery_window_s: Annotated[float, Field(ge=0)] = Field(default=60.0, description=(
        "A POST whose body equals one the same device sent at most this long before is that POST again (a retry), "
        "not a new reading; keep it below the devices' send interval (airrohr: 145 s) — see \"Exactly once\"."))

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


class PublicSettings(Section):
    """The public open-data API (aqnet.public, listener `http.public`): its rate limit, paging, caching and what
    the public alert record shows."""

    show_names: bool = Field(default=False, description=(
        "The public alert record names who acted (and shows officers' notes); false: the role only "
        "(system, technician, officer), as `alert_record(false)`."))
    requests_per_minute: Annotated[int, Field(ge=1)] = Field(default=120, description=(
        "Requests per client address per minute (sliding window; `http.trusted_proxies` say who the client "
        "is behind a proxy); beyond, 429 with `Retry-After`."))
    max_clients: Annotated[int, Field(ge=1)] = Field(default=10_000, description=(
        "Client addresses tracked by the rate limit at once (the stalest forgotten first): bounds its memory."))
    pool_size: Annotated[int, Field(ge=1)] = Field(default=2, description=(
        "Database connections of the public API — its own pool, read-only, so public traffic never takes "
        "ingest's."))
    statement_timeout_s: Annotated[float, Field(gt=0)] = Field(default=30.0, description=(
        "A public query running longer is cancelled (PostgreSQL `statement_timeout`) and answered 503."))
    max_limit: Annotated[int, Field(ge=1, le=10_000)] = Field(default=1000, description=(
        "The largest page (`limit`) a client may ask for."))
    max_range_days: Annotated[int, Field(ge=1)] = Field(default=366, description=(
        "The longest `datetime_from`..`datetime_to` range of one averages request, in days."))
    latest_max_age_s: Annotated[int, Field(ge=0)] = Field(default=60, description=(
        "`Cache-Control: max-age` of the latest values and indices (they change each hour)."))
    catalogue_max_age_s: Annotated[int, Field(ge=0)] = Field(default=3600, description=(
        "`Cache-Control: max-age` of the catalogue of locations and of `/v1/about`."))
    history_max_age_s: Annotated[int, Field(ge=0)] = Field(default=300, description=(
        "`Cache-Control: max-age` of averages, exceedances and alert records (a validation or late data may "
        "still change a past value)."))
    language: Literal["es", "en"] | None = Field(default=None, description=(
        "Language of the public air-quality page at `/`, `es` or `en` (default `alerts.language`)."))
    tile_url: str | None = Field(default=None, pattern=r"^https?://[^\s\"'<>]+$", description=(
        "Map tiles behind the public page's stations, as an XYZ template with `{z}`, `{x}`, `{y}` (e.g. the "
        "city's own tile server); the visitor's browser fetches them. Unset: the stations on a plain background "
        "(nothing fetched from elsewhere)."))
    tile_attribution: str = Field(default="", max_length=300, description=(
        "Credit the tile server's licence asks for, shown under the map (e.g. `© OpenStreetMap contributors`)."))

    @field_validator("tile_url")
    @classmethod
    def _tile_template(cls, url: str | None) -> str | None:
        missing = [part for part in ("{z}", "{x}", "{y}") if url is not None and part not in url]
        if missing:
            raise ValueError(f"expected an XYZ tile template with {{z}}, {{x}} and {{y}}; {url!r} lacks "
                             f"{', '.join(missing)}")
        return url


class OpenDataSettings(Section):
    """Who publishes the open data and under which licence: served with every public answer (`/v1/about`,
    each response's `meta`) and in the daily exports."""

    licence_id: str = Field(default="CC-BY-4.0", pattern=r"^[A-Za-z0-9.+-]{1,64}$", description=(
        "SPDX identifier of the data's licence (https://spdx.org/licenses/); the operator's choice — the default "
        "is a placeholder to confirm."))
    licence_url: str = Field(default="https://creativecommons.org/licenses/by/4.0/", pattern=r"^https?://\S+$",
                             description="URL of the licence's text.")
    publisher: str = Field(default="", max_length=200, description=(
        "Name of the institution publishing the data (e.g. the city's environment office); empty: not stated."))
    publisher_url: str = Field(default="", pattern=r"^(https?://\S+)?$", description=(
        "Web site of the publisher; empty: none."))
    contact_email: str = Field(default="", pattern=r"^([^@\s]+@[^@\s]+)?$", description=(
        "Where users of the data write to (questions, corrections); empty: not stated."))


class SupervisionSettings(Section):
    """How the daemon's long-running tasks are supervised and its health is judged (aqnet.tasks, aqnet.health)."""

    restart_min_s: Annotated[float, Field(gt=0)] = Field(default=1.0, description=(
        "First delay before a task that died is restarted (MQTT intake, HTTP server, spool replay, registry "
        "follower, station pollers); the delay doubles per failure, with jitter."))
    restart_max_s: Annotated[float, Field(gt=0)] = Field(default=60.0, description="Longest restart delay.")
    restart_jitter: Annotated[float, Field(ge=0, le=1)] = Field(default=0.5, description=(
        "The delay is drawn from [d·(1 − jitter), d], so restarts do not fall into step."))
    max_restarts: Annotated[int, Field(ge=0)] = Field(default=5, description=(
        "A task that fails more often than this within `supervision.restart_window_s` is given up: the daemon "
        "flushes and exits with status 1, for systemd or the container to start it again (station pollers are "
        "never given up)."))
    restart_window_s: Annotated[float, Field(gt=0)] = Field(default=300.0, description=(
        "Failures older than this are forgotten (and the delay starts again from `restart_min_s`)."))
    intake_stall_s: Annotated[float, Field(gt=0)] = Field(default=120.0, description=(
        "`/healthz` fails when the MQTT intake or the pipeline has had work pending this long without a step "
        "forward (spooling during a database outage is a step forward)."))
    job_stuck_s: Annotated[float, Field(gt=0)] = Field(default=1800.0, description=(
        "A scheduler job (averages, deliveries, …) running this long means the scheduler is down: the daemon "
        "exits with status 1."))
    job_error_limit: Annotated[int, Field(ge=1)] = Field(default=5, description=(
        "A scheduler job raising this many times in a row means the scheduler is down (errors saying the database "
        "is unreachable are not counted)."))
    readiness_timeout_s: Annotated[float, Field(gt=0)] = Field(default=2.0, description=(
        "`/readyz` fails when the database does not answer within this."))

    @model_validator(mode="after")
    def _backoff(self) -> SupervisionSettings:
        if self.restart_min_s > self.restart_max_s:
            raise ValueError(f"restart_min_s ({self.restart_min_s}) must not exceed restart_max_s "
                             f"({self.restart_max_s})")
        return self


class ConsoleSettings(Section):
    """The web console (aqnet.console) on the API listener under `/console/`: sessions and lockout."""

    enabled: bool = Field(default=True, description="Serve the console under `/console/` on the API listener.")
    language: Literal["es", "en"] | None = Field(default=None, description=(
        "Language of the console's pages, `es` or `en` (default `alerts.language`)."))
    session_ttl_s: Annotated[float, Field(gt=0)] = Field(default=8 * 3600.0, description=(
        "A sign-in lasts this long (a work shift), then the person signs in again."))
    lockout_failures: Annotated[int, Field(ge=1)] = Field(default=5, description=(
        "Consecutive wrong passwords that lock an account (policy, not from a norm)."))
    lockout_s: Annotated[float, Field(ge=0)] = Field(default=900.0, description=(
        "How long a locked account stays locked; 0: until `aqnet users reset-password`."))
    cookie_secure: bool = Field(default=True, description=(
        "Mark the session cookie `Secure` (sent over HTTPS only; browsers also send it to http://localhost). "
        "Turn off only behind a proxy that is itself reached over HTTPS and talks plain HTTP to aqnet."))


class Settings(Section):
    database: DatabaseSettings = Field(description="The TimescaleDB database and the daemon's connection pool.")
    mqtt: MqttSettings = Field(description=(
        "The MQTT broker the microsensors publish to, and the daemon's subscription."))
    network: NetworkSettings = Field(default=NetworkSettings(), description=(
        "The monitoring network: time zone, stations' endpoints and microsensors' formats."))
    modbus: ModbusSettings = Field(default=ModbusSettings(), description=(
        "How the reference stations are polled over Modbus."))
    ingest: IngestSettings = Field(default=IngestSettings(), description=(
        "Batching, queueing and time checks between the drivers and the database."))
    storage: StorageSettings = Field(default=StorageSettings(), description=(
        "The store-and-forward spool used while the database is unreachable."))
    http: HttpSettings = Field(default=HttpSettings(), description=(
        "The daemon's HTTP listeners (device intake, API, internal) and their defences."))
    scheduler: SchedulerSettings = Field(default=SchedulerSettings(), description=(
        "The scheduled averages, indices and alert-rule jobs."))
    dead_letters: DeadLetterSettings = Field(default=DeadLetterSettings(), description=(
        "Bounds of the dead-letter table and how often it is pruned."))
    clock: ClockSettings = Field(default=ClockSettings(), description=(
        "Simulated time shared by `aqnet up --speed X`'s simulators and daemon."))
    registry: RegistrySettings = Field(default=RegistrySettings(), description=(
        "How the running daemon follows the sensor registry."))
    alerts: AlertsSettings = Field(default=AlertsSettings(), description=(
        "Alert rules, messages and their delivery channels."))
    retention: RetentionSettings = Field(default=RetentionSettings(), description=(
        "TimescaleDB housekeeping: retention and compression."))
    supervision: SupervisionSettings = Field(default=SupervisionSettings(), description=(
        "How the daemon's tasks are supervised and its health judged."))
    health: HealthSettings = Field(default=HealthSettings(), description=(
        "Device health: outages, uptime, completeness, flat and drift indicators, co-location."))
    zero_span: ZeroSpanSettings = Field(default=ZeroSpanSettings(), description=(
        "Scheduled zero/span checks of reference analysers and their acceptance limits."))
    public: PublicSettings = Field(default=PublicSettings(), description=(
        "The public open-data API (listener `http.public`): rate limit, paging, caching, alert-record names."))
    open_data: OpenDataSettings = Field(default=OpenDataSettings(), description=(
        "Licence, publisher and contact served with the open data (public API and daily exports)."))
    exports: ExportsSettings = Field(default=ExportsSettings(), description=(
        "Daily open-data exports (CSV, JSON, Data Package, DCAT catalogue); their licence, publisher and contact "
        "are the `open_data` section's."))
    console: ConsoleSettings = Field(default=ConsoleSettings(), description=(
        "The web console for technicians and officers (`/console/` on the API listener)."))
    nodes: NodesSettings = Field(default=NodesSettings(), description=(
        "Several aqnet machines on one broker and one database: intake partitions and Modbus stations through "
        "leases (off by default; docs/operators/nodes.md)."))

    @model_validator(mode="after")
    def _zero_span(self) -> Settings:
        self.zero_span.schedules(ZoneInfo(self.network.timezone))  # raises naming the inconsistent check
        return self

    @model_validator(mode="after")
    def _exports_publisher(self) -> Settings:
        if self.exports.directory is not None:  # a scheduled export must say who publishes it, under which licence
            self.exports.publication(self.open_data)  # raises naming the open_data keys
        return self

    @model_validator(mode="after")
    def _nodes(self) -> Settings:
        # one node is one process: its partitions are sessions of their own, not shares of one subscription
        if self.nodes.enabled and self.ingest.processes != 1:
            raise ValueError(f"nodes.enabled: expected ingest.processes 1 on each node, got "
                             f"{self.ingest.processes} (run more nodes instead: docs/operators/nodes.md)")
        return self


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
