"""The HTTP API's alert records: alerts, their history and deliveries, exceedances, and the bodies officers
send. Shell (FastAPI's edge: pydantic models over `storage.alerts_store`'s records), pure.

Contract: each record model is built from its `storage.alerts_store` dataclass (`from_record`: the same fields,
types and order, less those the API does not show), validated from a stored record with `from_attributes`; a
field the class declares itself (a narrower type) replaces the record's.
"""

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal, TypeVar, cast, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from storage import alerts_store

__all__ = ["AlertDetail", "AlertEventRecord", "AlertRecord", "DeliveryRecord", "ExceedanceRecord", "NoteText",
           "OfficerNote", "alert_detail", "from_record"]

TEXT = r"^[^\x00]*$"  #: PostgreSQL text cannot hold NUL
M = TypeVar("M", bound=BaseModel)


def from_record(record: type[Any], *, exclude: Iterable[str] = (), described: Mapping[str, str] | None = None
                ) -> Callable[[type[M]], type[M]]:
    """Class decorator: the model with the fields of the dataclass `record` (less `exclude`), each described by
    `described` in the OpenAPI schema, and the class's docstring, bases and own fields."""
    hints = get_type_hints(record)
    skip, said = frozenset(exclude), dict(described or {})

    def build(cls: type[M]) -> type[M]:
        own = {name: cls.model_fields[name] for name in cls.__annotations__ if name in cls.model_fields}
        fields: dict[str, Any] = {
            f.name: (own[f.name].annotation, own[f.name]) if f.name in own
            else (hints[f.name], Field(description=said.get(f.name)))
            for f in dataclasses.fields(record) if f.name not in skip}
        model: type[BaseModel] = create_model(cls.__name__, __base__=cls.__bases__, __module__=cls.__module__,
                                              __doc__=cls.__doc__, **fields)
        model.__qualname__ = cls.__qualname__
        return cast("type[M]", model)

    return build


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


@from_record(alerts_store.AlertRecord, exclude={"details"}, described={
    "kind": "threshold, index, no_data, flatline or device_fault",
    "audience": "officers (air quality) or technicians (equipment)",
    "scope": "sensor, locality or network",
    "scope_key": "the sensor id, the locality's name or 'network'",
    "sensor_id": "the sensor whose value is reported (a scope's worst)",
    "indicative": "from microsensors: indicative, not compliance data",
    "source": "where the threshold comes from and its verification status",
    "coverage": "fraction 0..1 of the period covered by valid readings"})
class AlertRecord(_Out):
    """One episode of one rule on one scope (sensor, locality or network), with its current level and state."""


@from_record(alerts_store.AlertEventRecord, exclude={"alert_id"}, described={
    "kind": "raised, escalated, unacknowledged, acknowledged, resolved or note"})
class AlertEventRecord(_Out):
    """One transition or note of an alert; `actor` and `via` (cli, api, link) say who acted, null: the rules."""


@from_record(alerts_store.DeliveryRecord, exclude={"id", "alert_id"})
class DeliveryRecord(_Out):
    """One delivery of one transition to one channel (the outbox row)."""


class AlertDetail(AlertRecord):
    """An alert with its history (oldest first) and its deliveries."""

    events: list[AlertEventRecord]
    deliveries: list[DeliveryRecord]


@from_record(alerts_store.Exceedance, described={"valid_periods": "valid periods (days or hours) of the year",
                                                 "limit_ugm3": "the limit, µg/m³ at 25 °C and 760 mmHg"})
class ExceedanceRecord(_Out):
    """Exceedances of one Res. 2254/2017 limit by one sensor in one calendar year (network time zone).

    day: days whose valid calendar-day average is above the 24-hour limit; 1h: hours whose valid hourly average
    is above the 1-hour limit; 8h: hours whose valid 8-hour rolling mean (ending at that hour) is above it; year: 1
    when the valid annual mean (75 % of the days valid) is above the annual limit, else 0."""

    period: Literal["day", "1h", "8h", "year"]


class OfficerNote(_In):
    """An optional note recorded with the acknowledgement or resolution."""

    note: Annotated[str, Field(min_length=1, max_length=2000, pattern=TEXT)] | None = None


class NoteText(_In):
    """A note added to the alert's history."""

    text: Annotated[str, Field(min_length=1, max_length=2000, pattern=TEXT)]


def alert_detail(found: alerts_store.AlertDetail) -> AlertDetail:
    """The API's view of a stored alert with its events and deliveries."""
    alert = AlertRecord.model_validate(found.alert).model_dump()
    return AlertDetail(**alert, events=[AlertEventRecord.model_validate(e) for e in found.events],
                       deliveries=[DeliveryRecord.model_validate(d) for d in found.deliveries])
