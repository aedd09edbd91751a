"""The public open-data API's records, named as OpenAQ v3 names them where it has a name (camelCase in JSON). Shell
(pydantic), pure: no I/O; `aqnet.public.shape` makes them from `storage.public_read` rows.

Every value carries its provenance (`ValueProvenance`): `unit`, the `parameter` (id, name, units), the `period`
it stands for (`datetimeFrom`, `datetimeTo` in UTC and the network's local time, `convention`
"period-ending": a value is stamped at `datetimeTo` and covers [datetimeFrom, datetimeTo)), `coverage`,
`validity` and `verification` (e-Reporting codes and labels, `ingest.validation`), the QC flags by name
(`flagInfo`), the calibration version (`calibration`: the `calibrations.id`s applied), and `isReference` /
`indicative`. docs/citizens/open-data-api.md is the data dictionary and the OpenAQ mapping.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = [
    "CONVENTION",
    "ISO_INTERVAL",
    "AlertRecordEvent",
    "Average",
    "Calibration",
    "Code",
    "Coordinates",
    "Coverage",
    "ExceedanceCount",
    "ExceedancePeriod",
    "FlagInfo",
    "IndexValue",
    "Instant",
    "LatestValue",
    "Licence",
    "Limit",
    "Location",
    "Meta",
    "Model",
    "Owner",
    "Page",
    "Parameter",
    "Period",
    "Sensor",
    "ValueProvenance",
]

#: how every period is stamped (averages, indices and alert evidence alike)
CONVENTION = ("period-ending: a value is stamped at datetimeTo, the END of its period, and covers "
              "[datetimeFrom, datetimeTo): the hourly value of 10:00 is the mean of 09:00 (included) to 10:00 "
              "(excluded); days are calendar days in the network's time zone")

ISO_INTERVAL = {"1h": "PT1H", "8h": "PT8H", "24h": "PT24H", "day": "P1D", "year": "P1Y", "nowcast": "PT12H"}

T = TypeVar("T")


class Model(BaseModel):
    """The base of every record: camelCase names in JSON (OpenAQ's), frozen."""


    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Instant(Model):
    """One instant in UTC and in the network's local time (RFC 3339 with the offset)."""

    utc: datetime
    local: datetime


class Period(Model):
    """The period a value stands for."""

    label: str  #: 1h, day, 8h, 24h, nowcast, year
    interval: str  #: ISO 8601 duration (P1D: a calendar day in the network's time zone)
    convention: Literal["period-ending"] = "period-ending"
    datetime_from: Instant
    datetime_to: Instant


class Coverage(Model):
    """How much of the period valid data covered; `complete` = the completeness rule is met."""

    percent_coverage: float | None
    fraction: float | None
    observed_count: int | None
    expected_count: int | None
    complete: bool | None
    datetime_from: Instant
    datetime_to: Instant


class Code(Model):
    """A code of an e-Reporting vocabulary (Decision 2011/850/EU) with its label."""

    code: int
    label: str
    vocabulary: str


class FlagInfo(Model):
    """The QC flags (ingest.reading.QC) set on any reading behind the value, by name."""

    has_flags: bool
    flags: list[str]


class Calibration(Model):
    """The calibration version: the `calibrations.id`s applied to the readings behind the value ([]: none)."""

    calibrated: bool
    ids: list[int]


class Parameter(Model):
    """A variable of aqnet's vocabulary (sensors.variables)."""

    id: str
    name: str
    units: str
    display_name: str


class Coordinates(Model):
    """WGS84 decimal degrees (rounded to 0.01° when the location is published coarse)."""

    latitude: float
    longitude: float


class ValueProvenance(Model):
    """What every public value carries (the module docstring)."""

    value: float | None
    unit: str
    parameter: Parameter
    period: Period
    coverage: Coverage
    validity: Code | None
    verification: Code
    flag_info: FlagInfo | None
    calibration: Calibration | None
    is_reference: bool
    indicative: bool


class LatestValue(ValueProvenance):
    """The latest hourly average of a location's variable."""

    locations_id: str
    datetime: Instant  #: = period.datetimeTo


class Average(ValueProvenance):
    """An hourly or daily average of a location's variable."""

    locations_id: str


class Limit(Model):
    """A limit of the norm (Res. 2254/2017 Art. 2 Tabla 1, `norm_limits`)."""

    value: float
    units: str
    period: str
    source: str


class ExceedancePeriod(Average):
    """A valid average above its limit."""

    limit: Limit


class IndexValue(ValueProvenance):
    """The latest hourly (NowCast) index of a location: the dominant pollutant is `parameter`; `value` is the
    index, `concentration` what was looked up in the breakpoints."""

    locations_id: str
    index: str
    level: int
    category: str
    colour: str
    action: str | None
    beyond_index: bool
    concentration: float
    concentration_units: str
    datetime: Instant


class ExceedanceCount(ValueProvenance):
    """Exceedances of one limit by one location in one calendar year: `value` is the count."""

    locations_id: str
    year: int
    valid_periods: int
    limit: Limit


class AlertRecordEvent(Model):
    """One transition of an alert as the public may see it (alert_record): the actor's role unless names are
    shown; the evidence's provenance when the alert evaluated a period (None for equipment alerts)."""

    alert_id: int
    event_id: int
    datetime: Instant
    kind: str
    level: str | None
    from_level: str | None
    severity: str | None
    actor: str | None
    actor_role: str | None
    via: str | None
    decision_id: int | None
    note: str | None
    locations_id: str | None
    threshold: float | None
    source: str | None
    value: float | None
    unit: str | None
    parameter: Parameter | None
    period: Period | None
    coverage: Coverage | None
    validity: Code | None
    verification: Code | None
    flag_info: FlagInfo | None
    calibration: Calibration | None
    is_reference: bool | None
    indicative: bool | None


class Owner(Model):
    """An institution."""

    name: str
    url: str | None = None


class Licence(Model):
    """The data's licence (SPDX id) and whom to credit."""

    id: str
    url: str
    attribution: Owner


class Sensor(Model):
    """A variable a location measures (OpenAQ's sensor: one location and one parameter)."""

    id: str  #: "<location id>:<parameter id>"
    name: str
    parameter: Parameter


class Location(Model):
    """A measuring point: a reference station or a microsensor."""

    id: str
    name: str
    locality: str
    timezone: str
    kind: str
    is_monitor: bool
    is_reference: bool
    indicative: bool
    is_mobile: bool
    lifecycle: str
    owner: Owner
    provider: Owner
    coordinates: Coordinates
    coordinates_precision: Literal["exact", "coarse"]
    address: str
    elevation: float | None
    sensors: list[Sensor]
    licenses: list[Licence]


class Meta(Model):
    """Who publishes the data, under which licence, and where this page is in the whole."""

    name: str
    website: str
    license: Licence
    publisher: Owner
    contact: str
    time_convention: str
    page: int
    limit: int
    found: int
    next: str | None


class Page(Model, Generic[T]):
    """One page of results with its metadata."""

    meta: Meta
    results: list[T]
