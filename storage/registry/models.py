"""The registry's edge models: sensors, devices, calibrations, maintenance and audit entries as people write them.

Pure (pydantic v2, frozen, `extra="forbid"`). Shared by the CLI, the HTTP API and the network file import, so a
sensor written in YAML, in a JSON body or on the command line is checked the same way. These models check what
needs nothing but the value itself (coordinates in range, known variables, a Modbus device has its endpoint,
one primary device per variable, a maintenance window ends after it starts); what needs the database or the
installed profiles (duplicate ids, topics already used, unknown profile, lifecycle transitions) is checked by
`storage.registry`, which raises `RegistryError`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sensors.hardware_id import hardware_serial_key
from sensors.variables import UnknownVariableError, variable

__all__ = [
    "LIFECYCLES",
    "AuditEntry",
    "CalibrationSpec",
    "DeviceSpec",
    "ImportResult",
    "Lifecycle",
    "Location",
    "MaintenanceSpec",
    "MaintenanceWindow",
    "Protocol",
    "RegistryError",
    "SensorPatch",
    "SensorRecord",
    "SensorSpec",
    "error_from_validation",
]

Lifecycle = Literal["planned", "commissioning", "active", "maintenance", "retired"]
LIFECYCLES: tuple[str, ...] = ("planned", "commissioning", "active", "maintenance", "retired")
Protocol = Literal["modbus-tcp", "modbus-rtu", "modbus-rtu-tcp", "mqtt", "http"]

ErrorCode = Literal["not_found", "duplicate", "unknown_profile", "out_of_range", "conflict", "invalid_calibration",
                    "illegal_transition", "invalid"]


class RegistryError(Exception):
    """A registry change refused: `code` says why (a stable string), `field` which input field, `message` the
    whole story (what, where, expected). `index` is the position of the sensor in an import, when in one."""

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None, index: int | None = None,
                 sensor_id: str | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.field = field
        self.index = index
        self.sensor_id = sensor_id

    def as_dict(self) -> dict[str, Any]:
        """The error as JSON for `--json` output and API error bodies."""
        return {"code": self.code, "field": self.field, "message": self.message}


_RANGE_ERRORS = frozenset({"less_than_equal", "greater_than_equal", "less_than", "greater_than"})


def error_from_validation(exc: ValidationError, where: str) -> RegistryError:
    """A RegistryError for the first problem pydantic found, naming `where` (e.g. "sensor MS07") and the field;
    a coordinate or number out of its range is `out_of_range`, anything else `invalid`."""
    first = exc.errors()[0]
    loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in first["loc"]).replace(".[", "[")
    code: ErrorCode = "out_of_range" if first["type"] in _RANGE_ERRORS else "invalid"
    got = f", got {first['input']!r}" if first["type"] != "missing" and not isinstance(first["input"], dict) else ""
    message = f"{where}: {loc}: {first['msg']}{got}" if loc else f"{where}: {first['msg']}"
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return RegistryError(code, message, field=loc or None)


_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SERIAL_FIELDS = ("serial_port", "baudrate", "parity", "stopbits", "bytesize")


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(f"expected 1–64 letters, digits, '.', '_' or '-' starting with a letter or digit, "
                         f"got {value!r}")
    return value


#: the pattern is published in the JSON schema (OpenAPI) so clients and schemathesis generate valid ids;
#: the validator keeps the error message that names the rule
Identifier = Annotated[str, Field(json_schema_extra={"pattern": _ID.pattern}), AfterValidator(_check_id)]


def _aware(value: datetime | None, name: str) -> None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name}: expected a timezone-aware time (e.g. 2026-05-01T08:00:00+00:00), "
                         f"got {value.isoformat()}")


class _Model(BaseModel):
    # strict: a JSON client sending 0 for a boolean or "502" for a port is told so (the API's contract, checked
    # by schemathesis); files and the command line, where every value arrives as text, validate with
    # strict=False. Times stay lax: they arrive as ISO 8601 strings from every source.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Location(_Model):
    """Where a sensor stands: WGS 84 degrees, metres above sea level, street address and locality."""

    lat: float = Field(ge=-90, le=90, description="latitude, degrees (WGS 84), −90..90")
    lon: float = Field(ge=-180, le=180, description="longitude, degrees (WGS 84), −180..180")
    elevation_m: float | None = Field(default=None, ge=-500, le=9000, description="metres above sea level")
    address: str = ""
    locality: str = ""


class DeviceSpec(_Model):
    """One instrument behind a sensor: its profile, how it is reached and what it measures."""

    id: Identifier
    #: Modbus device profile (sensors/profiles/<name>.yaml) or payload format (aqnet-json, airrohr, purpleair)
    profile: str = Field(min_length=1)
    protocol: Protocol
    variables: list[str] = Field(min_length=1, description="vocabulary codes (sensors.variables)")
    firmware: str | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    unit_id: int | None = Field(default=None, ge=0, le=255)
    serial_port: str | None = None
    baudrate: int | None = Field(default=None, gt=0)
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] | None = None
    bytesize: Literal[7, 8] | None = None
    topic: str | None = None
    client_id: str | None = None
    #: the identity a microsensor gives itself (airrohr esp8266id, PurpleAir MAC); stored lower-case, a MAC
    #: zero-padded ("84:f3:eb:09:01:0a" for "84:F3:EB:9:1:A": `sensors.hardware_id.hardware_serial_key`)
    hardware_serial: str | None = None
    channels: list[str] = Field(default_factory=list)
    #: the sensor's primary instrument for each of its variables
    primary: bool = True

    @field_validator("variables")
    @classmethod
    def _known_variables(cls, value: list[str]) -> list[str]:
        for code in value:
            try:
                variable(code)
            except UnknownVariableError as exc:
                raise ValueError(str(exc)) from None
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate variable in {value}")
        return value

    @field_validator("hardware_serial")
    @classmethod
    def _lower_serial(cls, value: str | None) -> str | None:
        return hardware_serial_key(value) or None if value is not None else None

    @model_validator(mode="after")
    def _endpoint(self) -> DeviceSpec:
        # the same rules as sensors.sensor.Device, said here so a person gets them before anything is stored
        if self.protocol in ("modbus-tcp", "modbus-rtu-tcp"):
            missing = [n for n in ("host", "port", "unit_id") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"{self.protocol} needs {', '.join(missing)}")
        if self.protocol == "modbus-rtu":
            if not self.serial_port or self.unit_id is None:
                raise ValueError("modbus-rtu needs serial_port and unit_id")
            # Modbus over Serial Line V1.02, 2.2: unit addresses 1..247 (0 is broadcast, 248..255 reserved)
            if not 1 <= self.unit_id <= 247:
                raise ValueError(f"unit_id: expected 1..247 on a serial line, got {self.unit_id}")
        else:
            stray = [n for n in _SERIAL_FIELDS if getattr(self, n) is not None]
            if stray:
                raise ValueError(f"{', '.join(stray)}: serial line settings apply to modbus-rtu only, "
                                 f"protocol is {self.protocol}")
        if self.protocol == "mqtt" and not self.topic:
            raise ValueError("mqtt needs a topic")
        return self


class SensorSpec(_Model):
    """A logical measuring point as a technician registers it; its id survives hardware swaps."""

    id: Identifier
    name: str = Field(min_length=1)
    kind: Literal["station", "microsensor"]
    location: Location
    mobile: bool = False
    lifecycle: Lifecycle = "planned"
    notes: str = ""
    devices: list[DeviceSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _devices(self) -> SensorSpec:
        seen: set[str] = set()
        primary: dict[str, str] = {}
        for d in self.devices:
            if d.id in seen:
                raise ValueError(f"device id {d.id} appears twice")
            seen.add(d.id)
            if not d.primary:
                continue
            for v in d.variables:
                other = primary.setdefault(v, d.id)
                if other != d.id:
                    raise ValueError(f"variable {v} has two primary devices, {other} and {d.id}; "
                                     "mark one primary: false")
        return self


class SensorPatch(_Model):
    """Fields `update` may change; None leaves a field as it is. Location: `move`; lifecycle: `set_lifecycle`."""

    name: str | None = Field(default=None, min_length=1)
    notes: str | None = None
    mobile: bool | None = None
    address: str | None = None
    locality: str | None = None


class CalibrationSpec(_Model):
    """A calibration of one variable of one device over [valid_from, valid_to) (see ingest.calibration)."""

    variable: str
    kind: Literal["linear", "polynomial", "humidity", "linear_rh"]
    coefficients: list[float] = Field(description=(
        "linear: [a, b]; polynomial: [c0, c1, …]; humidity: [κ]; linear_rh: [a, b, c] (a·x + b·RH + c)"))
    unit: str = Field(description="the reported unit the coefficients apply in, e.g. ppb, ug/m3")
    valid_from: datetime = Field(strict=False)
    valid_to: datetime | None = Field(default=None, strict=False)
    source: str = ""
    note: str = ""


class MaintenanceSpec(_Model):
    """A maintenance period [starts_at, ends_at) for a whole sensor, or one device or variable of it."""

    starts_at: datetime = Field(strict=False)
    ends_at: datetime = Field(strict=False)
    reason: str = Field(min_length=1)
    device_id: str | None = None
    variable: str | None = None

    @model_validator(mode="after")
    def _period(self) -> MaintenanceSpec:
        _aware(self.starts_at, "starts_at")
        _aware(self.ends_at, "ends_at")
        if self.ends_at <= self.starts_at:
            raise ValueError(f"ends_at {self.ends_at.isoformat()} must be after starts_at "
                             f"{self.starts_at.isoformat()}")
        if not self.reason.strip():
            raise ValueError("reason: expected a non-empty reason")
        if self.variable is not None:
            try:
                variable(self.variable)
            except UnknownVariableError as exc:
                raise ValueError(str(exc)) from None
        return self


class MaintenanceWindow(MaintenanceSpec):
    """A stored maintenance window."""

    id: int
    sensor_id: str
    created_by: str
    created_at: datetime = Field(strict=False)


class SensorRecord(SensorSpec):
    """A sensor as stored: its spec (active devices only), timestamps and its maintenance windows."""

    created_at: datetime = Field(strict=False)
    updated_at: datetime = Field(strict=False)
    retired_at: datetime | None = Field(default=None, strict=False)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)

    def spec(self) -> SensorSpec:
        """The spec part alone (what export writes)."""
        return SensorSpec.model_validate(self.model_dump(include=set(SensorSpec.model_fields)))


class AuditEntry(_Model):
    """One audit-log row: who changed what, when, and the changed fields before and after."""

    id: int
    at: datetime = Field(strict=False)
    actor: str
    action: str
    sensor_id: str | None = None
    device_id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class ImportResult(_Model):
    """What an import did: sensors added, updated, and found already as the file says."""

    added: int
    updated: int
    unchanged: int
